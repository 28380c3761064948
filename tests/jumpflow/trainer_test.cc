// @brief Tests of the trainer (loss plumbing against finite differences,
// learning on tiny data for every process, sampling a trained model into the
// data's support, bit-identical resume, thread independence, errors), the
// RateModel adapter and `jumpflow train` flag handling.
#include "jumpflow/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "jumpflow/cli/commands.h"
#include "jumpflow/model/checkpoint.h"
#include "jumpflow/model/model_rate.h"
#include "jumpflow/processes/branching.h"
#include "jumpflow/processes/dfm.h"
#include "jumpflow/processes/edit_flow.h"
#include "jumpflow/samplers/sampler.h"
#include "jumpflow/time_distribution.h"
#include "kernels/backend.h"
#include "kernels/philox.h"
#include "sequences/file_util.h"
#include "tests/kernels/backend_compare.h"

namespace jumpflow {
namespace {

// Ten short words (lengths 3-5): the "tiny data set" of the learning tests.
const std::vector<std::string>& Words() {
  static const std::vector<std::string> words = {"cat",   "dog",   "bird",  "fish", "horse",
                                                 "mouse", "snake", "tiger", "lion", "bear"};
  return words;
}

Vocabulary Letters() { return *Vocabulary::FromCharacters("abcdefghijklmnopqrstuvwxyz"); }

Dataset WordData() {
  const Vocabulary vocab = Letters();
  std::vector<std::vector<Token>> seqs;
  for (const std::string& w : Words()) seqs.push_back(*vocab.Encode(w));
  return *Dataset::FromSequences(vocab, seqs);
}

std::string TempPath(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) / name).string();
}

TrainerOptions TinyOptions(TrainProcess process, int64_t steps) {
  TrainerOptions o;
  o.process = process;
  o.model.dim = 32;
  o.model.layers = 2;
  o.model.heads = 4;
  o.model.mlp_ratio = 2;
  o.model.time_features = 16;
  o.batch_size = 32;
  o.steps = steps;
  o.optimizer.warmup_steps = std::min<int64_t>(50, steps / 4);
  o.eval_fraction = 0.0;
  o.seed = 7;
  return o;
}

// ---------------------------------------------------------------------------
// BatchLoss: the gradient w.r.t. raw outputs against central differences,
// for every head layout (DFM, Edit with all heads, Edit insertion-only,
// Branching), with survival scales and per-sequence weights.

struct LossCase {
  const char* name;
  TrainProcess process;
  bool pairs;
  bool insert_gate = false;
};

class BatchLossGradientTest : public ::testing::TestWithParam<LossCase> {};

// RandomOutputs gives standard normal raw outputs for the rows of `x_t`.
Transformer::Outputs RandomOutputs(const SequenceBatch& x_t, const HeadLayout& layout,
                                   uint64_t seed) {
  Transformer::Outputs out;
  out.num_tokens = x_t.num_tokens();
  out.num_gaps = x_t.num_gaps();
  out.token_columns = layout.token_columns;
  out.gap_columns = layout.gap_columns;
  PhiloxStream rng(seed, 0, kPurposeUser);
  out.token_out.resize(static_cast<size_t>(out.num_tokens * out.token_columns));
  out.gap_out.resize(static_cast<size_t>(out.num_gaps * out.gap_columns));
  for (float& z : out.token_out) z = static_cast<float>(rng.Normal());
  for (float& z : out.gap_out) z = static_cast<float>(rng.Normal());
  return out;
}

