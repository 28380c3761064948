// @brief Tests of the reference model (gradients against finite differences,
// determinism, ragged isolation, input errors), AdamW and checkpoints.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "jumpflow/model/checkpoint.h"
#include "jumpflow/model/optimizer.h"
#include "jumpflow/model/transformer.h"
#include "kernels/philox.h"
#include "oneapi/tbb/task_arena.h"
#include "sequences/file_util.h"
#include "sequences/sequence_batch.h"
#include "sequences/vocabulary.h"

namespace jumpflow {
namespace {

constexpr int32_t kVocab = Vocabulary::kNumSpecials + 4;  // 9 ids

TransformerConfig TinyConfig(ProcessKind process) {
  TransformerConfig c;
  c.vocab_size = kVocab;
  c.dim = 8;
  c.layers = 2;
  c.heads = 2;
  c.mlp_ratio = 2;
  c.max_length = 6;
  c.time_features = 4;
  c.process = process;
  return c;
}

// RandomBatch returns `count` sequences with lengths in [min_len, max_len],
// user tokens only, and times in (0, 1); reproducible from `seed`.
SequenceBatch RandomBatch(int count, int min_len, int max_len, int32_t vocab, uint64_t seed) {
  PhiloxStream rng(seed, 0, kPurposeUser);
  std::vector<std::vector<Token>> seqs;
  std::vector<double> times;
  for (int b = 0; b < count; ++b) {
    const int n = min_len + static_cast<int>(rng.UniformInt(max_len - min_len + 1));
    std::vector<Token> s;
    for (int i = 0; i < n; ++i) {
      s.push_back(Vocabulary::kNumSpecials +
                  static_cast<Token>(rng.UniformInt(vocab - Vocabulary::kNumSpecials)));
    }
    seqs.push_back(s);
    times.push_back(rng.Uniform());
  }
  return *SequenceBatch::FromVectors(seqs, vocab, times);
}

template <typename S>
std::vector<S> RandomVector(size_t n, uint64_t seed, double scale = 1.0) {
  PhiloxStream rng(seed, 1, kPurposeUser);
  std::vector<S> v(n);
  for (auto& x : v) x = static_cast<S>(scale * rng.Normal());
  return v;
}

// ---------------------------------------------------------------------------
// Config and layout.

TEST(TransformerConfigTest, SerializeParseRoundTrip) {
  TransformerConfig c = TinyConfig(ProcessKind::kBranching);
  absl::StatusOr<TransformerConfig> back = TransformerConfig::Parse(c.Serialize());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, c);
}

TEST(TransformerConfigTest, RejectsBadValuesNamingThem) {
  TransformerConfig c = TinyConfig(ProcessKind::kEdit);
  c.heads = 3;  // 8 % 3 != 0
  absl::Status s = c.Validate();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("heads 3"), std::string::npos) << s;
  c = TinyConfig(ProcessKind::kEdit);
  c.time_features = 5;
  EXPECT_NE(c.Validate().message().find("time_features"), std::string::npos);
  c = TinyConfig(ProcessKind::kEdit);
  c.vocab_size = 5;
  EXPECT_FALSE(c.Validate().ok());
  EXPECT_FALSE(TransformerConfig::Parse("dim=8\n").ok());
  absl::StatusOr<TransformerConfig> bad = TransformerConfig::Parse(
      absl::StrCat(TinyConfig(ProcessKind::kDfm).Serialize(), "depth=3\n"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("depth"), std::string::npos);
  EXPECT_FALSE(ParseProcessName("diffusion").ok());
}

TEST(TransformerConfigTest, OptionalFlagsRoundTripAndKeepTheirProcessRules) {
  // Each flag is absent from configs written without it (old checkpoints:
  // false) and round-trips when set; insert_gate and causal are edit only,
  // time_at_heads fits any process.
  struct Flag {
    const char* key;
    bool TransformerConfig::*member;
    bool edit_only;
  };
  for (const Flag& f : {Flag{"insert_gate", &TransformerConfig::insert_gate, true},
                        Flag{"causal", &TransformerConfig::causal, true},
                        Flag{"time_at_heads", &TransformerConfig::time_at_heads, false}}) {
    SCOPED_TRACE(f.key);
    TransformerConfig c = TinyConfig(ProcessKind::kEdit);
    EXPECT_EQ(c.Serialize().find(f.key), std::string::npos);
    c.*f.member = true;
    absl::StatusOr<TransformerConfig> back = TransformerConfig::Parse(c.Serialize());
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_TRUE((*back).*f.member);
    EXPECT_EQ(*back, c);
    EXPECT_FALSE(TransformerConfig::Parse(
                     absl::StrCat(TinyConfig(ProcessKind::kEdit).Serialize(), f.key, "=yes\n"))
                     .ok());
    TransformerConfig dfm = TinyConfig(ProcessKind::kDfm);
    dfm.*f.member = true;
    EXPECT_EQ(dfm.Validate().ok(), !f.edit_only);
  }
  // time_at_heads doubles the time projection ([gamma, beta]).
  TransformerConfig th = TinyConfig(ProcessKind::kDfm);
  th.time_at_heads = true;
  for (const ParameterGroup& g : TransformerParameterGroups(th)) {
    if (g.name == "time_weight" || g.name == "time_bias") {
      EXPECT_EQ(g.cols, 2 * th.dim) << g.name;
    }
  }
}

TEST(TransformerLayoutTest, HeadColumnsPerProcess) {
  const HeadLayout dfm = MakeHeadLayout(ProcessKind::kDfm, 30);
  EXPECT_EQ(dfm.token_columns, 30);
  EXPECT_EQ(dfm.gap_columns, 0);
  EXPECT_EQ(dfm.token_logits, 0);
  const HeadLayout edit = MakeHeadLayout(ProcessKind::kEdit, 30);
  EXPECT_EQ(edit.token_columns, 32);
  EXPECT_EQ(edit.gap_columns, 31);
  EXPECT_EQ(edit.delete_rate, 0);
  EXPECT_EQ(edit.substitute_rate, 1);
  EXPECT_EQ(edit.token_logits, 2);
  EXPECT_EQ(edit.insert_rate, 0);
  EXPECT_EQ(edit.insert_logits, 1);
  EXPECT_EQ(edit.insert_gate, -1);
  const HeadLayout gated = MakeHeadLayout(ProcessKind::kEdit, 30, /*insert_gate=*/true);
  EXPECT_EQ(gated.gap_columns, 32);
  EXPECT_EQ(gated.insert_rate, 0);
  EXPECT_EQ(gated.insert_logits, 1);
  EXPECT_EQ(gated.insert_gate, 31);
  const HeadLayout br = MakeHeadLayout(ProcessKind::kBranching, 30);
  EXPECT_EQ(br.token_columns, 32);
  EXPECT_EQ(br.gap_columns, 0);
  EXPECT_EQ(br.split_rate, 0);
  EXPECT_EQ(br.delete_logit, 1);
  EXPECT_EQ(br.token_logits, 2);
}

TEST(TransformerTest, GroupsTileTheParameterVectorAndInitIsSeeded) {
  absl::StatusOr<Transformer> a = Transformer::Create(TinyConfig(ProcessKind::kEdit), 5);
  absl::StatusOr<Transformer> b = Transformer::Create(TinyConfig(ProcessKind::kEdit), 5);
  absl::StatusOr<Transformer> c = Transformer::Create(TinyConfig(ProcessKind::kEdit), 6);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  int64_t next = 0;
  for (const ParameterGroup& g : a->ParameterGroups()) {
    EXPECT_EQ(g.offset, next) << g.name;
    EXPECT_EQ(g.size, g.rows * g.cols) << g.name;
    next += g.size;
  }
  EXPECT_EQ(next, a->NumParameters());
  EXPECT_TRUE(std::equal(a->parameters().begin(), a->parameters().end(), b->parameters().begin()));
  EXPECT_FALSE(std::equal(a->parameters().begin(), a->parameters().end(), c->parameters().begin()));
  // The init scales are as documented: check the QKV weight's spread.
  for (const ParameterGroup& g : a->ParameterGroups()) {
    if (g.name != "layer0.qkv_weight") continue;
    double ss = 0.0;
    for (int64_t k = 0; k < g.size; ++k) ss += std::pow(a->parameters()[g.offset + k], 2);
    EXPECT_NEAR(std::sqrt(ss / g.size), 1.0 / std::sqrt(8.0), 0.08);
  }
}

// ---------------------------------------------------------------------------
// Gradients against central finite differences, in double precision.

class GradientCheckTest : public ::testing::TestWithParam<ProcessKind> {};

double Objective(const BasicTransformer<double>& model, const SequenceBatch& batch,
                 const std::vector<double>& r_tok, const std::vector<double>& r_gap,
                 std::span<const double> gap_times) {
  BasicTransformer<double>::Workspace ws;
  BasicTransformer<double>::Outputs out;
  EXPECT_TRUE(model.Forward(batch, &ws, &out, gap_times).ok());
  double j = 0.0;
  for (size_t i = 0; i < out.token_out.size(); ++i) j += r_tok[i] * out.token_out[i];
  for (size_t i = 0; i < out.gap_out.size(); ++i) j += r_gap[i] * out.gap_out[i];
  return j;
}

// CheckGradients compares Backward with central differences for `config`
// (with per-gap times for a time_at_heads model with gap rows).
void CheckGradients(const TransformerConfig& config, uint32_t stream) {
  absl::StatusOr<BasicTransformer<double>> created = BasicTransformer<double>::Create(config, 11);
  ASSERT_TRUE(created.ok()) << created.status();
  // Perturb every parameter so LayerNorm gains / biases are not at 1 / 0.
  std::vector<double> params(created->parameters().begin(), created->parameters().end());
  const std::vector<double> noise = RandomVector<double>(params.size(), 12, 0.2);
  for (size_t i = 0; i < params.size(); ++i) params[i] += noise[i];
  absl::StatusOr<BasicTransformer<double>> model =
      BasicTransformer<double>::FromParameters(config, params);
  ASSERT_TRUE(model.ok()) << model.status();

  // Ragged batch, an empty sequence included.
  absl::StatusOr<SequenceBatch> batch = SequenceBatch::FromVectors(
      {{5, 6, 7}, {}, {8, 5, 5, 6, 7}, {6}}, kVocab, std::vector<double>{0.1, 0.5, 0.9, 0.33});
  ASSERT_TRUE(batch.ok());
  const HeadLayout layout = model->layout();
  const std::vector<double> r_tok =
      RandomVector<double>(batch->num_tokens() * layout.token_columns, 13);
  const std::vector<double> r_gap =
      RandomVector<double>(batch->num_gaps() * layout.gap_columns, 14);
  std::vector<double> gap_times;
  if (config.time_at_heads && layout.gap_columns > 0) {
    PhiloxStream rng(15, stream, kPurposeUser);
    for (int64_t g = 0; g < batch->num_gaps(); ++g) gap_times.push_back(rng.Uniform());
  }

  BasicTransformer<double>::Workspace ws;
  BasicTransformer<double>::Outputs out;
  ASSERT_TRUE(model->Forward(*batch, &ws, &out, gap_times).ok());
  std::vector<double> grad(model->NumParameters(), 0.0);
  ASSERT_TRUE(model->Backward(r_tok, r_gap, &ws, grad).ok());

  PhiloxStream pick(21, stream, kPurposeUser);
  const double h = 1e-5;
  for (const ParameterGroup& g : model->ParameterGroups()) {
    // Embedding rows that the batch uses: tokens 5..8 and the BOS/EOS ids;
    // positions 0..6 (max length 5 + 2).
    int64_t rows_used = g.rows;
    if (g.name == "position_embedding") rows_used = 7;
    // A causal gap head uses only the left state: rows d..2d-1 get nothing.
    if (config.causal && g.name == "gap_head_weight") rows_used = g.rows / 2;
    double max_abs = 0.0;
    for (int trial = 0; trial < 5; ++trial) {
      int64_t row = pick.UniformInt(static_cast<uint32_t>(rows_used));
      if (g.name == "token_embedding") {
        const Token used[] = {1, 2, 5, 6, 7, 8};
        row = used[pick.UniformInt(6)];
      }
      const int64_t col = pick.UniformInt(static_cast<uint32_t>(g.cols));
      const int64_t idx = g.offset + row * g.cols + col;
      std::vector<double> plus = params, minus = params;
      plus[idx] += h;
      minus[idx] -= h;
      const double jp = Objective(*BasicTransformer<double>::FromParameters(config, plus), *batch,
                                  r_tok, r_gap, gap_times);
      const double jm = Objective(*BasicTransformer<double>::FromParameters(config, minus), *batch,
                                  r_tok, r_gap, gap_times);
      const double fd = (jp - jm) / (2 * h);
      const double an = grad[idx];
      EXPECT_NEAR(an, fd, 1e-6 * std::max(1.0, std::abs(fd)))
          << g.name << "[" << row << "," << col << "]";
      max_abs = std::max(max_abs, std::abs(an));
    }
    // Not vacuous: every group receives gradient at the sampled entries.
    EXPECT_GT(max_abs, 1e-6) << g.name;
  }
}

TEST_P(GradientCheckTest, BackwardMatchesFiniteDifferences) {
  CheckGradients(TinyConfig(GetParam()), static_cast<uint32_t>(GetParam()));
}

TEST(TransformerTest, CausalBackwardMatchesFiniteDifferences) {
  TransformerConfig config = TinyConfig(ProcessKind::kEdit);
  config.causal = true;
  CheckGradients(config, 7);
}

TEST(TransformerTest, TimeAtHeadsBackwardMatchesFiniteDifferences) {
  for (ProcessKind process : {ProcessKind::kDfm, ProcessKind::kEdit}) {
    for (bool causal : {false, true}) {
      if (causal && process != ProcessKind::kEdit) continue;
      TransformerConfig config = TinyConfig(process);
      config.time_at_heads = true;
      config.causal = causal;
      SCOPED_TRACE(config.Serialize());
      CheckGradients(config, 8 + (causal ? 1 : 0) + 2 * static_cast<uint32_t>(process));
    }
  }
}

// With time_at_heads, a gap row given its own time t_g outputs what the same
// sequence gives at that gap when the whole sequence has time t_g, token rows
// keep the sequence's time, and only such a model takes gap times.
TEST(TransformerTest, PerGapTimesEqualWholeSequenceTimes) {
  for (bool causal : {false, true}) {
    TransformerConfig config = TinyConfig(ProcessKind::kEdit);
    config.time_at_heads = true;
    config.causal = causal;
    absl::StatusOr<BasicTransformer<double>> model = BasicTransformer<double>::Create(config, 6);
    ASSERT_TRUE(model.ok()) << model.status();
    // Larger time weights, so that time changes the outputs visibly.
    std::vector<double> params(model->parameters().begin(), model->parameters().end());
    const std::vector<double> noise = RandomVector<double>(params.size(), 16, 0.3);
    for (size_t i = 0; i < params.size(); ++i) params[i] += noise[i];
    model = BasicTransformer<double>::FromParameters(config, params);
    ASSERT_TRUE(model.ok());
    const std::vector<std::vector<Token>> seqs = {{5, 6, 7}, {}, {8, 5}};
    const std::vector<double> seq_times = {0.2, 0.5, 0.7};
    const std::vector<double> gap_times = {0.05, 0.9, 0.3, 0.6, 0.0, 1.0, 0.45, 0.2};
    const int64_t gc = model->layout().gap_columns, tc = model->layout().token_columns;
    auto run = [&](const std::vector<double>& times, std::span<const double> gt) {
      absl::StatusOr<SequenceBatch> batch = SequenceBatch::FromVectors(seqs, kVocab, times);
      EXPECT_TRUE(batch.ok());
      BasicTransformer<double>::Workspace ws;
      BasicTransformer<double>::Outputs out;
      EXPECT_TRUE(model->Forward(*batch, &ws, &out, gt).ok());
      return out;
    };
    const BasicTransformer<double>::Outputs mixed = run(seq_times, gap_times);
    const BasicTransformer<double>::Outputs plain = run(seq_times, {});
    EXPECT_EQ(mixed.token_out, plain.token_out);
    double min_change = 1e300;
    int64_t g = 0, b = 0;
    for (const auto& seq : seqs) {
      for (size_t j = 0; j <= seq.size(); ++j, ++g) {
        std::vector<double> times = seq_times;
        times[static_cast<size_t>(b)] = gap_times[static_cast<size_t>(g)];
        const BasicTransformer<double>::Outputs whole = run(times, {});
        double diff = 0.0, change = 0.0;
        for (int64_t c = 0; c < gc; ++c) {
          diff = std::max(diff, std::abs(mixed.gap_out[g * gc + c] - whole.gap_out[g * gc + c]));
          change =
              std::max(change, std::abs(mixed.gap_out[g * gc + c] - plain.gap_out[g * gc + c]));
        }
        EXPECT_LT(diff, 1e-12) << "gap " << g;
        min_change = std::min(min_change, change);
      }
      ++b;
    }
    EXPECT_GT(min_change, 1e-3);  // the gap times matter
    ASSERT_EQ(static_cast<int64_t>(mixed.token_out.size()), 5 * tc);

    // Errors: wrong count, a time outside [0, 1], a model with time in the trunk.
    absl::StatusOr<SequenceBatch> batch = SequenceBatch::FromVectors(seqs, kVocab, seq_times);
    ASSERT_TRUE(batch.ok());
    BasicTransformer<double>::Workspace ws;
    BasicTransformer<double>::Outputs out;
    const std::vector<double> short_times(7, 0.5);
    EXPECT_NE(model->Forward(*batch, &ws, &out, short_times).message().find("7 gap times"),
              std::string::npos);
    std::vector<double> bad = gap_times;
    bad[3] = 1.5;
    EXPECT_NE(model->Forward(*batch, &ws, &out, bad).message().find("gap row 3"),
              std::string::npos);
    config.time_at_heads = false;
    absl::StatusOr<BasicTransformer<double>> trunk = BasicTransformer<double>::Create(config, 6);
    ASSERT_TRUE(trunk.ok());
    EXPECT_NE(trunk->Forward(*batch, &ws, &out, gap_times).message().find("time_at_heads"),
              std::string::npos);
  }
}

// A causal model's outputs up to gap j are those of the prefix x[0, j): gap
// K of the whole sequence equals the last gap of x[0, K), token rows i < K
// equal the prefix's, and a non-causal model does not have this property.
TEST(TransformerTest, CausalOutputsDependOnlyOnThePrefix) {
  for (bool causal : {true, false}) {
    TransformerConfig config = TinyConfig(ProcessKind::kEdit);
    config.causal = causal;
    absl::StatusOr<BasicTransformer<double>> model = BasicTransformer<double>::Create(config, 5);
    ASSERT_TRUE(model.ok()) << model.status();
    const std::vector<Token> x = {5, 6, 7, 8, 5};
    const int64_t tc = model->layout().token_columns, gc = model->layout().gap_columns;
    auto run = [&](std::vector<Token> seq) {
      absl::StatusOr<SequenceBatch> batch =
          SequenceBatch::FromVectors({seq}, kVocab, std::vector<double>{0.4});
      EXPECT_TRUE(batch.ok());
      BasicTransformer<double>::Workspace ws;
      BasicTransformer<double>::Outputs out;
      EXPECT_TRUE(model->Forward(*batch, &ws, &out).ok());
      return out;
    };
    const BasicTransformer<double>::Outputs full = run(x);
    double max_diff = 0.0;
    for (size_t k = 0; k <= x.size(); ++k) {
      const BasicTransformer<double>::Outputs pre =
          run(std::vector<Token>(x.begin(), x.begin() + static_cast<int64_t>(k)));
      for (int64_t c = 0; c < gc; ++c) {
        max_diff = std::max(max_diff, std::abs(full.gap_out[k * gc + c] - pre.gap_out[k * gc + c]));
      }
      for (size_t i = 0; i < k; ++i) {
        for (int64_t c = 0; c < tc; ++c) {
          max_diff =
              std::max(max_diff, std::abs(full.token_out[i * tc + c] - pre.token_out[i * tc + c]));
        }
      }
    }
    if (causal) {
      EXPECT_LT(max_diff, 1e-12);
    } else {
      EXPECT_GT(max_diff, 1e-3);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllProcesses, GradientCheckTest,
                         ::testing::Values(ProcessKind::kDfm, ProcessKind::kEdit,
                                           ProcessKind::kBranching),
                         [](const auto& info) { return std::string(ProcessName(info.param)); });

TEST(TransformerTest, GradientAccumulatesIntoExistingBuffer) {
  const TransformerConfig config = TinyConfig(ProcessKind::kEdit);
  Transformer model = *Transformer::Create(config, 3);
  SequenceBatch batch = RandomBatch(5, 0, 6, kVocab, 4);
  Transformer::Workspace ws;
  Transformer::Outputs out;
  ASSERT_TRUE(model.Forward(batch, &ws, &out).ok());
  const std::vector<float> r_tok = RandomVector<float>(out.token_out.size(), 1);
  const std::vector<float> r_gap = RandomVector<float>(out.gap_out.size(), 2);
  std::vector<float> once(model.NumParameters(), 0.0f);
  ASSERT_TRUE(model.Backward(r_tok, r_gap, &ws, once).ok());
  std::vector<float> twice = once;
  ASSERT_TRUE(model.Backward(r_tok, r_gap, &ws, twice).ok());
  for (size_t i = 0; i < once.size(); ++i) ASSERT_FLOAT_EQ(twice[i], 2.0f * once[i]) << i;
}

// An inference forward (no activations kept, the layers sharing one block)
// gives the training forward's outputs bit for bit, for every process and
// for the causal, time-at-heads model; Backward after it is an error, and
// the same workspace serves a training forward and Backward afterwards.
TEST(TransformerTest, InferenceForwardMatchesTrainingForward) {
  for (int variant = 0; variant < 4; ++variant) {
    SCOPED_TRACE(variant);
    TransformerConfig config =
        TinyConfig(variant == 1 ? ProcessKind::kDfm
                                : (variant == 2 ? ProcessKind::kBranching : ProcessKind::kEdit));
    config.layers = 3;
    if (variant == 3) {
      config.causal = true;
      config.time_at_heads = true;
    }
    Transformer model = *Transformer::Create(config, 11);
    const SequenceBatch batch = RandomBatch(7, 0, 6, kVocab, 5 + variant);
    Transformer::Workspace ws;
    Transformer::Outputs train, infer;
    ASSERT_TRUE(model.Forward(batch, &ws, &train).ok());
    ASSERT_TRUE(model.Forward(batch, &ws, &infer, {}, Transformer::ForwardMode::kInference).ok());
    ASSERT_EQ(train.token_out.size(), infer.token_out.size());
    ASSERT_EQ(train.gap_out.size(), infer.gap_out.size());
    for (size_t i = 0; i < train.token_out.size(); ++i) {
      ASSERT_EQ(train.token_out[i], infer.token_out[i]) << "token " << i;
    }
    for (size_t i = 0; i < train.gap_out.size(); ++i) {
      ASSERT_EQ(train.gap_out[i], infer.gap_out[i]) << "gap " << i;
    }
    const std::vector<float> r_tok = RandomVector<float>(train.token_out.size(), 1);
    const std::vector<float> r_gap = RandomVector<float>(train.gap_out.size(), 2);
    std::vector<float> grad(model.NumParameters(), 0.0f);
    const absl::Status s = model.Backward(r_tok, r_gap, &ws, grad);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    ASSERT_TRUE(model.Forward(batch, &ws, &train).ok());
    EXPECT_TRUE(model.Backward(r_tok, r_gap, &ws, grad).ok());
  }
}

TEST(TransformerTest, FloatMatchesDouble) {
  const TransformerConfig config = TinyConfig(ProcessKind::kEdit);
  Transformer f = *Transformer::Create(config, 8);
  std::vector<double> pd(f.parameters().begin(), f.parameters().end());
  BasicTransformer<double> d = *BasicTransformer<double>::FromParameters(config, pd);
  SequenceBatch batch = RandomBatch(6, 0, 6, kVocab, 9);
  Transformer::Workspace wf;
  Transformer::Outputs of;
  BasicTransformer<double>::Workspace wd;
  BasicTransformer<double>::Outputs od;
  ASSERT_TRUE(f.Forward(batch, &wf, &of).ok());
  ASSERT_TRUE(d.Forward(batch, &wd, &od).ok());
  ASSERT_EQ(of.token_out.size(), od.token_out.size());
  ASSERT_EQ(of.gap_out.size(), od.gap_out.size());
  for (size_t i = 0; i < of.token_out.size(); ++i)
    EXPECT_NEAR(of.token_out[i], od.token_out[i], 1e-4);
  for (size_t i = 0; i < of.gap_out.size(); ++i) EXPECT_NEAR(of.gap_out[i], od.gap_out[i], 1e-4);
}

// ---------------------------------------------------------------------------
// Determinism and isolation.

struct RunResult {
  std::vector<float> token_out, gap_out, grad;
};

RunResult RunModel(const Transformer& model, const SequenceBatch& batch, int threads) {
  RunResult r;
  tbb::task_arena arena(threads);
  arena.execute([&] {
    Transformer::Workspace ws;
    Transformer::Outputs out;
    EXPECT_TRUE(model.Forward(batch, &ws, &out).ok());
    const std::vector<float> r_tok = RandomVector<float>(out.token_out.size(), 31);
    const std::vector<float> r_gap = RandomVector<float>(out.gap_out.size(), 32);
    r.grad.assign(model.NumParameters(), 0.0f);
    EXPECT_TRUE(model.Backward(r_tok, r_gap, &ws, r.grad).ok());
    r.token_out = out.token_out;
    r.gap_out = out.gap_out;
  });
  return r;
}

TEST(TransformerTest, ResultsDoNotDependOnThreadCount) {
  TransformerConfig config = TinyConfig(ProcessKind::kEdit);
  config.dim = 32;
  config.heads = 4;
  config.max_length = 12;
  Transformer model = *Transformer::Create(config, 1);
  // 64 sequences of ~8 tokens: several chunks, so threads really share work.
  SequenceBatch batch = RandomBatch(64, 0, 12, kVocab, 2);
  const RunResult one = RunModel(model, batch, 1);
  const Transformer copy = model;  // other storage: alignment must not matter either
  const RunResult four = RunModel(copy, batch, 4);
  EXPECT_EQ(one.token_out, four.token_out);
  EXPECT_EQ(one.gap_out, four.gap_out);
  EXPECT_EQ(one.grad, four.grad);
  double norm = 0.0;
  for (float g : one.grad) norm += g * g;
  EXPECT_GT(norm, 0.0);
}

TEST(TransformerTest, SequencesDoNotSeeTheirBatchMates) {
  TransformerConfig config = TinyConfig(ProcessKind::kEdit);
  config.max_length = 12;
  Transformer model = *Transformer::Create(config, 4);
  SequenceBatch batch = RandomBatch(40, 0, 12, kVocab, 5);
  std::vector<std::vector<Token>> seqs = batch.ToVectors();
  std::vector<double> times(batch.times().begin(), batch.times().end());
  // Change every other sequence (tokens and time) and compare the rest.
  std::vector<std::vector<Token>> changed = seqs;
  std::vector<double> changed_times = times;
  for (size_t b = 1; b < seqs.size(); b += 2) {
    changed[b].push_back(Vocabulary::kNumSpecials);
    for (Token& t : changed[b]) t = Vocabulary::kNumSpecials + (t + 1) % 4;
    changed_times[b] = 1.0 - times[b];
  }
  SequenceBatch other = *SequenceBatch::FromVectors(changed, kVocab, changed_times);
  Transformer::Workspace ws;
  Transformer::Outputs a, c;
  ASSERT_TRUE(model.Forward(batch, &ws, &a).ok());
  ASSERT_TRUE(model.Forward(other, &ws, &c).ok());
  const int tc = a.token_columns, gc = a.gap_columns;
  for (size_t b = 0; b < seqs.size(); b += 2) {
    // The same sequence, alone.
    SequenceBatch alone =
        *SequenceBatch::FromVectors({seqs[b]}, kVocab, std::vector<double>{times[b]});
    Transformer::Outputs s;
    ASSERT_TRUE(model.Forward(alone, &ws, &s).ok());
    const int64_t n = static_cast<int64_t>(seqs[b].size());
    for (int64_t k = 0; k < n * tc; ++k) {
      const float ref = s.token_out[k];
      EXPECT_NEAR(a.token_out[batch.offsets()[b] * tc + k], ref, 1e-5) << b;
      EXPECT_NEAR(c.token_out[other.offsets()[b] * tc + k], ref, 1e-5) << b;
    }
    for (int64_t k = 0; k < (n + 1) * gc; ++k) {
      const float ref = s.gap_out[k];
      EXPECT_NEAR(a.gap_out[(batch.offsets()[b] + b) * gc + k], ref, 1e-5) << b;
      EXPECT_NEAR(c.gap_out[(other.offsets()[b] + b) * gc + k], ref, 1e-5) << b;
    }
  }
}

// ---------------------------------------------------------------------------
// Input errors.

TEST(TransformerTest, BadInputIsAStatus) {
  const TransformerConfig config = TinyConfig(ProcessKind::kEdit);
  Transformer model = *Transformer::Create(config, 1);
  Transformer::Workspace ws;
  Transformer::Outputs out;
  // Token 9 is valid for a larger vocabulary but not for the model's 9 ids.
  SequenceBatch big_vocab = *SequenceBatch::FromVectors({{5, 6}, {5, 9}}, 20);
  absl::Status s = model.Forward(big_vocab, &ws, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("token 9"), std::string::npos) << s;
  EXPECT_NE(s.message().find("sequence 1"), std::string::npos) << s;

  SequenceBatch too_long = *SequenceBatch::FromVectors({{5, 5, 5, 5, 5, 5, 5}}, kVocab);
  s = model.Forward(too_long, &ws, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("length 7"), std::string::npos) << s;

  SequenceBatch bad_time = *SequenceBatch::FromVectors({{5}}, kVocab);
  bad_time.set_time(0, std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(model.Forward(bad_time, &ws, &out).code(), absl::StatusCode::kInvalidArgument);

  // Backward needs a forward pass and correctly sized buffers.
  Transformer::Workspace fresh;
  std::vector<float> grad(model.NumParameters(), 0.0f);
  EXPECT_EQ(model.Backward({}, {}, &fresh, grad).code(), absl::StatusCode::kFailedPrecondition);
  SequenceBatch ok = *SequenceBatch::FromVectors({{5, 6}}, kVocab);
  ASSERT_TRUE(model.Forward(ok, &ws, &out).ok());
  std::vector<float> d_tok(out.token_out.size(), 1.0f), d_gap(out.gap_out.size(), 1.0f);
  EXPECT_TRUE(model.Backward(d_tok, d_gap, &ws, grad).ok());
  std::vector<float> short_tok(d_tok.size() - 1, 1.0f);
  EXPECT_EQ(model.Backward(short_tok, d_gap, &ws, grad).code(), absl::StatusCode::kInvalidArgument);
  std::vector<float> short_grad(5, 0.0f);
  EXPECT_EQ(model.Backward(d_tok, d_gap, &ws, short_grad).code(),
            absl::StatusCode::kInvalidArgument);
  // A failed forward invalidates the workspace.
  ASSERT_FALSE(model.Forward(too_long, &ws, &out).ok());
  EXPECT_EQ(model.Backward(d_tok, d_gap, &ws, grad).code(), absl::StatusCode::kFailedPrecondition);

  std::vector<float> nan_params(model.parameters().begin(), model.parameters().end());
  nan_params[3] = std::numeric_limits<float>::quiet_NaN();
  absl::StatusOr<Transformer> bad = Transformer::FromParameters(config, nan_params);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("token_embedding[3]"), std::string::npos);
  EXPECT_FALSE(Transformer::FromParameters(config, std::vector<float>(10)).ok());
}

TEST(TransformerTest, EmptyBatchAndEmptySequences) {
  Transformer model = *Transformer::Create(TinyConfig(ProcessKind::kEdit), 1);
  Transformer::Workspace ws;
  Transformer::Outputs out;
  ASSERT_TRUE(model.Forward(SequenceBatch(), &ws, &out).ok());
  EXPECT_EQ(out.num_tokens, 0);
  EXPECT_TRUE(out.token_out.empty());
  std::vector<float> grad(model.NumParameters(), 0.0f);
  EXPECT_TRUE(model.Backward({}, {}, &ws, grad).ok());
  SequenceBatch empties = *SequenceBatch::FromVectors({{}, {}}, kVocab);
  ASSERT_TRUE(model.Forward(empties, &ws, &out).ok());
  EXPECT_EQ(out.gap_out.size(), 2u * out.gap_columns);
  for (float x : out.gap_out) EXPECT_TRUE(std::isfinite(x));
}

// ---------------------------------------------------------------------------
// Training smoke test: model + AdamW fit a tiny DFM denoising task.

TEST(TransformerTest, AdamWTrainingReducesCrossEntropy) {
  TransformerConfig config = TinyConfig(ProcessKind::kDfm);
  config.dim = 16;
  Transformer model = *Transformer::Create(config, 2);
  AdamWOptions opt;
  opt.learning_rate = 1e-2;
  opt.warmup_steps = 10;
  AdamW adam = *AdamW::Create(opt, model.NumParameters(), model.ParameterGroups());
  // Inputs are fully masked 3-token words; targets are two fixed words, so
  // the best achievable loss is the entropy of position-wise mixtures.
  const std::vector<std::vector<Token>> words = {{5, 6, 7}, {8, 6, 5}};
  SequenceBatch masked =
      *SequenceBatch::FromVectors({{0, 0, 0}, {0, 0, 0}}, kVocab, std::vector<double>{0.0, 0.0});
  Transformer::Workspace ws;
  Transformer::Outputs out;
  auto loss_and_grad = [&](std::vector<float>* d_tok) {
    EXPECT_TRUE(model.Forward(masked, &ws, &out).ok());
    d_tok->assign(out.token_out.size(), 0.0f);
    double loss = 0.0;
    for (int64_t r = 0; r < out.num_tokens; ++r) {
      const float* z = &out.token_out[r * kVocab];
      const float mx = *std::max_element(z, z + kVocab);
      double sum = 0.0;
      for (int k = 0; k < kVocab; ++k) sum += std::exp(z[k] - mx);
      // Each position's target: both words' tokens, half weight each.
      for (const auto& w : words) {
        const Token y = w[r % 3];
        loss += 0.5 * -(z[y] - mx - std::log(sum));
        for (int k = 0; k < kVocab; ++k) {
          (*d_tok)[r * kVocab + k] += 0.5f * static_cast<float>(std::exp(z[k] - mx) / sum);
        }
        (*d_tok)[r * kVocab + y] -= 0.5f;
      }
    }
    return loss / out.num_tokens;
  };
  std::vector<float> d_tok, grad;
  const double initial = loss_and_grad(&d_tok);
  double final_loss = initial;
  for (int step = 0; step < 150; ++step) {
    final_loss = loss_and_grad(&d_tok);
    grad.assign(model.NumParameters(), 0.0f);
    ASSERT_TRUE(model.Backward(d_tok, {}, &ws, grad).ok());
    ASSERT_TRUE(adam.Step(model.mutable_parameters(), grad).ok());
  }
  // Optimum: position 1 is always token 6 (loss 0), positions 0 and 2 are
  // a fair coin (log 2): mean (2 log 2) / 3 = 0.462.
  EXPECT_GT(initial, 2.0);
  EXPECT_LT(final_loss, 0.462 + 0.05);
}

// ---------------------------------------------------------------------------
// AdamW.

TEST(AdamWTest, MinimisesAQuadratic) {
  // f(x) = 1/2 sum a_i (x_i - c_i)^2, curvatures from 0.1 to 10.
  const int n = 50;
  std::vector<float> a(n), c(n), x(n, 0.0f), g(n);
  for (int i = 0; i < n; ++i) {
    a[i] = 0.1f * std::pow(100.0f, static_cast<float>(i) / (n - 1));
    c[i] = std::sin(static_cast<float>(i));
  }
  AdamWOptions opt;
  opt.learning_rate = 0.05;
  opt.weight_decay = 0.0;
  opt.warmup_steps = 20;
  opt.schedule = LrSchedule::kCosine;
  opt.total_steps = 1500;
  opt.min_learning_rate_fraction = 0.01;
  AdamW adam = *AdamW::Create(opt, n);
  auto f = [&] {
    double s = 0.0;
    for (int i = 0; i < n; ++i) s += 0.5 * a[i] * (x[i] - c[i]) * (x[i] - c[i]);
    return s;
  };
  const double f0 = f();
  for (int step = 0; step < 1500; ++step) {
    for (int i = 0; i < n; ++i) g[i] = a[i] * (x[i] - c[i]);
    ASSERT_TRUE(adam.Step(x, g).ok());
  }
  EXPECT_GT(f0, 1.0);
  EXPECT_LT(f(), 1e-4 * f0);
  double dist = 0.0;
  for (int i = 0; i < n; ++i) dist = std::max(dist, std::abs(static_cast<double>(x[i] - c[i])));
  EXPECT_LT(dist, 1e-2);
  EXPECT_EQ(adam.step(), 1500);
}

TEST(AdamWTest, ClippingBoundsTheGradientAndTheUpdate) {
  const int n = 100;
  AdamWOptions opt;
  opt.learning_rate = 1e-2;
  opt.weight_decay = 0.0;
  opt.clip_norm = 0.5;
  AdamW clipped = *AdamW::Create(opt, n);
  opt.clip_norm = 0.0;
  AdamW unclipped = *AdamW::Create(opt, n);
  std::vector<float> pc(n, 0.0f), pu(n, 0.0f);
  // A huge gradient is clipped to norm 0.5: m = (1 - beta1) * g_clipped.
  std::vector<float> huge = RandomVector<float>(n, 3, 1e3);
  absl::StatusOr<AdamWStepStats> st = clipped.Step(pc, huge);
  ASSERT_TRUE(st.ok());
  double gnorm = 0.0;
  for (float v : huge) gnorm += double(v) * v;
  gnorm = std::sqrt(gnorm);
  EXPECT_NEAR(st->grad_norm, gnorm, 1e-3 * gnorm);
  EXPECT_NEAR(st->clip_scale, 0.5 / gnorm, 1e-6 * 0.5 / gnorm);
  double mnorm = 0.0;
  for (float v : clipped.first_moment()) mnorm += double(v) * v;
  EXPECT_NEAR(std::sqrt(mnorm), 0.1 * 0.5, 1e-5);

  // After 3000 ordinary steps (gradient norm 0.5; the bias corrections have
  // faded), a spike 1e4 times larger: unclipped, the spike's update is about
  // (1 - beta1) / sqrt(1 - beta2) = 3.2 times a normal one per coordinate;
  // clipped, it stays normal-sized.
  AdamWOptions o2 = opt;  // same rate as `unclipped`
  o2.clip_norm = 0.5;
  AdamW c2 = *AdamW::Create(o2, n);
  std::vector<float> normal = RandomVector<float>(n, 4, 1.0);
  double nn = 0.0;
  for (float v : normal) nn += double(v) * v;
  for (float& v : normal) v = static_cast<float>(v * 0.5 / std::sqrt(nn));
  std::fill(pc.begin(), pc.end(), 0.0f);
  auto update_norm = [](const std::vector<float>& before, const std::vector<float>& after) {
    double s = 0.0;
    for (size_t i = 0; i < before.size(); ++i) s += std::pow(double(after[i]) - before[i], 2);
    return std::sqrt(s);
  };
  std::vector<float> before;
  double normal_update = 0.0;
  for (int k = 0; k < 3000; ++k) {
    before = pc;
    ASSERT_TRUE(c2.Step(pc, normal).ok());
    normal_update = update_norm(before, pc);
    before = pu;
    ASSERT_TRUE(unclipped.Step(pu, normal).ok());
  }
  std::vector<float> spike = RandomVector<float>(n, 5, 1.0);
  for (float& v : spike) v *= 1e4f;
  before = pc;
  ASSERT_TRUE(c2.Step(pc, spike).ok());
  const double clipped_spike = update_norm(before, pc);
  before = pu;
  ASSERT_TRUE(unclipped.Step(pu, spike).ok());
  const double unclipped_spike = update_norm(before, pu);
  EXPECT_LT(clipped_spike, 1.5 * normal_update);
  EXPECT_GT(unclipped_spike, 2.0 * normal_update);
}

TEST(AdamWTest, ScheduleWarmupCosineAndConstant) {
  AdamWOptions opt;
  opt.learning_rate = 1.0;
  opt.warmup_steps = 10;
  opt.schedule = LrSchedule::kCosine;
  opt.total_steps = 110;
  opt.min_learning_rate_fraction = 0.1;
  AdamW adam = *AdamW::Create(opt, 1);
  EXPECT_DOUBLE_EQ(adam.LearningRate(0), 0.1);
  EXPECT_DOUBLE_EQ(adam.LearningRate(4), 0.5);
  EXPECT_DOUBLE_EQ(adam.LearningRate(10), 1.0);
  EXPECT_NEAR(adam.LearningRate(60), 0.55, 1e-12);  // half way: (1 + 0.1) / 2
  EXPECT_NEAR(adam.LearningRate(110), 0.1, 1e-12);
  EXPECT_NEAR(adam.LearningRate(1000), 0.1, 1e-12);
  opt.schedule = LrSchedule::kConstant;
  AdamW flat = *AdamW::Create(opt, 1);
  EXPECT_DOUBLE_EQ(flat.LearningRate(500), 1.0);
  opt.schedule = LrSchedule::kCosine;
  opt.total_steps = 5;
  EXPECT_FALSE(AdamW::Create(opt, 1).ok());
  opt = AdamWOptions();
  opt.beta2 = 1.0;
  absl::StatusOr<AdamW> bad = AdamW::Create(opt, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("beta2"), std::string::npos);
  EXPECT_TRUE(ParseLrSchedule("cosine").ok());
  EXPECT_FALSE(ParseLrSchedule("step").ok());
}

TEST(AdamWTest, DecoupledDecayOnlyOnDecayGroups) {
  AdamWOptions opt;
  opt.learning_rate = 0.1;
  opt.weight_decay = 0.5;
  std::vector<ParameterGroup> groups = {{"w", 0, 2, 1, 2, true}, {"b", 2, 2, 1, 2, false}};
  AdamW adam = *AdamW::Create(opt, 4, groups);
  std::vector<float> p = {1.0f, -2.0f, 1.0f, -2.0f};
  const std::vector<float> zero(4, 0.0f);
  ASSERT_TRUE(adam.Step(p, zero).ok());
  // Zero gradient: pure decay theta * (1 - lr * wd) on the decay group.
  EXPECT_FLOAT_EQ(p[0], 0.95f);
  EXPECT_FLOAT_EQ(p[1], -1.9f);
  EXPECT_FLOAT_EQ(p[2], 1.0f);
  EXPECT_FLOAT_EQ(p[3], -2.0f);
  groups[1].offset = 3;  // [3, 5) is outside 4 parameters
  EXPECT_FALSE(AdamW::Create(opt, 4, groups).ok());
}

TEST(AdamWTest, NonFiniteGradientIsRejectedAndChangesNothing) {
  AdamW adam = *AdamW::Create(AdamWOptions(), 3);
  std::vector<float> p = {1.0f, 2.0f, 3.0f};
  std::vector<float> g = {0.1f, std::numeric_limits<float>::infinity(), 0.0f};
  absl::StatusOr<AdamWStepStats> st = adam.Step(p, g);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("gradient norm"), std::string::npos);
  EXPECT_EQ(p, (std::vector<float>{1.0f, 2.0f, 3.0f}));
  EXPECT_EQ(adam.step(), 0);
  std::vector<float> two(2);
  EXPECT_FALSE(adam.Step(p, two).ok());
}

TEST(AdamWTest, RestoredStateContinuesIdentically) {
  const int n = 20;
  AdamWOptions opt;
  opt.warmup_steps = 3;
  AdamW a = *AdamW::Create(opt, n);
  std::vector<float> pa(n, 0.5f);
  for (int k = 0; k < 10; ++k) ASSERT_TRUE(a.Step(pa, RandomVector<float>(n, k)).ok());
  AdamW b = *AdamW::Create(opt, n);
  ASSERT_TRUE(b.RestoreState(a.step(),
                             std::vector<float>(a.first_moment().begin(), a.first_moment().end()),
                             std::vector<float>(a.second_moment().begin(), a.second_moment().end()))
                  .ok());
  std::vector<float> pb = pa;
  for (int k = 10; k < 20; ++k) {
    const std::vector<float> g = RandomVector<float>(n, k);
    ASSERT_TRUE(a.Step(pa, g).ok());
    ASSERT_TRUE(b.Step(pb, g).ok());
  }
  EXPECT_EQ(pa, pb);
  EXPECT_FALSE(b.RestoreState(1, std::vector<float>(3), std::vector<float>(3)).ok());
  EXPECT_FALSE(b.RestoreState(1, std::vector<float>(n), std::vector<float>(n, -1.0f)).ok());
}

// ---------------------------------------------------------------------------
// Checkpoints.

Checkpoint MakeCheckpoint() {
  Vocabulary vocab = *Vocabulary::FromCharacters("abcd");
  TransformerConfig config = TinyConfig(ProcessKind::kEdit);
  config.vocab_size = vocab.size();
  Transformer model = *Transformer::Create(config, 17);
  Checkpoint ckpt;
  ckpt.model_config = config;
  ckpt.vocab = vocab;
  ckpt.settings = {{"process", "edit"}, {"steps", "1000"}, {"note", "tab\there=ok"}};
  ckpt.parameters.assign(model.parameters().begin(), model.parameters().end());
  ckpt.has_optimizer_state = true;
  ckpt.optimizer_step = 42;
  ckpt.first_moment = RandomVector<float>(ckpt.parameters.size(), 1, 0.01);
  ckpt.second_moment = RandomVector<float>(ckpt.parameters.size(), 2, 0.01);
  for (float& v : ckpt.second_moment) v = std::abs(v);
  return ckpt;
}

std::string TempPath(const std::string& name) { return ::testing::TempDir() + "/" + name; }

TEST(CheckpointTest, RoundTripIsExact) {
  const Checkpoint ckpt = MakeCheckpoint();
  const std::string path = TempPath("model_test_roundtrip.ckpt");
  ASSERT_TRUE(SaveCheckpoint(path, ckpt).ok());
  absl::StatusOr<Checkpoint> back = LoadCheckpoint(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->model_config, ckpt.model_config);
  EXPECT_EQ(back->vocab, ckpt.vocab);
  EXPECT_EQ(back->settings, ckpt.settings);
  EXPECT_EQ(back->parameters, ckpt.parameters);
  EXPECT_TRUE(back->has_optimizer_state);
  EXPECT_EQ(back->optimizer_step, 42);
  EXPECT_EQ(back->first_moment, ckpt.first_moment);
  EXPECT_EQ(back->second_moment, ckpt.second_moment);
  // The restored model computes the same outputs.
  Transformer a = *Transformer::FromParameters(ckpt.model_config, ckpt.parameters);
  Transformer b = *Transformer::FromParameters(back->model_config, back->parameters);
  SequenceBatch batch = RandomBatch(4, 0, 6, ckpt.vocab.size(), 3);
  Transformer::Workspace ws;
  Transformer::Outputs oa, ob;
  ASSERT_TRUE(a.Forward(batch, &ws, &oa).ok());
  ASSERT_TRUE(b.Forward(batch, &ws, &ob).ok());
  EXPECT_EQ(oa.token_out, ob.token_out);
  // Without optimizer state.
  Checkpoint lean = ckpt;
  lean.has_optimizer_state = false;
  ASSERT_TRUE(SaveCheckpoint(path, lean).ok());
  back = LoadCheckpoint(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_FALSE(back->has_optimizer_state);
  EXPECT_TRUE(back->first_moment.empty());
}

TEST(CheckpointTest, Fnv1aKnownAnswers) {
  // Published FNV-1a 64 test vectors.
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ull);
}

TEST(CheckpointTest, CorruptOrTruncatedFilesAreClearErrors) {
  const std::string path = TempPath("model_test_corrupt.ckpt");
  ASSERT_TRUE(SaveCheckpoint(path, MakeCheckpoint()).ok());
  const std::string good = *ReadFile(path);
  auto load_bytes = [&](const std::string& bytes) {
    EXPECT_TRUE(WriteFileAtomically(path, bytes).ok());
    return LoadCheckpoint(path).status();
  };
  auto expect_error = [&](const absl::Status& s, const std::string& what) {
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find(path), std::string::npos) << s;
    EXPECT_NE(s.message().find(what), std::string::npos) << s;
  };
  // A flipped byte in the payload (inside the parameters).
  std::string flipped = good;
  flipped[good.size() / 2] ^= 0x10;
  absl::Status s = load_bytes(flipped);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  expect_error(s, "checksum mismatch");
  // A flipped byte in every other header field.
  flipped = good;
  flipped[2] ^= 1;
  expect_error(load_bytes(flipped), "bad magic");
  flipped = good;
  flipped[8] ^= 1;
  expect_error(load_bytes(flipped), "unsupported format version");
  flipped = good;
  flipped[28] ^= 1;
  expect_error(load_bytes(flipped), "checksum mismatch");
  // Truncated files: cut in the payload, and inside the header.
  s = load_bytes(good.substr(0, good.size() - 100));
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  expect_error(s, "truncated");
  expect_error(load_bytes(good.substr(0, 20)), "truncated");
  expect_error(load_bytes(good + "xyz"), "unexpected bytes");
  // Missing file.
  s = LoadCheckpoint(TempPath("no_such_model.ckpt")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("no_such_model.ckpt"), std::string::npos);
}

TEST(CheckpointTest, InconsistentCheckpointIsNotWritten) {
  Checkpoint ckpt = MakeCheckpoint();
  ckpt.parameters.pop_back();
  absl::Status s = SaveCheckpoint(TempPath("model_test_bad.ckpt"), ckpt);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("parameters"), std::string::npos) << s;
  ckpt = MakeCheckpoint();
  ckpt.model_config.vocab_size += 1;
  EXPECT_FALSE(EncodeCheckpoint(ckpt).ok());
}

}  // namespace
}  // namespace jumpflow