TEST_P(BatchLossGradientTest, MatchesFiniteDifferences) {
  const LossCase& param = GetParam();
  const Vocabulary vocab = Letters();
  const int32_t v = vocab.size();
  std::vector<std::vector<Token>> x1, x0;
  for (size_t i = 0; i < 5; ++i) {
    x1.push_back(*vocab.Encode(Words()[i]));
    x0.push_back(*vocab.Encode(Words()[(i + 3) % Words().size()]));
  }
  const SequenceBatch x1b = *SequenceBatch::FromVectors(x1, v);
  const SequenceBatch x0b = *SequenceBatch::FromVectors(x0, v);
  std::shared_ptr<const Scheduler> sched(*MakeScheduler("poly:2"));
  const std::vector<double> times = {0.1, 0.35, 0.5, 0.7, 0.9};
  const std::vector<double> weights = {1.0, 0.5, 2.0, 1.5, 0.25};
  OutputHeads heads;
  absl::StatusOr<TrainingBatch> tb;
  switch (param.process) {
    case TrainProcess::kDfmMask:
    case TrainProcess::kDfmUniform: {
      DfmOptions opt;
      opt.vocab_size = v;
      opt.source = DfmSource::kUniform;
      heads.process = ProcessKind::kDfm;
      tb = MakeDfmBatch(x1b, BatchTimes::Explicit(times), *sched, opt, 3,
                        BatchWeights::Explicit(weights));
      break;
    }
    case TrainProcess::kEdit: {
      EditFlowOptions opt;
      opt.vocab_size = v;
      opt.source = param.pairs ? EditSource::kPairs : EditSource::kEmpty;
      opt.x0 = &x0b;
      heads.process = ProcessKind::kEdit;
      heads.insertion_only = !param.pairs;
      heads.insert_scale = heads.delete_scale = heads.substitute_scale = sched;
      heads.insert_gate = param.insert_gate;
      tb = MakeEditFlowBatch(x1b, BatchTimes::Explicit(times), *sched, opt, 3,
                             BatchWeights::Explicit(weights));
      break;
    }
    case TrainProcess::kBranching: {
      BranchingOptions opt;
      opt.vocab_size = v;
      opt.deletion_probability = 0.3;
      heads.process = ProcessKind::kBranching;
      heads.split_scale = heads.delete_scale = sched;
      tb = MakeBranchingBatch(x1b, BatchTimes::Explicit(times), *sched, opt, 3,
                              BatchWeights::Explicit(weights));
      break;
    }
  }
  ASSERT_TRUE(tb.ok()) << tb.status();
  ASSERT_GT(tb->x_t.num_tokens(), 0);

  const HeadLayout layout = MakeHeadLayout(heads.process, v, heads.insert_gate);
  Transformer::Outputs out = RandomOutputs(tb->x_t, layout, 11);

  std::vector<float> d_token(out.token_out.size()), d_gap(out.gap_out.size());
  absl::StatusOr<double> loss = BatchLoss(*tb, heads, out, d_token, d_gap);
  ASSERT_TRUE(loss.ok()) << loss.status();
  EXPECT_TRUE(std::isfinite(*loss));
  EXPECT_GT(*loss, 0.0);

  // The loss kernels on the GPU (train --device cuda): the same loss and
  // gradients to the backends' tolerance (tests/kernels/backend_compare.h);
  // without a usable GPU the call is an error naming CUDA, never a fallback.
  {
    std::vector<float> gpu_t(d_token.size()), gpu_g(d_gap.size());
    const absl::StatusOr<double> gpu =
        BatchLoss(*tb, heads, out, gpu_t, gpu_g, kernels::Backend::kCuda);
    if (kernels::CheckBackendAvailable(kernels::Backend::kCuda).ok()) {
      ASSERT_TRUE(gpu.ok()) << gpu.status();
      kernels::testing::ExpectClose(*loss, *gpu, 0.0, std::string(param.name) + " loss");
      kernels::testing::ExpectRowsClose(d_token, gpu_t, out.token_columns, "d_token");
      kernels::testing::ExpectRowsClose(d_gap, gpu_g, std::max<int64_t>(out.gap_columns, 1),
                                        "d_gap");
    } else {
      ASSERT_FALSE(gpu.ok());
      EXPECT_NE(std::string(gpu.status().message()).find("CUDA"), std::string::npos)
          << gpu.status();
    }
  }

  // Central differences in double of the float loss: eps 1e-2, every entry of
  // a strided subset of both buffers (the whole buffers for small batches).
  std::vector<float> scratch_t(d_token.size()), scratch_g(d_gap.size());
  auto loss_at = [&](std::vector<float>* buf, size_t k, float value) {
    const float old = (*buf)[k];
    (*buf)[k] = value;
    const double l = *BatchLoss(*tb, heads, out, scratch_t, scratch_g);
    (*buf)[k] = old;
    return l;
  };
  const float eps = 1e-2f;
  int checked = 0, nonzero = 0;
  for (std::vector<float>* buf : {&out.token_out, &out.gap_out}) {
    const std::vector<float>& grad = buf == &out.token_out ? d_token : d_gap;
    for (size_t k = 0; k < buf->size(); k += 3) {
      const double fd =
          (loss_at(buf, k, (*buf)[k] + eps) - loss_at(buf, k, (*buf)[k] - eps)) / (2.0 * eps);
      EXPECT_NEAR(grad[k], fd, 2e-3 + 2e-2 * std::fabs(fd)) << param.name << " entry " << k;
      ++checked;
      nonzero += grad[k] != 0.0f;
    }
  }
  EXPECT_GT(checked, 50);
  EXPECT_GT(nonzero, checked / 3);
  if (heads.insert_gate) {
    // Every gate entry (the strided pass above sees only some).
    int gate_nonzero = 0;
    for (int64_t g = 0; g < out.num_gaps; ++g) {
      const size_t k = static_cast<size_t>(g * out.gap_columns + layout.insert_gate);
      const double fd = (loss_at(&out.gap_out, k, out.gap_out[k] + eps) -
                         loss_at(&out.gap_out, k, out.gap_out[k] - eps)) /
                        (2.0 * eps);
      EXPECT_NEAR(d_gap[k], fd, 2e-3 + 2e-2 * std::fabs(fd)) << param.name << " gate " << g;
      gate_nonzero += d_gap[k] != 0.0f;
    }
    EXPECT_GT(gate_nonzero, out.num_gaps / 2);
  }
  if (heads.process == ProcessKind::kEdit && heads.insertion_only) {
    // Insertion only: the deletion / substitution heads get no gradient.
    for (size_t k = 0; k < d_token.size(); ++k) EXPECT_EQ(d_token[k], 0.0f);
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllHeads, BatchLossGradientTest,
    ::testing::Values(LossCase{"dfm", TrainProcess::kDfmUniform, false},
                      LossCase{"edit_pairs", TrainProcess::kEdit, true},
                      LossCase{"edit_insertion_only", TrainProcess::kEdit, false},
                      LossCase{"edit_insertion_gate", TrainProcess::kEdit, false, true},
                      LossCase{"edit_pairs_gate", TrainProcess::kEdit, true, true},
                      LossCase{"branching", TrainProcess::kBranching, false}),
    [](const ::testing::TestParamInfo<LossCase>& info) { return std::string(info.param.name); });

// With per-gap times every gap row's loss uses its own time (the survival
// scale S(t_g)): the batch loss equals the sum over gaps of the loss of a
// copy whose sequence has that gap's time and whose other gaps weigh 0.
TEST(BatchLossTest, PerGapTimesScaleEachGapAtItsOwnTime) {
  const Vocabulary vocab = Letters();
  const int32_t v = vocab.size();
  std::vector<std::vector<Token>> x1;
  for (size_t i = 0; i < 4; ++i) x1.push_back(*vocab.Encode(Words()[i]));
  const SequenceBatch x1b = *SequenceBatch::FromVectors(x1, v);
  std::shared_ptr<const Scheduler> sched(*MakeScheduler("poly:3"));
  std::unique_ptr<TimeDistribution> p = *MakeTimeDistribution("beta:3,1");
  EditFlowOptions opt;
  opt.vocab_size = v;
  opt.insertion_order = InsertionOrder::kLeftToRight;
  opt.all_prefixes = true;
  opt.gap_time_distribution = p.get();
  absl::StatusOr<TrainingBatch> tb =
      MakeEditFlowBatch(x1b, BatchTimes::Constant(0.5), *sched, opt, 9);
  ASSERT_TRUE(tb.ok()) << tb.status();
  OutputHeads heads;
  heads.process = ProcessKind::kEdit;
  heads.insertion_only = true;
  heads.insert_scale = sched;
  const Transformer::Outputs out =
      RandomOutputs(tb->x_t, MakeHeadLayout(ProcessKind::kEdit, v), 12);
  std::vector<float> d_token(out.token_out.size()), d_gap(out.gap_out.size());
  const double total = *BatchLoss(*tb, heads, out, d_token, d_gap);

  double sum = 0.0;
  for (int64_t b = 0; b < x1b.num_sequences(); ++b) {
    for (int64_t j = 0; j <= x1b.length(b); ++j) {
      const int64_t g = x1b.offsets()[b] + b + j;
      TrainingBatch one = *tb;
      one.gap_times.clear();
      one.x_t.set_time(b, tb->gap_times[static_cast<size_t>(g)]);
      std::fill(one.gap_weights.begin(), one.gap_weights.end(), 0.0f);
      one.gap_weights[static_cast<size_t>(g)] = tb->gap_weights[static_cast<size_t>(g)];
      absl::StatusOr<double> l = BatchLoss(one, heads, out, d_token, d_gap);
      ASSERT_TRUE(l.ok()) << l.status();
      sum += *l;
    }
  }
  EXPECT_NEAR(total, sum, 1e-5 * std::fabs(sum));
  // Not vacuous: at the sequences' own time the loss differs.
  TrainingBatch shared = *tb;
  shared.gap_times.clear();
  EXPECT_GT(std::fabs(*BatchLoss(shared, heads, out, d_token, d_gap) - total),
            1e-3 * std::fabs(total));
  // A gap-time count that does not match the gaps is an error.
  shared.gap_times.assign(3, 0.5);
  EXPECT_FALSE(BatchLoss(shared, heads, out, d_token, d_gap).ok());
}

// Trained is a trainer run to its last step on the test words and the model
// loaded back from the checkpoint it wrote.
struct Trained {
  std::optional<Trainer> trainer;
  std::optional<TrainedModel> model;
};

// TrainAndLoad trains with `o` (x0: (x0, x1) pairs, or none) and loads the
// checkpoint (bound_factor as in LoadTrainedModel). Call it inside
// ASSERT_NO_FATAL_FAILURE.
void TrainAndLoad(const TrainerOptions& o, Trained* out, std::vector<std::vector<Token>> x0 = {},
                  double bound_factor = 0.0) {
  absl::StatusOr<Trainer> t = Trainer::Create(o, WordData(), std::move(x0));
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_TRUE(t->Train().ok());
  absl::StatusOr<TrainedModel> tm = LoadTrainedModel(o.checkpoint_path, bound_factor);
  ASSERT_TRUE(tm.ok()) << tm.status();
  out->trainer.emplace(std::move(*t));
  out->model.emplace(std::move(*tm));
}

TEST(BatchLossTest, IsAMeanOverSequences) {
  // A batch and the same batch twice (same states, same outputs per row)
  // have the same loss: the loss is a mean over sequences, not a sum.
  const Vocabulary vocab = Letters();
  const int32_t v = vocab.size();
  std::shared_ptr<const Scheduler> sched(*MakeScheduler("linear"));
  DfmOptions opt;
  opt.vocab_size = v;
  auto loss_of = [&](int copies) {
    std::vector<std::vector<Token>> seqs;
    for (int c = 0; c < copies; ++c) {
      seqs.push_back(*vocab.Encode("horse"));
      seqs.push_back(*vocab.Encode("cat"));
    }
    // t = 0: every position is masked, whatever the path draws.
    TrainingBatch tb = *MakeDfmBatch(*SequenceBatch::FromVectors(seqs, v),
                                     BatchTimes::Constant(0.0), *sched, opt, 1);
    Transformer::Outputs out;
    out.num_tokens = tb.x_t.num_tokens();
    out.num_gaps = tb.x_t.num_gaps();
    out.token_columns = v;
    out.token_out.assign(static_cast<size_t>(out.num_tokens * v), 0.0f);
    const int64_t per_copy = out.num_tokens / copies;
    for (int64_t r = 0; r < out.num_tokens; ++r) {
      out.token_out[r * v + 5 + (r % per_copy) % 7] = 1.5f;
    }
    std::vector<float> dt(out.token_out.size()), dg;
    OutputHeads heads;
    heads.process = ProcessKind::kDfm;
    return *BatchLoss(tb, heads, out, dt, dg);
  };
  const double once = loss_of(1), twice = loss_of(2);
  EXPECT_GT(once, 0.0);
  EXPECT_NEAR(twice, once, 1e-5 * once);
}

// ---------------------------------------------------------------------------
// Learning on the tiny data set.

double Mean(const std::vector<double>& v, size_t lo, size_t hi) {
  return std::accumulate(v.begin() + static_cast<long>(lo), v.begin() + static_cast<long>(hi),
                         0.0) /
         static_cast<double>(hi - lo);
}

class LearningTest : public ::testing::TestWithParam<TrainProcess> {};

TEST_P(LearningTest, LossGoesDownWithoutNaN) {
  TrainerOptions o = TinyOptions(GetParam(), 300);
  if (GetParam() == TrainProcess::kBranching) o.branching_deletion_probability = 0.2;
  absl::StatusOr<Trainer> trainer = Trainer::Create(o, WordData());
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  std::vector<double> losses;
  for (int i = 0; i < 300; ++i) {
    absl::StatusOr<StepStats> st = trainer->Step();
    ASSERT_TRUE(st.ok()) << st.status();
    ASSERT_TRUE(std::isfinite(st->loss)) << "step " << st->step;
    losses.push_back(st->loss);
  }
  const double first = Mean(losses, 0, 50), last = Mean(losses, 250, 300);
  // A clear margin: the last 50 steps average at most 75% of the first 50.
  EXPECT_LT(last, 0.75 * first) << TrainProcessName(GetParam()) << ": first " << first << ", last "
                                << last;
}

INSTANTIATE_TEST_SUITE_P(AllProcesses, LearningTest,
                         ::testing::Values(TrainProcess::kDfmMask, TrainProcess::kDfmUniform,
                                           TrainProcess::kEdit, TrainProcess::kBranching),
                         [](const ::testing::TestParamInfo<TrainProcess>& info) {
                           std::string name = TrainProcessName(info.param);
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// Fraction of `samples` that are words of the data.
double InSupport(const SequenceBatch& samples) {
  const Vocabulary vocab = Letters();
  std::set<std::vector<Token>> words;
  for (const std::string& w : Words()) words.insert(*vocab.Encode(w));
  int64_t in = 0;
  for (const auto& s : samples.ToVectors()) in += words.contains(s);
  return static_cast<double>(in) / static_cast<double>(samples.num_sequences());
}

TEST(TrainedModelTest, EditFlowSamplesLandInTheDataSupport) {
  // Insertion-only Edit Flow (x_0 empty, kappa = t^3): 2,000 steps of 32
  // words, then 400 samples per sampler. Measured at this seed: Gillespie
  // ~0.9 in support, tau-leaping (100 kappa steps) ~0.8; the thresholds
  // leave room for float differences across machines. (A character bigram
  // fitted to these words puts < 0.1 of its samples on them.)
  // Both insertion orders (left to right: x_t is always a prefix), the
  // second also with per-gap times (time at the model's heads).
  for (int variant = 0; variant < 3; ++variant) {
    const InsertionOrder order =
        variant == 0 ? InsertionOrder::kIndependent : InsertionOrder::kLeftToRight;
    const bool l2r = order == InsertionOrder::kLeftToRight, per_gap = variant == 2;
    const char* name = variant == 0 ? "independent" : (per_gap ? "per-gap" : "left-to-right");
    SCOPED_TRACE(name);
    TrainerOptions o = TinyOptions(TrainProcess::kEdit, 2000);
    o.time_distribution = "beta:3,1";
    o.insertion_order = order;
    o.per_gap_times = per_gap;
    o.checkpoint_path = TempPath(absl::StrCat("edit_words_", variant, ".ckpt"));
    Trained run;
    ASSERT_NO_FATAL_FAILURE(TrainAndLoad(o, &run));
    std::optional<TrainedModel>& tm = run.model;
    // The order is part of the training settings a resume continues with.
    absl::StatusOr<Trainer> resumed = Trainer::Resume(o.checkpoint_path, WordData());
    ASSERT_TRUE(resumed.ok()) << resumed.status();
    EXPECT_EQ(resumed->options().insertion_order, order);
    EXPECT_EQ(resumed->options().per_gap_times, per_gap);
    EXPECT_EQ(resumed->model().config().causal, l2r);
    EXPECT_EQ(resumed->model().config().time_at_heads, per_gap);
    if (l2r) {
      // A causal model inserts into the last gap of each sequence only.
      const SequenceBatch probe = *SequenceBatch::FromVectors(
          {{7, 8}, {}, {9, 7, 10}}, tm->vocab.size(), std::vector<double>{0.3, 0.5, 0.9});
      RateOutputs rates;
      rates.Reset(probe, ProcessKind::kEdit, tm->vocab.size());
      ASSERT_TRUE(tm->model->Evaluate(probe, &rates).ok());
      for (int64_t b = 0; b < probe.num_sequences(); ++b) {
        const int64_t last = probe.offsets()[b + 1] + b;
        for (int64_t g = probe.offsets()[b] + b; g < last; ++g) {
          EXPECT_EQ(rates.insert_rate[g], 0.0);
        }
        EXPECT_GT(rates.insert_rate[last], 0.0);
      }
    }
    EXPECT_EQ(tm->model->process(), ProcessKind::kEdit);
    EXPECT_EQ(tm->max_length(), 5);
    EXPECT_FALSE(tm->needs_start_sequences());
    for (SamplerKind kind : {SamplerKind::kGillespie, SamplerKind::kTauLeap}) {
      SamplerOptions opt;
      opt.kind = kind;
      opt.steps = 100;
      opt.grid = TimeGrid::kKappa;
      opt.seed = 3;
      opt.max_length = tm->max_length();
      absl::StatusOr<SequenceBatch> start = tm->SourceBatch(400, 3);
      ASSERT_TRUE(start.ok()) << start.status();
      absl::StatusOr<SampleResult> r = Sample(*tm->model, tm->schedulers(), *start, opt);
      ASSERT_TRUE(r.ok()) << r.status();
      const double frac = InSupport(r->final_batch);
      EXPECT_GE(frac, kind == SamplerKind::kGillespie ? 0.75 : 0.6)
          << SamplerKindName(kind) << " in-support fraction " << frac;
      std::printf("edit flow (%s) %s: in-support fraction %.3f\n", name,
                  SamplerKindName(kind).c_str(), frac);
    }
  }
}

TEST(TrainedModelTest, DfmMaskSamplesLandInTheDataSupport) {
  TrainerOptions o = TinyOptions(TrainProcess::kDfmMask, 1500);
  o.checkpoint_path = TempPath("dfm_words.ckpt");
  Trained run;
  ASSERT_NO_FATAL_FAILURE(TrainAndLoad(o, &run));
  std::optional<TrainedModel>& tm = run.model;
  SamplerOptions opt;
  opt.kind = SamplerKind::kGillespie;
  opt.seed = 5;
  opt.max_length = tm->max_length();
  absl::StatusOr<SequenceBatch> start = tm->SourceBatch(400, 5);
  ASSERT_TRUE(start.ok());
  // Lengths follow the training histogram (3, 4 or 5), all MASK.
  for (int64_t b = 0; b < start->num_sequences(); ++b) {
    EXPECT_GE(start->length(b), 3);
    EXPECT_LE(start->length(b), 5);
    for (Token t : start->sequence(b)) EXPECT_EQ(t, Vocabulary::kMask);
  }
  absl::StatusOr<SampleResult> r = Sample(*tm->model, tm->schedulers(), *start, opt);
  ASSERT_TRUE(r.ok()) << r.status();
  const double frac = InSupport(r->final_batch);
  EXPECT_GE(frac, 0.6) << "dfm-mask Gillespie in-support fraction " << frac;
  std::printf("dfm-mask gillespie: in-support fraction %.3f\n", frac);
}

// ---------------------------------------------------------------------------
// Checkpoints and resume.

std::vector<float> Params(const Trainer& t) {
  return {t.model().parameters().begin(), t.model().parameters().end()};
}

TEST(TrainerResumeTest, TwoNStepsEqualNPlusResumeN) {
  constexpr int64_t kN = 30;
  for (TrainProcess process : {TrainProcess::kEdit, TrainProcess::kBranching}) {
    TrainerOptions o = TinyOptions(process, 2 * kN);
    o.eval_fraction = 0.2;
    o.eval_every = 10;
    absl::StatusOr<Trainer> a = Trainer::Create(o, WordData());
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(a->Train().ok());

    const std::string path = TempPath(absl::StrCat("resume_", TrainProcessName(process), ".ckpt"));
    absl::StatusOr<Trainer> b = Trainer::Create(o, WordData());
    ASSERT_TRUE(b.ok());
    for (int64_t i = 0; i < kN; ++i) ASSERT_TRUE(b->Step().ok());
    ASSERT_TRUE(b->SaveCheckpoint(path).ok());
    absl::StatusOr<Trainer> c = Trainer::Resume(path, WordData());
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->step(), kN);
    ASSERT_TRUE(c->Train().ok());
    EXPECT_EQ(c->step(), 2 * kN);
    EXPECT_TRUE(Params(*a) == Params(*c)) << TrainProcessName(process);
    EXPECT_TRUE(std::equal(a->optimizer().first_moment().begin(),
                           a->optimizer().first_moment().end(),
                           c->optimizer().first_moment().begin()));
    EXPECT_TRUE(std::equal(a->optimizer().second_moment().begin(),
                           a->optimizer().second_moment().end(),
                           c->optimizer().second_moment().begin()));
  }
}

TEST(TrainerResumeTest, PairsResumeAndCsvLogContinue) {
  const Vocabulary vocab = Letters();
  std::vector<std::vector<Token>> x1, x0;
  for (size_t i = 0; i < Words().size(); ++i) {
    x1.push_back(*vocab.Encode(Words()[i]));
    std::vector<Token> src = x1.back();
    src[i % src.size()] = vocab.Encode("z")->front();  // one substitution
    if (i % 3 == 0) src.erase(src.begin());            // and a deletion
    x0.push_back(src);
  }
  const Dataset data = *Dataset::FromSequences(vocab, x1);
  TrainerOptions o = TinyOptions(TrainProcess::kEdit, 40);
  o.log_path = TempPath("pairs_log.csv");
  o.log_every = 5;
  o.checkpoint_path = TempPath("pairs.ckpt");
  o.checkpoint_every = 20;
  absl::StatusOr<Trainer> a = Trainer::Create(o, data, x0);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(a->Train().ok());
  const std::string full_log = *ReadFile(o.log_path);
  const std::vector<std::string> lines = absl::StrSplit(full_log, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u + 8u);
  EXPECT_EQ(lines[0], "step,train_loss,eval_loss,lr,tokens_per_s,seconds");
  EXPECT_EQ(lines[8].substr(0, 3), "40,");

  // Train 20 steps, checkpoint, resume to 40: same parameters, log rows up to
  // 20 kept and rows 25..40 appended.
  TrainerOptions o2 = o;
  o2.steps = 40;
  o2.checkpoint_every = 0;
  o2.log_path = TempPath("pairs_log2.csv");
  o2.checkpoint_path = TempPath("pairs2.ckpt");
  absl::StatusOr<Trainer> b = Trainer::Create(o2, data, x0);
  ASSERT_TRUE(b.ok());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(b->Step().ok());
  ASSERT_TRUE(b->SaveCheckpoint(o2.checkpoint_path).ok());
  ASSERT_TRUE(WriteFileAtomically(o2.log_path,
                                  "step,train_loss,eval_loss,lr,tokens_per_s,seconds\n"
                                  "5,1,,1,1,1\n20,1,,1,1,1\n30,1,,1,1,1\n")
                  .ok());
  ResumeOverrides ov;
  ov.log_path = o2.log_path;
  absl::StatusOr<Trainer> c = Trainer::Resume(o2.checkpoint_path, data, x0, ov);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->Train().ok());
  EXPECT_TRUE(Params(*a) == Params(*c));
  const std::vector<std::string> rows =
      absl::StrSplit(*ReadFile(o2.log_path), '\n', absl::SkipEmpty());
  ASSERT_EQ(rows.size(), 1u + 2u + 4u);  // header, 5 and 20 kept, 25..40 new
  EXPECT_EQ(rows[3].substr(0, 3), "25,");

  // The checkpoint makes an editing model: it needs start sequences.
  absl::StatusOr<TrainedModel> tm = LoadTrainedModel(o.checkpoint_path);
  ASSERT_TRUE(tm.ok()) << tm.status();
  EXPECT_TRUE(tm->needs_start_sequences());
  EXPECT_FALSE(tm->SourceBatch(4, 1).ok());
  absl::StatusOr<SequenceBatch> start = tm->StartFromText({"hzrse", "cat"});
  ASSERT_TRUE(start.ok());
  SamplerOptions opt;
  opt.max_length = tm->max_length();
  EXPECT_TRUE(Sample(*tm->model, tm->schedulers(), *start, opt).ok());
  EXPECT_FALSE(tm->StartFromText({"HORSE"}).ok());
}

TEST(TrainerResumeTest, ResultsDoNotDependOnThreadCount) {
  std::vector<float> params[2];
  for (int threads : {1, 2}) {
    TrainerOptions o = TinyOptions(TrainProcess::kEdit, 15);
    o.threads = threads;
    o.batch_size = 64;
    absl::StatusOr<Trainer> t = Trainer::Create(o, WordData());
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(t->Train().ok());
    params[threads - 1] = Params(*t);
  }
  EXPECT_TRUE(params[0] == params[1]);
}

TEST(TrainerResumeTest, CorruptOrForeignCheckpointsAreErrors) {
  TrainerOptions o = TinyOptions(TrainProcess::kEdit, 5);
  o.checkpoint_path = TempPath("corrupt.ckpt");
  absl::StatusOr<Trainer> t = Trainer::Create(o, WordData());
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(t->Train().ok());
  std::string bytes = *ReadFile(o.checkpoint_path);

  const std::string flipped = TempPath("flipped.ckpt");
  std::string bad = bytes;
  bad[bad.size() / 2] ^= 0x40;
  ASSERT_TRUE(WriteFileAtomically(flipped, bad).ok());
  absl::StatusOr<Trainer> r = Trainer::Resume(flipped, WordData());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("flipped.ckpt"), absl::string_view::npos) << r.status();
  EXPECT_NE(r.status().message().find("checksum"), absl::string_view::npos) << r.status();
  EXPECT_FALSE(LoadTrainedModel(flipped).ok());
  EXPECT_FALSE(LoadModelFromCheckpoint(flipped).ok());

  const std::string truncated = TempPath("truncated.ckpt");
  ASSERT_TRUE(WriteFileAtomically(truncated, bytes.substr(0, bytes.size() - 7)).ok());
  r = Trainer::Resume(truncated, WordData());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("truncated.ckpt"), absl::string_view::npos);

  EXPECT_FALSE(Trainer::Resume(TempPath("missing.ckpt"), WordData()).ok());

  // Other data than the checkpoint was trained on.
  const Vocabulary vocab = Letters();
  const Dataset other = *Dataset::FromSequences(vocab, {*vocab.Encode("zebra")});
  r = Trainer::Resume(o.checkpoint_path, other);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("differs"), absl::string_view::npos) << r.status();

  // A checkpoint whose settings are not a trainer's.
  Checkpoint c = *LoadCheckpoint(o.checkpoint_path);
  c.settings.erase("process");
  const std::string foreign = TempPath("foreign.ckpt");
  ASSERT_TRUE(SaveCheckpoint(foreign, c).ok());
  EXPECT_FALSE(Trainer::Resume(foreign, WordData()).ok());
  absl::StatusOr<TrainedModel> tm = LoadTrainedModel(foreign);
  ASSERT_FALSE(tm.ok());
  EXPECT_NE(tm.status().message().find("process"), absl::string_view::npos);
}

// ---------------------------------------------------------------------------
// Errors.

TEST(TrainerOptionsTest, BadOptionsAreErrorsNamingTheValue) {
  auto fails_with = [](TrainerOptions o, const std::string& needle,
                       std::vector<std::vector<Token>> sources = {}) {
    absl::StatusOr<Trainer> t = Trainer::Create(o, WordData(), sources);
    ASSERT_FALSE(t.ok()) << needle;
    EXPECT_NE(t.status().message().find(needle), absl::string_view::npos) << t.status();
  };
  TrainerOptions o = TinyOptions(TrainProcess::kEdit, 10);
  TrainerOptions bad = o;
  bad.batch_size = 0;
  fails_with(bad, "batch size must be >= 1, got 0");
  bad = o;
  bad.steps = 0;
  fails_with(bad, "steps must be >= 1, got 0");
  bad = o;
  bad.eval_fraction = 0.9;
  fails_with(bad, "0.9");
  bad = o;
  bad.scheduler = "poly:-1";
  fails_with(bad, "poly:-1");
  bad = o;
  bad.time_distribution = "gamma:1";
  fails_with(bad, "gamma:1");
  bad = o;
  bad.time_weight = "hazard:nope";
  fails_with(bad, "nope");
  bad = o;
  bad.model.max_length = 3;
  fails_with(bad, "max_length 3");
  bad = o;
  bad.model.dim = 30;  // not divisible by 4 heads
  fails_with(bad, "30");
  bad = o;
  bad.optimizer.learning_rate = -1;
  fails_with(bad, "-1");
  bad = o;
  bad.bound_factor = 0.5;
  fails_with(bad, "0.5");
  bad = o;
  bad.process = TrainProcess::kDfmMask;
  fails_with(bad, "pairs need --process edit", {{5}});
  fails_with(o, "got 1 sources for 10", {{5}});
  absl::StatusOr<Trainer> empty = Trainer::Create(o, Dataset());
  EXPECT_FALSE(empty.ok());
}

TEST(TrainerOptionsTest, DivergingTrainingIsAnErrorNamingTheStep) {
  // An absurd learning rate blows the parameters up; the first non-finite
  // output, loss or gradient stops training with the step in the message.
  TrainerOptions o = TinyOptions(TrainProcess::kEdit, 200);
  o.optimizer.learning_rate = 1e30;
  o.optimizer.warmup_steps = 0;
  o.optimizer.schedule = LrSchedule::kConstant;
  o.optimizer.clip_norm = 0.0;
  absl::StatusOr<Trainer> t = Trainer::Create(o, WordData());
  ASSERT_TRUE(t.ok()) << t.status();
  absl::Status s = t->Train();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("step "), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("training diverged"), absl::string_view::npos) << s;
}

// An unwritable checkpoint or log path fails Train before the first step,
// not when the checkpoint or log is first written.
TEST(TrainerOptionsTest, UnwritableOutputPathsFailBeforeTheFirstStep) {
  for (const bool log : {false, true}) {
    TrainerOptions o = TinyOptions(TrainProcess::kEdit, 50);
    const std::string bad = TempPath("missing_dir") + (log ? "/log.csv" : "/x.ckpt");
    (log ? o.log_path : o.checkpoint_path) = bad;
    absl::StatusOr<Trainer> t = Trainer::Create(o, WordData());
    ASSERT_TRUE(t.ok()) << t.status();
    int steps = 0;
    const absl::Status s = t->Train([&](const TrainProgress&) { ++steps; });
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find(bad), absl::string_view::npos) << s;
    EXPECT_EQ(steps, 0);
    EXPECT_EQ(t->step(), 0);
  }
}

// AdapterOutputs are a trained Edit model's multipliers and raw outputs on
// "", "ca", "hrse" at t = 0.2, 0.5, 0.95 (EvaluateAdapter).
struct AdapterOutputs {
  SequenceBatch batch;
  RateOutputs rates;
  Transformer::Outputs raw;
};

void EvaluateAdapter(const Trainer& t, const TrainedModel& tm, AdapterOutputs* a) {
  a->batch = *tm.StartFromText({"", "ca", "hrse"});
  a->batch.set_time(0, 0.2);
  a->batch.set_time(1, 0.5);
  a->batch.set_time(2, 0.95);
  a->rates.Reset(a->batch, ProcessKind::kEdit, tm.model->vocab_size());
  ASSERT_TRUE(tm.model->Evaluate(a->batch, &a->rates).ok());
  Transformer::Workspace ws;
  ASSERT_TRUE(t.model().Forward(a->batch, &ws, &a->raw).ok());
}

// ExpectSoftmaxOfRow expects dist[0..v) (a model's Evaluate) to be the
// softmax of row `row` of `logits` with the ids below first_token at 0.
void ExpectSoftmaxOfRow(const SoftmaxLogits& logits, int64_t row, int32_t v, const double* dist) {
  const float* z = logits.logits.data() + row * v;
  double zmax = -1e30, sum = 0.0;
  for (int a = 0; a < v; ++a) zmax = std::max<double>(zmax, z[a]);
  for (int a = 0; a < v; ++a) sum += std::exp(z[a] - zmax);
  for (int a = 0; a < v; ++a) {
    const double want = a < logits.first_token ? 0.0 : std::exp(z[a] - zmax) / sum;
    EXPECT_NEAR(dist[a], want, 1e-6) << "row " << row << " id " << a;
  }
}

// A DFM model's softmax logits (the samplers' fused event kernels) give the
// multipliers Evaluate gives: row scale = token_rate (0 for frozen, non-MASK
// tokens of the mask source), softmax = token_dist on the non-special ids.
TEST(RateModelAdapterTest, DfmSoftmaxLogitsAgreeWithEvaluate) {
  TrainerOptions o = TinyOptions(TrainProcess::kDfmMask, 3);
  o.checkpoint_path = TempPath("adapter_dfm.ckpt");
  Trained run;
  ASSERT_NO_FATAL_FAILURE(TrainAndLoad(o, &run));
  RateModel& model = *run.model->model;
  ASSERT_TRUE(model.ProvidesSoftmaxLogits());
  const int32_t v = model.vocab_size();
  const Token m = Vocabulary::kMask;
  const std::vector<double> times = {0.3, 0.8};
  const SequenceBatch batch = *SequenceBatch::FromVectors({{m, m, 7}, {9, m}}, v, times);
  RateOutputs rates;
  rates.Reset(batch, ProcessKind::kDfm, v);
  ASSERT_TRUE(model.Evaluate(batch, &rates).ok());
  SoftmaxLogits logits;
  ASSERT_TRUE(model.EvaluateSoftmaxLogits(batch, &logits).ok());
  ASSERT_EQ(logits.logits.size(), static_cast<size_t>(batch.num_tokens() * v));
  EXPECT_EQ(logits.first_token, Vocabulary::kNumSpecials);
  int moving = 0;
  for (int64_t r = 0; r < batch.num_tokens(); ++r) {
    EXPECT_EQ(logits.row_scales[r], rates.token_rate[r]) << "row " << r;
    moving += logits.row_scales[r] > 0.0f;
    if (logits.row_scales[r] == 0.0f) continue;
    ExpectSoftmaxOfRow(logits, r, v, rates.token_dist.data() + r * v);
  }
  EXPECT_EQ(moving, 3);  // the MASK rows
}

// An insertion-only Edit model's softmax logits (the fused Euler and Gillespie paths)
// are its gap rows: row scale = insert_rate (as a float; 0 at the gaps a
// causal model does not insert at), softmax = insert_dist on the
// non-special ids; for independent and left-to-right insertion orders and
// with the insertion gate. A pairs-trained Edit model (substitutions and
// deletions) has no such logits.
TEST(RateModelAdapterTest, EditInsertionLogitsAgreeWithEvaluate) {
  for (int variant = 0; variant < 3; ++variant) {
    SCOPED_TRACE(variant);
    TrainerOptions o = TinyOptions(TrainProcess::kEdit, 3);
    o.checkpoint_path = TempPath(absl::StrCat("adapter_ins_", variant, ".ckpt"));
    if (variant == 1) o.insertion_order = InsertionOrder::kLeftToRight;
    if (variant == 2) o.model.insert_gate = true;
    Trained run;
    ASSERT_NO_FATAL_FAILURE(TrainAndLoad(o, &run));
    RateModel& model = *run.model->model;
    ASSERT_TRUE(model.ProvidesSoftmaxLogits());
    const int32_t v = model.vocab_size();
    const SequenceBatch batch = *run.model->StartFromText({"", "ca", "hrse"});
    SequenceBatch timed = batch;
    for (int64_t b = 0; b < 3; ++b) timed.set_time(b, 0.2 + 0.3 * static_cast<double>(b));
    RateOutputs rates;
    rates.Reset(timed, ProcessKind::kEdit, v);
    ASSERT_TRUE(model.Evaluate(timed, &rates).ok());
    SoftmaxLogits logits;
    ASSERT_TRUE(model.EvaluateSoftmaxLogits(timed, &logits).ok());
    const int64_t gaps = timed.num_tokens() + timed.num_sequences();
    ASSERT_EQ(logits.logits.size(), static_cast<size_t>(gaps * v));
    ASSERT_EQ(logits.row_scales.size(), static_cast<size_t>(gaps));
    EXPECT_EQ(logits.first_token, Vocabulary::kNumSpecials);
    int inserting = 0;
    for (int64_t g = 0; g < gaps; ++g) {
      EXPECT_EQ(logits.row_scales[g], static_cast<float>(rates.insert_rate[g])) << "gap " << g;
      inserting += logits.row_scales[g] > 0.0f;
      if (logits.row_scales[g] == 0.0f) continue;  // no insertions: Evaluate zeroes the row
      ExpectSoftmaxOfRow(logits, g, v, rates.insert_dist.data() + g * v);
    }
    // Left to right: the last gap of each sequence only.
    EXPECT_EQ(inserting, variant == 1 ? 3 : gaps);
  }
  TrainerOptions pairs = TinyOptions(TrainProcess::kEdit, 2);
  pairs.checkpoint_path = TempPath("adapter_pairs.ckpt");
  pairs.edit_source = EditSource::kNoise;
  pairs.noise_max_length = 3;
  Trained run;
  ASSERT_NO_FATAL_FAILURE(TrainAndLoad(pairs, &run));
  EXPECT_FALSE(run.model->model->ProvidesSoftmaxLogits());
}

TEST(RateModelAdapterTest, MultipliersFollowTheLossParametrization) {
  TrainerOptions o = TinyOptions(TrainProcess::kEdit, 3);
  o.checkpoint_path = TempPath("adapter.ckpt");
  const Vocabulary vocab = Letters();
  std::vector<std::vector<Token>> x0;
  for (const std::string& w : Words()) x0.push_back(*vocab.Encode(w.substr(1)));
  Trained run;
  ASSERT_NO_FATAL_FAILURE(TrainAndLoad(o, &run, x0, /*bound_factor=*/3.0));
  std::optional<Trainer>& t = run.trainer;
  std::optional<TrainedModel>& tm = run.model;
  EXPECT_EQ(tm->model->BoundFactor(), 3.0);
  EXPECT_TRUE(tm->model->TimeDependent());
  EXPECT_FALSE(tm->model->ProvidesSoftmaxLogits());  // only DFM and insertion-only Edit heads

  AdapterOutputs a;
  EvaluateAdapter(*t, *tm, &a);
  const SequenceBatch& batch = a.batch;
  const RateOutputs& out = a.rates;
  const Transformer::Outputs& raw = a.raw;
  const HeadLayout layout = t->model().layout();
  std::shared_ptr<const Scheduler> cubic(*MakeScheduler("poly:3"));
  const int32_t v = vocab.size();
  for (int64_t b = 0; b < batch.num_sequences(); ++b) {
    const double c = cubic->Survival(batch.time(b));
    for (int64_t g = batch.offsets()[b] + b; g <= batch.offsets()[b + 1] + b; ++g) {
      const float* z = raw.gap_out.data() + g * raw.gap_columns;
      EXPECT_NEAR(out.insert_rate[g], c * std::exp(z[layout.insert_rate]),
                  1e-5 * out.insert_rate[g]);
      double zmax = -1e30, sum = 0;
      for (int a = 0; a < v; ++a) zmax = std::max<double>(zmax, z[layout.insert_logits + a]);
      for (int a = 0; a < v; ++a) sum += std::exp(z[layout.insert_logits + a] - zmax);
      for (int a = 0; a < v; ++a) {
        const double want =
            a < Vocabulary::kNumSpecials ? 0.0 : std::exp(z[layout.insert_logits + a] - zmax) / sum;
        EXPECT_NEAR(out.insert_dist[g * v + a], want, 1e-6);
      }
    }
    for (int64_t r = batch.offsets()[b]; r < batch.offsets()[b + 1]; ++r) {
      const float* z = raw.token_out.data() + r * raw.token_columns;
      EXPECT_NEAR(out.delete_rate[r], c / (1.0 + std::exp(-z[layout.delete_rate])), 1e-6);
      EXPECT_NEAR(out.token_rate[r], c * std::exp(z[layout.substitute_rate]),
                  1e-5 * out.token_rate[r]);
    }
  }
  absl::StatusOr<std::unique_ptr<RateModel>> plain = LoadModelFromCheckpoint(o.checkpoint_path);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ((*plain)->BoundFactor(), TransformerRateModel::kDefaultBoundFactor);
  EXPECT_EQ((*plain)->vocab_size(), vocab.size());

  // A sequence longer than the model accepts is an error naming it.
  SequenceBatch too_long = *SequenceBatch::FromVectors({std::vector<Token>(40, 7)}, v);
  RateOutputs o2;
  o2.Reset(too_long, ProcessKind::kEdit, v);
  EXPECT_FALSE(tm->model->Evaluate(too_long, &o2).ok());
}

TEST(RateModelAdapterTest, GatedInsertionRatesUseTheGatedSurvivalScale) {
  TrainerOptions o = TinyOptions(TrainProcess::kEdit, 3);
  o.checkpoint_path = TempPath("adapter_gate.ckpt");
  o.model.insert_gate = true;
  Trained run;
  ASSERT_NO_FATAL_FAILURE(TrainAndLoad(o, &run));
  std::optional<Trainer>& t = run.trainer;
  std::optional<TrainedModel>& tm = run.model;
  AdapterOutputs a;
  EvaluateAdapter(*t, *tm, &a);
  const SequenceBatch& batch = a.batch;
  const RateOutputs& out = a.rates;
  const Transformer::Outputs& raw = a.raw;
  const HeadLayout layout = t->model().layout();
  ASSERT_GE(layout.insert_gate, 0);
  std::shared_ptr<const Scheduler> cubic(*MakeScheduler("poly:3"));
  for (int64_t b = 0; b < batch.num_sequences(); ++b) {
    const double c = cubic->Survival(batch.time(b));
    for (int64_t g = batch.offsets()[b] + b; g <= batch.offsets()[b + 1] + b; ++g) {
      const float* z = raw.gap_out.data() + g * raw.gap_columns;
      const double gate = 1.0 / (1.0 + std::exp(-static_cast<double>(z[layout.insert_gate])));
      const double want = std::pow(c, 1.0 - gate) * std::exp(z[layout.insert_rate]);
      EXPECT_NEAR(out.insert_rate[g], want, 1e-5 * want);
    }
  }
  // The gate needs survival scaling and the exp link.
  TrainerOptions bad = o;
  bad.survival_scale = false;
  EXPECT_FALSE(Trainer::Create(bad, WordData()).ok());
  bad = o;
  bad.rate_link = RateLink::kSoftplus;
  EXPECT_FALSE(Trainer::Create(bad, WordData()).ok());
}

// ---------------------------------------------------------------------------
// `jumpflow train` flags.

// RunCli runs `jumpflow COMMAND ARGS` through `run`, capturing stdout
// (into *out when given) and stderr.
int RunCli(int (*run)(int, char**), const char* command, std::vector<std::string> args,
           std::string* out, std::string* err) {
  args.insert(args.begin(), {"jumpflow", command});
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  ::testing::internal::CaptureStderr();
  ::testing::internal::CaptureStdout();
  const int rc = run(static_cast<int>(argv.size()), argv.data());
  *err = ::testing::internal::GetCapturedStderr();
  const std::string captured = ::testing::internal::GetCapturedStdout();
  if (out != nullptr) *out = captured;
  return rc;
}

int RunTrainArgs(std::vector<std::string> args, std::string* err) {
  return RunCli(cli::RunTrain, "train", std::move(args), nullptr, err);
}

int RunSampleArgs(std::vector<std::string> args, std::string* out, std::string* err) {
  return RunCli(cli::RunSample, "sample", std::move(args), out, err);
}

// WriteWords writes the test words to `path`, one per line.
void WriteWords(const std::string& path) {
  std::string text;
  for (const std::string& w : Words()) absl::StrAppend(&text, w, "\n");
  ASSERT_TRUE(WriteFileAtomically(path, text).ok());
}

// ExpectOneLineError checks a failed command: non-zero exit, one line on
// stderr containing `needle`.
void ExpectOneLineError(int rc, const std::string& err, const std::string& needle) {
  EXPECT_NE(rc, 0) << needle;
  EXPECT_NE(err.find(needle), std::string::npos) << "stderr: " << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

TEST(TrainCliTest, BadFlagsGiveOneLineAndNonZeroExit) {
  const std::string data = TempPath("cli_words.txt");
  ASSERT_NO_FATAL_FAILURE(WriteWords(data));
  const std::string ckpt = TempPath("cli.ckpt");
  std::filesystem::remove(ckpt);  // the --resume case needs it missing
  struct Case {
    std::vector<std::string> args;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {{"--data", data, "--out", ckpt, "--bogus", "1"}, "unknown flag --bogus"},
      {{"--data", data}, "--out CKPT is required"},
      {{"--out", ckpt}, "exactly one of --data"},
      {{"--data", data, "--out", ckpt, "--process", "diffusion"}, "unknown process 'diffusion'"},
      {{"--data", data, "--out", ckpt, "--steps", "0"}, "--steps must be >= 1, got 0"},
      {{"--data", data, "--out", ckpt, "--batch", "x"}, "--batch expects an integer, got 'x'"},
      {{"--data", data, "--out", ckpt, "--lr", "nan"}, "--lr expects a finite number"},
      {{"--data", data, "--out", ckpt, "--scheduler", "cubic"}, "cubic"},
      {{"--data", data, "--out", ckpt, "--rate-scale", "half"}, "--rate-scale must be"},
      {{"--data", data, "--out", ckpt, "--insert-order", "random"}, "--insert-order must be"},
      {{"--data", data, "--out", ckpt, "--source", "noise", "--noise-max", "3", "--insert-order",
        "left-to-right"},
       "left-to-right insertions need the edit process"},
      {{"--data", data, "--out", ckpt, "--process", "dfm-mask", "--insert-order", "left-to-right"},
       "left-to-right insertions need the edit process"},
      {{"--data", data, "--out", ckpt, "--gap-times", "each"}, "--gap-times must be"},
      {{"--data", data, "--out", ckpt, "--gap-times", "per-gap"},
       "per-gap times need left-to-right insertions"},
      {{"--data", data, "--out", ckpt, "--device", "gpu"}, "--device: unknown device 'gpu'"},
      {{"--data", TempPath("nope.txt"), "--out", ckpt}, "nope.txt"},
      {{"--data", data, "--out", TempPath("nope_dir") + "/x.ckpt"},
       "nope_dir/x.ckpt: cannot create temporary file"},
      {{"--data", data, "--out", ::testing::TempDir()}, ": is a directory"},
      {{"--data", data, "--out", ckpt, "--resume"}, "cli.ckpt"},
  };
  std::vector<Case> all = cases;
  if (!kernels::CheckBackendAvailable(kernels::Backend::kCuda).ok()) {
    all.push_back({{"--data", data, "--out", ckpt, "--device", "cuda"}, "--device cuda: "});
  }
  for (const Case& c : all) {
    std::string err;
    const int rc = RunTrainArgs(c.args, &err);
    ExpectOneLineError(rc, err, c.needle);
  }

  // A short run writes the checkpoint and log; --resume continues it and
  // refuses flags that would change the training settings.
  const std::string log = TempPath("cli_log.csv");
  std::string err;
  ASSERT_EQ(RunTrainArgs({"--data", data, "--out", ckpt, "--log", log, "--steps", "6", "--dim",
                          "16", "--layers", "1", "--batch", "8", "--eval-fraction", "0.2",
                          "--eval-every", "3", "--quiet"},
                         &err),
            0)
      << err;
  EXPECT_TRUE(LoadTrainedModel(ckpt).ok());
  EXPECT_EQ(
      RunTrainArgs({"--data", data, "--out", ckpt, "--resume", "--steps", "8", "--quiet"}, &err), 0)
      << err;
  EXPECT_EQ((*LoadCheckpoint(ckpt)).optimizer_step, 8);
  EXPECT_NE(RunTrainArgs({"--data", data, "--out", ckpt, "--resume", "--lr", "1"}, &err), 0);
  EXPECT_NE(err.find("--lr cannot be combined with --resume"), std::string::npos) << err;
}

// A DFM checkpoint samples with tau-leaping and with Gillespie through the
// fused event kernels (--device cpu); --device cuda runs them on the GPU
// when there is one and is a one-line error otherwise, as it is for an
// unknown device, the oracle or a sampler without the fused path. jumpflow
// bench compares the fused and per-sequence paths (--events both).
TEST(SampleCliTest, DfmCheckpointsUseTheFusedKernelsOnTheChosenDevice) {
  const std::string data = TempPath("sample_cli_words.txt");
  ASSERT_NO_FATAL_FAILURE(WriteWords(data));
  const std::string ckpt = TempPath("sample_cli_dfm.ckpt");
  std::string out, err;
  ASSERT_EQ(RunTrainArgs({"--data", data, "--out", ckpt, "--process", "dfm-mask", "--steps", "5",
                          "--dim", "16", "--layers", "1", "--batch", "8", "--quiet"},
                         &err),
            0)
      << err;
  const std::vector<std::string> base = {"--model",  ckpt,      "--num", "50",     "--sampler",
                                         "tau-leap", "--steps", "8",     "--show", "0"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  ASSERT_EQ(RunSampleArgs(with({"--device", "cpu"}), &out, &err), 0) << err;
  EXPECT_NE(err.find("sampled 50 sequences: tau-leap sampler"), std::string::npos) << err;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 50) << out;
  ASSERT_EQ(RunSampleArgs(with({"--device", "cpu", "--sampler", "gillespie"}), &out, &err), 0)
      << err;
  EXPECT_NE(err.find("sampled 50 sequences: gillespie sampler"), std::string::npos) << err;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 50) << out;
  const bool gpu = kernels::CheckBackendAvailable(kernels::Backend::kCuda).ok();
  for (const char* sampler : {"tau-leap", "gillespie"}) {
    EXPECT_EQ(RunSampleArgs(with({"--device", "cuda", "--sampler", sampler}), &out, &err) == 0, gpu)
        << sampler << ": " << err;
    if (!gpu) {
      EXPECT_NE(err.find("--device cuda: "), std::string::npos) << err;
    }
  }
  int rc = RunSampleArgs(with({"--device", "gpu"}), &out, &err);
  ExpectOneLineError(rc, err, "--device: unknown device 'gpu'");
  if (gpu) {
    rc = RunSampleArgs(with({"--device", "cuda", "--sampler", "adaptive"}), &out, &err);
    ExpectOneLineError(rc, err, "only DFM checkpoints");
  }

  // jumpflow bench --events both: one row each way for the samplers with a
  // fused path, one row for the others.
  const std::vector<std::string> bench = {
      "--model", ckpt, "--samplers",   "tau-leap,adaptive,gillespie",
      "--steps", "8",  "--tolerances", "0.5",
      "--num",   "30", "--threads",    "1"};
  auto bench_with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = bench;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  ASSERT_EQ(RunCli(cli::RunBench, "bench", bench_with({"--events", "both"}), &out, &err), 0) << err;
  for (const char* row : {"| tau-leap | 8 steps, fused |", "| tau-leap | 8 steps, per-sequence |",
                          "| adaptive | tol 0.5 |", "| gillespie | exact, fused |",
                          "| gillespie | exact, per-sequence |"}) {
    EXPECT_NE(out.find(row), std::string::npos) << row << "\n" << out;
  }
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2 + 2 + 5) << out;  // title, table
  rc = RunCli(cli::RunBench, "bench", bench_with({"--events", "sideways"}), &out, &err);
  ExpectOneLineError(rc, err, "--events must be fused, per-sequence or both");
  rc = RunCli(cli::RunBench, "bench", bench_with({"--device", "cuda"}), &out, &err);
  ExpectOneLineError(rc, err, gpu ? "only DFM checkpoints" : "--device cuda: ");
}

// An insertion-only Edit Flow checkpoint (left to right, as the demo's)
// samples with Euler and exact Gillespie through the fused kernels: jumpflow
// bench --events both has a fused and a per-sequence row for each and one
// tau-leap row (no fused path); --device cuda is for Euler and Gillespie
// only.
TEST(SampleCliTest, EditCheckpointsUseTheFusedKernelsForEulerAndGillespie) {
  const std::string data = TempPath("sample_cli_edit_words.txt");
  ASSERT_NO_FATAL_FAILURE(WriteWords(data));
  const std::string ckpt = TempPath("sample_cli_edit.ckpt");
  std::string out, err;
  ASSERT_EQ(RunTrainArgs({"--data", data, "--out", ckpt, "--process", "edit", "--insert-order",
                          "left-to-right", "--steps", "5", "--dim", "16", "--layers", "1",
                          "--batch", "8", "--quiet"},
                         &err),
            0)
      << err;
  ASSERT_EQ(RunCli(cli::RunBench, "bench",
                   {"--model", ckpt, "--data", data, "--samplers", "euler,tau-leap,gillespie",
                    "--steps", "8", "--num", "30", "--threads", "1", "--events", "both"},
                   &out, &err),
            0)
      << err;
  for (const char* row :
       {"| euler | 8 steps, fused |", "| euler | 8 steps, per-sequence |", "| tau-leap | 8 steps |",
        "| gillespie | exact, fused |", "| gillespie | exact, per-sequence |"}) {
    EXPECT_NE(out.find(row), std::string::npos) << row << "\n" << out;
  }
  const bool gpu = kernels::CheckBackendAvailable(kernels::Backend::kCuda).ok();
  const std::vector<std::string> sample = {"--model", ckpt,       "--num", "20",       "--show",
                                           "0",       "--device", "cuda",  "--sampler"};
  for (const char* sampler : {"euler", "gillespie", "tau-leap"}) {
    std::vector<std::string> args = sample;
    args.push_back(sampler);
    const int rc = RunSampleArgs(args, &out, &err);
    if (gpu && std::string(sampler) != "tau-leap") {
      EXPECT_EQ(rc, 0) << err;
    } else {
      ExpectOneLineError(rc, err, gpu ? "insertion-only Edit Flow checkpoints" : "--device cuda: ");
    }
  }
}

// Without held-out sequences the final line says so instead of printing a
// NaN eval loss.
TEST(TrainCliTest, NoHeldOutDataReportsNoEvalLoss) {
  const std::string data = TempPath("train_cli_no_eval.txt");
  ASSERT_NO_FATAL_FAILURE(WriteWords(data));
  std::string out, err;
  ASSERT_EQ(RunCli(cli::RunTrain, "train",
                   {"--data", data, "--out", TempPath("train_cli_no_eval.ckpt"), "--process",
                    "dfm-mask", "--steps", "3", "--dim", "16", "--layers", "1", "--batch", "8",
                    "--eval-fraction", "0", "--quiet"},
                   &out, &err),
            0)
      << err;
  EXPECT_NE(out.find("eval loss n/a (no held-out sequences)"), std::string::npos) << out;
  EXPECT_EQ(out.find("nan"), std::string::npos) << out;
}

TEST(TrainCliTest, HelpDocumentsEveryFlag) {
  std::vector<std::string> args = {"jumpflow", "train", "--help"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(cli::RunTrain(3, argv.data()), 0);
  const std::string help = ::testing::internal::GetCapturedStdout();
  for (const char* flag : {"--process", "--data", "--pairs", "--steps", "--batch", "--dim",
                           "--layers", "--out", "--resume", "--log", "--seed", "--threads", "--lr",
                           "--eval-every", "--max-length", "--chars"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
  EXPECT_NE(help.find("(default: 1000)"), std::string::npos);
}

}  // namespace
}  // namespace jumpflow
