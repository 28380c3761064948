// @brief Sampler engine: batched rounds over the active sequences, and the
// Euler / tau-leaping / adaptive / Gillespie moves of one sequence.
#include "jumpflow/samplers/sampler.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "jumpflow/samplers/detail/random.h"
#include "jumpflow/status_macros.h"
#include "kernels/gillespie.h"
#include "kernels/philox.h"
#include "kernels/sample_step.h"
#include "tbb/blocked_range.h"
#include "tbb/parallel_for.h"
#include "tbb/task_arena.h"

namespace jumpflow {
namespace {

// Edit kinds, indexed like JumpKind.
constexpr int kNumKinds = 4;
constexpr int kTok = 0, kIns = 1, kDel = 2, kSpl = 3;
constexpr const char* kKindField[kNumKinds] = {"token", "insert", "del", "split"};

// The counter half reserved for the acceptance draws of a Gillespie proposal.
constexpr uint64_t kAcceptanceOffset = uint64_t{1} << 31;

// SequenceRates is one sequence's multipliers, copied out of a batched
// evaluation, with the row totals the moves need.
struct SequenceRates {
  int64_t length = 0;
  std::vector<double> token_dist;    // [n x V]
  std::vector<double> token_dsum;    // [n]: sum of dist over a != x_i
  std::vector<double> token_total;   // [n]: token_rate * token_dsum
  std::vector<double> insert_dist;   // [(n + 1) x V]
  std::vector<double> insert_dsum;   // [n + 1]
  std::vector<double> insert_total;  // [n + 1]
  std::vector<double> delete_rate;   // [n]
  std::vector<double> split_rate;    // [n]
  std::array<double, kNumKinds> kind_total{};
};

bool BadValue(double v) { return !(std::isfinite(v) && v >= 0.0); }

bool AllZero(const std::array<double, kNumKinds>& m) {
  for (double v : m) {
    if (v > 0.0) return false;
  }
  return true;
}

// LoadRates copies sequence b's rows of `out` into `r` and validates them.
absl::Status LoadRates(const RateOutputs& out, int64_t tok_begin, int64_t gap_begin,
                       std::span<const Token> x, SequenceRates* r) {
  const int64_t n = static_cast<int64_t>(x.size());
  const size_t vv = static_cast<size_t>(out.vocab_size);
  r->length = n;
  r->kind_total.fill(0.0);
  r->token_dist.resize(static_cast<size_t>(n) * vv);
  r->token_dsum.resize(static_cast<size_t>(n));
  r->token_total.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const size_t row = static_cast<size_t>(tok_begin + i);
    const double rate = out.token_rate[row];
    if (BadValue(rate))
      return absl::InvalidArgumentError(absl::StrCat("token_rate[", i, "] = ", rate));
    const double* src = out.token_dist.data() + row * vv;
    double* dst = r->token_dist.data() + static_cast<size_t>(i) * vv;
    double sum = 0.0;
    for (size_t a = 0; a < vv; ++a) {
      if (BadValue(src[a])) {
        return absl::InvalidArgumentError(absl::StrCat("token_dist[", i, ", ", a, "] = ", src[a]));
      }
      dst[a] = src[a];
      if (static_cast<Token>(a) != x[static_cast<size_t>(i)]) sum += src[a];
    }
    r->token_dsum[static_cast<size_t>(i)] = sum;
    const double total = rate * sum;
    if (!std::isfinite(total)) {
      return absl::InvalidArgumentError(absl::StrCat("token row ", i, " total rate overflows"));
    }
    r->token_total[static_cast<size_t>(i)] = total;
    r->kind_total[kTok] += total;
  }
  if (out.process == ProcessKind::kEdit) {
    r->insert_dist.resize(static_cast<size_t>(n + 1) * vv);
    r->insert_dsum.resize(static_cast<size_t>(n + 1));
    r->insert_total.resize(static_cast<size_t>(n + 1));
    for (int64_t j = 0; j <= n; ++j) {
      const size_t row = static_cast<size_t>(gap_begin + j);
      const double rate = out.insert_rate[row];
      if (BadValue(rate)) {
        return absl::InvalidArgumentError(absl::StrCat("insert_rate[", j, "] = ", rate));
      }
      const double* src = out.insert_dist.data() + row * vv;
      double* dst = r->insert_dist.data() + static_cast<size_t>(j) * vv;
      double sum = 0.0;
      for (size_t a = 0; a < vv; ++a) {
        if (BadValue(src[a])) {
          return absl::InvalidArgumentError(
              absl::StrCat("insert_dist[", j, ", ", a, "] = ", src[a]));
        }
        dst[a] = src[a];
        sum += src[a];
      }
      r->insert_dsum[static_cast<size_t>(j)] = sum;
      const double total = rate * sum;
      if (!std::isfinite(total)) {
        return absl::InvalidArgumentError(absl::StrCat("gap row ", j, " total rate overflows"));
      }
      r->insert_total[static_cast<size_t>(j)] = total;
      r->kind_total[kIns] += total;
    }
  }
  if (out.process == ProcessKind::kEdit || out.process == ProcessKind::kBranching) {
    r->delete_rate.resize(static_cast<size_t>(n));
    const bool probability = out.process == ProcessKind::kBranching;
    for (int64_t i = 0; i < n; ++i) {
      const double v = out.delete_rate[static_cast<size_t>(tok_begin + i)];
      if (BadValue(v) || (probability && v > 1.0)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "delete_rate[", i, "] = ", v, probability ? " (a probability in [0, 1])" : ""));
      }
      r->delete_rate[static_cast<size_t>(i)] = v;
      r->kind_total[kDel] += v;
    }
  }
  if (out.process == ProcessKind::kBranching) {
    r->split_rate.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const double v = out.split_rate[static_cast<size_t>(tok_begin + i)];
      if (BadValue(v)) return absl::InvalidArgumentError(absl::StrCat("split_rate[", i, "] = ", v));
      r->split_rate[static_cast<size_t>(i)] = v;
      r->kind_total[kSpl] += v;
    }
  }
  return absl::OkStatus();
}

// EventRows are the rows of the fused event kernels: the token rows of a
// DFM batch (the current token excluded), or the gap rows of an Edit batch
// (insertions: nothing excluded).
struct EventRows {
  int64_t rows = 0;
  const int64_t* offsets = nullptr;  // [sequences + 1]
  const Token* tokens = nullptr;     // [rows] or null
};

// SetEventInputs sets what both fused event kernels read
// (kernels/event_args.h): the rows, offsets and tokens, the model's logits
// and row scales, and the per-sequence random keys.
template <class Args>
void SetEventInputs(const SequenceBatch& batch, const EventRows& rows, const SoftmaxLogits& logits,
                    int32_t vocab, const std::vector<uint32_t>& streams,
                    const std::vector<uint32_t>& steps, uint64_t seed, Args* a) {
  a->parametrization = kernels::Parametrization::kSoftmax;
  a->rows = rows.rows;
  a->vocab = vocab;
  a->num_sequences = batch.num_sequences();
  a->raw = logits.logits.data();
  a->offsets = rows.offsets;
  a->tokens = rows.tokens;
  a->row_scales = logits.row_scales.data();
  a->sequence_ids = streams.data();
  a->steps = steps.data();
  a->seed = seed;
}

// Slot is one active sequence and its working memory (reused by the next
// sequence that takes the slot, so buffers stop allocating once grown).
struct Slot {
  int64_t seq = -1;  // index into the start batch; -1 = empty slot
  uint32_t stream = 0;
  std::vector<Token> x, scratch;
  double t = 0.0;
  uint64_t step = 0;
  bool rates_fresh = false;  // rates hold m(x, t) for the current x and t
  bool done = false;
  bool truncated = false;
  bool pending = false;  // Gillespie: a proposal at t awaits acceptance
  std::array<double, kNumKinds> bound{};
  SequenceRates rates;
  std::vector<Token> new_token;      // Branching leap scratch
  std::vector<int64_t> split_count;  // Branching leap scratch
  std::vector<uint8_t> deleted;      // Branching leap scratch
  std::vector<TrajectoryEvent> events;
  int64_t steps = 0, num_events = 0, rejections = 0, violations = 0;
  absl::Status status;
};

class Engine {
 public:
  Engine(RateModel& model, const KindSchedulers& schedulers, const SequenceBatch& start,
         const SamplerOptions& options)
      : model_(model), start_(start), opt_(options) {
    sched_[kTok] = schedulers.token;
    sched_[kIns] = schedulers.insert;
    sched_[kDel] = schedulers.del;
    sched_[kSpl] = schedulers.split;
  }

  absl::Status Validate();
  absl::StatusOr<SampleResult> Run();

 private:
  void Load(Slot& s, int64_t seq);
  // BatchOf is the SequenceBatch of slots `ids` (states at their times).
  absl::StatusOr<SequenceBatch> BatchOf(const std::vector<Slot>& slots,
                                        const std::vector<size_t>& ids) const;
  // StopAtStepLimit ends the slots of `active` at their step limit (but,
  // with keep_pending, not those with a proposal pending) and returns the
  // others.
  std::vector<size_t> StopAtStepLimit(std::vector<Slot>& slots, const std::vector<size_t>& active,
                                      bool keep_pending) const;
  // RowsOf are the fused kernels' rows of `batch` (EventRows): token rows
  // (DFM) or gap rows (Edit; their offsets live in gap_offsets_).
  EventRows RowsOf(const SequenceBatch& batch);
  // FusedEvaluate is the SoftmaxLogits (logits_) of the slots `ids`, their
  // batch and its rows (RowsOf), with the shape checked and the call counted.
  absl::StatusOr<SequenceBatch> FusedEvaluate(const std::vector<Slot>& slots,
                                              const std::vector<size_t>& ids, SamplerStats& stats,
                                              EventRows* rows);
  // KernelOutcome turns a fused kernel's status and first non-finite row
  // (-1: none) of `rows` (the slots `ids`) into the sampler's error.
  absl::Status KernelOutcome(const absl::Status& status, int64_t first_nonfinite_row,
                             const std::vector<Slot>& slots, const std::vector<size_t>& ids,
                             const EventRows& rows) const;
  // FusedGridRound is one Euler / tau-leap step of every slot in `ids`
  // with the fused event kernels (SamplerOptions::fused_events).
  absl::Status FusedGridRound(std::vector<Slot>& slots, const std::vector<size_t>& ids,
                              SamplerStats& stats);
  // FusedGillespieRound evaluates every slot in `ids` with one
  // kernels::Gillespie call and moves each as AdvanceGillespie does, with
  // the kernel's total and event in place of the multipliers'.
  absl::Status FusedGillespieRound(std::vector<Slot>& slots, const std::vector<size_t>& ids,
                                   SamplerStats& stats);
  // FusedGillespieMove is that move of one slot: m is the kernel's total
  // multiplier at (s.x, s.t), (position, token) its event (-1: none).
  void FusedGillespieMove(Slot& s, double m, int32_t position, int32_t token);
  void AdvanceGrid(Slot& s);
  void AdvanceAdaptive(Slot& s);
  void AdvanceGillespie(Slot& s);
  // Propose starts Gillespie proposal s.step + 1 with the thinning bound
  // bound_factor x m (m: the kind totals at s.x, s.t): s.t moves to the
  // proposed time and s.pending is set, or the sequence ends (step limit,
  // or no event before t = 1). Returns s.pending.
  bool Propose(Slot& s, const std::array<double, kNumKinds>& m);
  void AdvanceFrozen(Slot& s);
  // Kind totals usable now (a Branching sequence of length 1 cannot delete).
  std::array<double, kNumKinds> Totals(const Slot& s) const;
  // Hazards h_k(t) of the used kinds (0 for the others).
  std::array<double, kNumKinds> Hazards(double t) const;
  // NextEventTime returns t' solving sum_k b_k (H_k(t') - H_k(t)) = e, or a
  // value > 1 when no event happens before H(1).
  double NextEventTime(double t, const std::array<double, kNumKinds>& b, double e) const;
  // AdaptiveStepEnd returns the end of the adaptive leap from t.
  double AdaptiveStepEnd(double t, const std::array<double, kNumKinds>& m) const;
  // NextGridTime is the first grid point after t (1 past the last).
  double NextGridTime(double t) const {
    auto it = std::upper_bound(grid_.begin(), grid_.end(), t);
    return it == grid_.end() ? 1.0 : *it;
  }
  // Fire returns 1 - S_k(t2) / S_k(t1) for each used kind.
  std::array<double, kNumKinds> Fire(double t1, double t2) const;
  void Leap(Slot& s, const std::array<double, kNumKinds>& q, bool poisson, double t_end,
            PhiloxStream& rng);
  // ApplyOneEvent draws one event prop. to h_k * m and applies it; false when
  // every rate is zero.
  bool ApplyOneEvent(Slot& s, const std::array<double, kNumKinds>& h, double t, PhiloxStream& rng);
  void Record(Slot& s, double t, JumpKind kind, int64_t index, Token token) {
    if (opt_.record_trajectory) {
      s.events.push_back({s.seq, t, kind, static_cast<int32_t>(index), token});
    }
  }
  // AbandonStep stops s where it was before a grid step that would grow it
  // past max_length: the step's events (recorded from `events_before` /
  // `num_events_before` on, never applied) are dropped, s is truncated.
  static void AbandonStep(Slot& s, size_t events_before, int64_t num_events_before) {
    s.events.resize(events_before);
    s.num_events = num_events_before;
    s.truncated = s.done = true;
  }
  void CheckLength(Slot& s) {
    if (static_cast<int64_t>(s.x.size()) > opt_.max_length) {
      s.truncated = true;
      s.done = true;
    }
  }

  RateModel& model_;
  const SequenceBatch& start_;
  SamplerOptions opt_;
  ProcessKind process_ = ProcessKind::kDfm;
  int32_t vocab_size_ = 0;
  double bound_factor_ = 1.0;
  bool time_dependent_ = true;
  std::array<const Scheduler*, kNumKinds> sched_{};
  std::array<bool, kNumKinds> used_{};
  const Scheduler* single_ = nullptr;  // non-null when one scheduler serves every used kind
  std::vector<double> grid_;
  // Which fused round moves the states (SamplerOptions::fused_events): DFM
  // token moves (kTok) or Edit insertions (kIns).
  enum class Fused { kNone, kGrid, kGillespie };
  Fused fused_ = Fused::kNone;
  int fused_kind_ = kTok;
  SoftmaxLogits logits_;
  std::vector<int64_t> gap_offsets_;  // RowsOf's gap-row offsets
};

absl::Status Engine::Validate() {
  process_ = model_.process();
  vocab_size_ = model_.vocab_size();
  bound_factor_ = model_.BoundFactor();
  time_dependent_ = model_.TimeDependent();
  if (vocab_size_ < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", model_.Name(), "' has vocab_size ", vocab_size_));
  }
  if (!(std::isfinite(bound_factor_) && bound_factor_ >= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("model '", model_.Name(),
                                                   "' declares bound factor ", bound_factor_,
                                                   " (must be finite and >= 1)"));
  }
  used_ = {true, process_ == ProcessKind::kEdit, process_ != ProcessKind::kDfm,
           process_ == ProcessKind::kBranching};
  for (int k = 0; k < kNumKinds; ++k) {
    if (!used_[k]) {
      sched_[k] = nullptr;
      continue;
    }
    if (sched_[k] == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("KindSchedulers.", kKindField[k], " is required by this process"));
    }
    if (single_ == nullptr) single_ = sched_[k];
  }
  for (int k = 0; k < kNumKinds; ++k) {
    if (used_[k] && sched_[k] != single_) {
      single_ = nullptr;
      break;
    }
  }
  if (opt_.max_batch < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_batch must be >= 1, got ", opt_.max_batch));
  }
  if (opt_.num_threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_threads must be >= 0, got ", opt_.num_threads));
  }
  if (opt_.max_length < 1 || opt_.max_steps_per_sequence < 1) {
    return absl::InvalidArgumentError("max_length and max_steps_per_sequence must be >= 1");
  }
  switch (opt_.kind) {
    case SamplerKind::kEuler:
    case SamplerKind::kTauLeap: {
      if (opt_.steps < 1) {
        return absl::InvalidArgumentError(absl::StrCat("steps must be >= 1, got ", opt_.steps));
      }
      const Scheduler* grid_sched = sched_[kTok] != nullptr ? sched_[kTok] : single_;
      grid_ = MakeTimeGrid(opt_.grid, opt_.steps, *grid_sched);
      break;
    }
    case SamplerKind::kAdaptive:
      if (!(opt_.tolerance > 0.0 && opt_.tolerance <= 1.0)) {
        return absl::InvalidArgumentError(
            absl::StrCat("tolerance must be in (0, 1], got ", opt_.tolerance));
      }
      break;
    case SamplerKind::kGillespie:
    case SamplerKind::kGillespieFrozen:
      break;
    default:
      return absl::InvalidArgumentError("unknown sampler kind");
  }
  for (int64_t b = 0; b < start_.num_sequences(); ++b) {
    if (process_ == ProcessKind::kBranching && start_.length(b) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("Branching Flows start sequence ", b, " is empty (length must be >= 1)"));
    }
    if (start_.length(b) > opt_.max_length) {
      return absl::InvalidArgumentError(absl::StrCat("start sequence ", b, " has length ",
                                                     start_.length(b), " > max_length ",
                                                     opt_.max_length));
    }
  }
  for (Token tok : start_.tokens()) {
    if (tok < 0 || tok >= vocab_size_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "start token ", tok, " is outside the model's vocabulary [0, ", vocab_size_, ")"));
    }
  }
  fused_ = !opt_.fused_events || !HasFusedEvents(model_, opt_.kind) ? Fused::kNone
           : opt_.kind == SamplerKind::kGillespie                   ? Fused::kGillespie
                                                                    : Fused::kGrid;
  fused_kind_ = process_ == ProcessKind::kEdit ? kIns : kTok;
  if (opt_.device != kernels::Backend::kCpu) {
    JUMPFLOW_RETURN_IF_ERROR(kernels::CheckBackendAvailable(opt_.device));
    if (fused_ == Fused::kNone) {
      return absl::InvalidArgumentError(absl::StrCat(
          "device cuda runs the fused event kernels only: they need fused_events and a model "
          "that provides softmax logits, with the euler, tau-leap or gillespie sampler (DFM) or "
          "euler or gillespie (insertion-only Edit Flows) (model '",
          model_.Name(), "')"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<SequenceBatch> Engine::BatchOf(const std::vector<Slot>& slots,
                                              const std::vector<size_t>& ids) const {
  std::vector<Token> tokens;
  std::vector<int64_t> offsets{0};
  std::vector<double> times;
  offsets.reserve(ids.size() + 1);
  times.reserve(ids.size());
  for (size_t i : ids) {
    tokens.insert(tokens.end(), slots[i].x.begin(), slots[i].x.end());
    offsets.push_back(static_cast<int64_t>(tokens.size()));
    times.push_back(std::clamp(slots[i].t, 0.0, 1.0));
  }
  return SequenceBatch::FromParts(std::move(tokens), std::move(offsets), std::move(times),
                                  vocab_size_);
}

std::vector<size_t> Engine::StopAtStepLimit(std::vector<Slot>& slots,
                                            const std::vector<size_t>& active,
                                            bool keep_pending) const {
  std::vector<size_t> ids;
  for (size_t i : active) {
    Slot& s = slots[i];
    if (s.step >= static_cast<uint64_t>(opt_.max_steps_per_sequence) &&
        !(keep_pending && s.pending)) {
      s.truncated = s.done = true;
    } else {
      ids.push_back(i);
    }
  }
  return ids;
}

EventRows Engine::RowsOf(const SequenceBatch& batch) {
  if (process_ == ProcessKind::kDfm) {
    return {batch.num_tokens(), batch.offsets().data(), batch.tokens().data()};
  }
  const auto offs = batch.offsets();
  gap_offsets_.resize(offs.size());
  for (size_t b = 0; b < offs.size(); ++b) gap_offsets_[b] = offs[b] + static_cast<int64_t>(b);
  return {batch.num_tokens() + batch.num_sequences(), gap_offsets_.data(), nullptr};
}

absl::StatusOr<SequenceBatch> Engine::FusedEvaluate(const std::vector<Slot>& slots,
                                                    const std::vector<size_t>& ids,
                                                    SamplerStats& stats, EventRows* rows) {
  JUMPFLOW_ASSIGN_OR_RETURN(SequenceBatch batch, BatchOf(slots, ids));
  const std::string model_name = absl::StrCat("model '", model_.Name(), "'");
  if (absl::Status s = model_.EvaluateSoftmaxLogits(batch, &logits_); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(model_name, ": ", s.message()));
  }
  *rows = RowsOf(batch);
  const int64_t nr = rows->rows;
  if (logits_.logits.size() != static_cast<size_t>(nr * vocab_size_) ||
      logits_.row_scales.size() != static_cast<size_t>(nr) || logits_.first_token < 0 ||
      logits_.first_token > vocab_size_) {
    return absl::InternalError(
        absl::StrCat(model_name, " returned softmax logits of the wrong shape"));
  }
  ++stats.model_calls;
  stats.sequence_evaluations += batch.num_sequences();
  return batch;
}

absl::Status Engine::KernelOutcome(const absl::Status& status, int64_t first_nonfinite_row,
                                   const std::vector<Slot>& slots, const std::vector<size_t>& ids,
                                   const EventRows& rows) const {
  if (!status.ok()) {
    return absl::Status(status.code(),
                        absl::StrCat("model '", model_.Name(), "': ", status.message()));
  }
  if (first_nonfinite_row < 0) return absl::OkStatus();
  const std::span<const int64_t> offs(rows.offsets, ids.size() + 1);
  const int64_t b =
      std::upper_bound(offs.begin(), offs.end(), first_nonfinite_row) - offs.begin() - 1;
  return absl::InvalidArgumentError(
      absl::StrCat("model '", model_.Name(), "' returned a non-finite logit for sequence ",
                   slots[ids[static_cast<size_t>(b)]].seq, " row ",
                   first_nonfinite_row - offs[static_cast<size_t>(b)]));
}

absl::Status Engine::FusedGridRound(std::vector<Slot>& slots, const std::vector<size_t>& active,
                                    SamplerStats& stats) {
  // Sequences at their step limit stop, as in AdvanceGrid.
  const std::vector<size_t> ids = StopAtStepLimit(slots, active, /*keep_pending=*/false);
  if (ids.empty()) return absl::OkStatus();
  EventRows rows;
  JUMPFLOW_ASSIGN_OR_RETURN(const SequenceBatch batch, FusedEvaluate(slots, ids, stats, &rows));
  const int64_t nb = batch.num_sequences();

  // One step per sequence: from its time to the next grid point.
  std::vector<double> fire(static_cast<size_t>(nb)), t_end(static_cast<size_t>(nb));
  std::vector<uint32_t> streams(static_cast<size_t>(nb)), steps(static_cast<size_t>(nb));
  for (int64_t b = 0; b < nb; ++b) {
    Slot& s = slots[ids[static_cast<size_t>(b)]];
    const double t2 = NextGridTime(s.t);
    ++s.step;
    ++s.steps;
    fire[static_cast<size_t>(b)] = Fire(s.t, t2)[fused_kind_];
    t_end[static_cast<size_t>(b)] = t2;
    streams[static_cast<size_t>(b)] = s.stream;
    steps[static_cast<size_t>(b)] = static_cast<uint32_t>(s.step);
  }
  std::vector<uint8_t> jumped(static_cast<size_t>(rows.rows));
  std::vector<int32_t> new_token(static_cast<size_t>(rows.rows));
  kernels::SampleStepArgs a;
  SetEventInputs(batch, rows, logits_, vocab_size_, streams, steps, opt_.seed, &a);
  a.jump = kernels::JumpProbability::kLinear;
  a.fire = fire.data();
  a.stream = kPurposeSampleStep;
  a.jumped = jumped.data();
  a.new_token = new_token.data();
  const absl::StatusOr<kernels::SampleStepResult> r = kernels::SampleStep(opt_.device, a);
  JUMPFLOW_RETURN_IF_ERROR(
      KernelOutcome(r.status(), r.ok() ? r->first_nonfinite_row : -1, slots, ids, rows));
  for (int64_t b = 0; b < nb; ++b) {
    Slot& s = slots[ids[static_cast<size_t>(b)]];
    const double t2 = t_end[static_cast<size_t>(b)];
    const int64_t first_row = rows.offsets[b], n_rows = rows.offsets[b + 1] - first_row;
    // The kernel's move of row i (-1: none; a drawn special id is no move).
    auto moved = [&](int64_t i) -> Token {
      const size_t r2 = static_cast<size_t>(first_row + i);
      return jumped[r2] != 0 && new_token[r2] >= logits_.first_token ? new_token[r2] : -1;
    };
    if (fused_kind_ == kIns) {
      // Gap j's insertion goes before element j, as Leap builds it (gap
      // indices of the sequence before the step); a step that would grow
      // the sequence past max_length is abandoned, as in Leap.
      const size_t events_before = s.events.size();
      const int64_t num_events_before = s.num_events;
      s.scratch.clear();
      for (int64_t j = 0; j < n_rows; ++j) {
        if (const Token tok = moved(j); tok >= 0) {
          s.scratch.push_back(tok);
          ++s.num_events;
          Record(s, t2, JumpKind::kInsert, j, tok);
        }
        if (j + 1 < n_rows) s.scratch.push_back(s.x[static_cast<size_t>(j)]);
      }
      if (static_cast<int64_t>(s.scratch.size()) > opt_.max_length) {
        AbandonStep(s, events_before, num_events_before);
      } else {
        s.x.swap(s.scratch);
      }
    } else {
      for (int64_t i = 0; i < n_rows; ++i) {
        if (const Token tok = moved(i); tok >= 0) {
          s.x[static_cast<size_t>(i)] = tok;
          ++s.num_events;
          Record(s, t2, JumpKind::kToken, i, tok);
        }
      }
    }
    s.t = t2;
    if (s.t >= 1.0) s.done = true;
    s.rates_fresh = false;
  }
  return absl::OkStatus();
}

absl::Status Engine::FusedGillespieRound(std::vector<Slot>& slots,
                                         const std::vector<size_t>& active, SamplerStats& stats) {
  // A slot with no proposal pending at its step limit stops, as in
  // AdvanceGillespie (a pending proposal is still decided).
  const std::vector<size_t> ids = StopAtStepLimit(slots, active, /*keep_pending=*/true);
  if (ids.empty()) return absl::OkStatus();
  EventRows rows;
  JUMPFLOW_ASSIGN_OR_RETURN(const SequenceBatch batch, FusedEvaluate(slots, ids, stats, &rows));
  const int64_t nb = batch.num_sequences();
  std::vector<uint32_t> streams(static_cast<size_t>(nb)), steps(static_cast<size_t>(nb));
  for (int64_t b = 0; b < nb; ++b) {
    const Slot& s = slots[ids[static_cast<size_t>(b)]];
    streams[static_cast<size_t>(b)] = s.stream;
    steps[static_cast<size_t>(b)] = static_cast<uint32_t>(s.step);
  }
  std::vector<double> row_rate(static_cast<size_t>(rows.rows)), total(static_cast<size_t>(nb));
  std::vector<int32_t> position(static_cast<size_t>(nb)), token(static_cast<size_t>(nb));
  kernels::GillespieArgs a;
  SetEventInputs(batch, rows, logits_, vocab_size_, streams, steps, opt_.seed, &a);
  a.stream = kPurposeGillespie;
  a.row_rate = row_rate.data();
  a.total = total.data();
  a.event_position = position.data();
  a.event_token = token.data();
  const absl::StatusOr<kernels::GillespieResult> r = kernels::Gillespie(opt_.device, a);
  JUMPFLOW_RETURN_IF_ERROR(
      KernelOutcome(r.status(), r.ok() ? r->first_nonfinite_row : -1, slots, ids, rows));
  tbb::parallel_for(tbb::blocked_range<size_t>(0, ids.size(), 16),
                    [&](const tbb::blocked_range<size_t>& range) {
                      for (size_t b = range.begin(); b < range.end(); ++b) {
                        FusedGillespieMove(slots[ids[b]], total[b], position[b], token[b]);
                      }
                    });
  return absl::OkStatus();
}

void Engine::FusedGillespieMove(Slot& s, double m, int32_t position, int32_t token) {
  if (s.pending) {
    // Thinning as in AdvanceGillespie: accept with probability
    // h(t') m / lambda_bar(t'). The kernel's m counts the special ids too
    // (multiplier 0 in the model): its event on one of them is a null event,
    // i.e. a rejection, so each real event (i, a) is accepted with
    // probability h(t') m_ia / lambda_bar(t'), exactly as with the model's
    // multipliers, provided lambda_bar bounds h m. The event is a token
    // move (DFM: token `token` at `position`) or an insertion (Edit: at gap
    // `position`, before the element of that index).
    s.pending = false;
    PhiloxStream rng(opt_.seed, s.stream, kPurposeSampler, (s.step << 32) | kAcceptanceOffset);
    const double h = Hazards(s.t)[fused_kind_];
    const double lam = h * m, lam_bar = h * s.bound[fused_kind_];
    if (lam > lam_bar * (1.0 + 1e-9)) ++s.violations;
    if (lam > 0.0 && rng.Uniform() * lam_bar < lam && position >= 0 &&
        token >= logits_.first_token) {
      if (fused_kind_ == kIns) {
        s.x.insert(s.x.begin() + position, token);
        Record(s, s.t, JumpKind::kInsert, position, token);
        CheckLength(s);
      } else {
        s.x[static_cast<size_t>(position)] = token;
        Record(s, s.t, JumpKind::kToken, position, token);
      }
      ++s.num_events;
      return;  // state changed: evaluated again at the same t
    }
    ++s.rejections;
  }
  std::array<double, kNumKinds> totals{};
  totals[fused_kind_] = m;
  Propose(s, totals);
}

bool Engine::Propose(Slot& s, const std::array<double, kNumKinds>& m) {
  if (s.step >= static_cast<uint64_t>(opt_.max_steps_per_sequence)) {
    s.truncated = s.done = true;
    return false;
  }
  for (int k = 0; k < kNumKinds; ++k) s.bound[k] = bound_factor_ * m[k];
  ++s.step;
  ++s.steps;
  PhiloxStream rng(opt_.seed, s.stream, kPurposeSampler, s.step << 32);
  const double t2 = NextEventTime(s.t, s.bound, rng.Exponential());
  if (t2 > 1.0) {
    s.t = 1.0;
    s.done = true;
    return false;
  }
  s.t = t2;
  s.pending = true;
  return true;
}

void Engine::Load(Slot& s, int64_t seq) {
  s.seq = seq;
  s.stream = opt_.first_sequence_id + static_cast<uint32_t>(seq);
  const auto src = start_.sequence(seq);
  s.x.assign(src.begin(), src.end());
  s.t = start_.time(seq);
  s.step = 0;
  s.rates_fresh = false;
  s.done = s.t >= 1.0;
  s.truncated = false;
  s.pending = false;
  s.events.clear();
  s.steps = s.num_events = s.rejections = s.violations = 0;
  s.status = absl::OkStatus();
}

std::array<double, kNumKinds> Engine::Totals(const Slot& s) const {
  std::array<double, kNumKinds> m = s.rates.kind_total;
  if (process_ == ProcessKind::kBranching && s.x.size() <= 1) m[kDel] = 0.0;
  return m;
}

std::array<double, kNumKinds> Engine::Hazards(double t) const {
  std::array<double, kNumKinds> h{};
  for (int k = 0; k < kNumKinds; ++k) h[k] = used_[k] ? sched_[k]->Hazard(t) : 0.0;
  return h;
}

std::array<double, kNumKinds> Engine::Fire(double t1, double t2) const {
  std::array<double, kNumKinds> q{};
  for (int k = 0; k < kNumKinds; ++k) {
    if (!used_[k]) continue;
    const double s1 = sched_[k]->Survival(t1);
    const double s2 = t2 >= 1.0 ? 0.0 : sched_[k]->Survival(t2);
    q[k] = s1 > 0.0 ? std::clamp(1.0 - s2 / s1, 0.0, 1.0) : 1.0;
  }
  return q;
}

double Engine::NextEventTime(double t, const std::array<double, kNumKinds>& b, double e) const {
  double btot = 0.0;
  for (int k = 0; k < kNumKinds; ++k) btot += b[k];
  if (!(btot > 0.0)) return 2.0;
  const double log_floor = std::log(Scheduler::kMinSurvival);
  if (single_ != nullptr) {
    // Survival space: u' = u exp(-E / B) (DESIGN.md, Samplers).
    const double u = single_->Survival(t);
    if (!(u > 0.0)) return 2.0;
    const double log_u2 = std::log(u) - e / btot;
    if (log_u2 < log_floor) return 2.0;
    return std::max(t, single_->InverseSurvival(std::exp(log_u2)));
  }
  // Several schedulers: bisection on G(s) = sum_k b_k (H_k(s) - H_k(t)),
  // nondecreasing in s, with H_k(1) capped at -log(kMinSurvival).
  std::array<double, kNumKinds> h0{};
  for (int k = 0; k < kNumKinds; ++k) h0[k] = b[k] > 0.0 ? sched_[k]->CumulativeHazard(t) : 0.0;
  auto g = [&](double s) {
    double v = 0.0;
    for (int k = 0; k < kNumKinds; ++k) {
      if (b[k] > 0.0) v += b[k] * (sched_[k]->CumulativeHazard(s) - h0[k]);
    }
    return v;
  };
  if (g(1.0) <= e) return 2.0;
  double lo = t, hi = 1.0;
  for (int it = 0; it < 200 && hi > lo && std::nextafter(lo, 2.0) < hi; ++it) {
    const double mid = 0.5 * (lo + hi);
    if (g(mid) < e) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return hi;
}

double Engine::AdaptiveStepEnd(double t, const std::array<double, kNumKinds>& m) const {
  double mtot = 0.0;
  for (int k = 0; k < kNumKinds; ++k) mtot += m[k];
  if (!(mtot > 0.0)) return 1.0;
  const double target = opt_.tolerance * std::max(1.0, mtot);
  double t2;
  if (single_ != nullptr) {
    const double q = target / mtot;
    if (q >= 1.0) return 1.0;
    const double u = single_->Survival(t);
    if (!(u > 0.0)) return 1.0;
    t2 = single_->InverseSurvival((1.0 - q) * u);
  } else {
    auto f = [&](double s) {
      const auto q = Fire(t, s);
      double v = 0.0;
      for (int k = 0; k < kNumKinds; ++k) v += m[k] * q[k];
      return v;
    };
    if (f(1.0) <= target) return 1.0;
    double lo = t, hi = 1.0;
    for (int it = 0; it < 200 && std::nextafter(lo, 2.0) < hi; ++it) {
      const double mid = 0.5 * (lo + hi);
      if (f(mid) <= target) {
        lo = mid;
      } else {
        hi = mid;
      }
    }
    t2 = lo;
  }
  if (!(t2 > t)) t2 = std::nextafter(t, 2.0);
  return std::min(t2, 1.0);
}

void Engine::Leap(Slot& s, const std::array<double, kNumKinds>& q, bool poisson, double t_end,
                  PhiloxStream& rng) {
  const SequenceRates& r = s.rates;
  const size_t vv = static_cast<size_t>(vocab_size_);
  const int64_t n = static_cast<int64_t>(s.x.size());
  auto token_row = [&](int64_t i) {
    return std::span<const double>(r.token_dist.data() + static_cast<size_t>(i) * vv, vv);
  };
  // Moves one token row; returns the (possibly unchanged) token.
  auto move_token = [&](int64_t i) -> Token {
    const Token cur = s.x[static_cast<size_t>(i)];
    const double m = r.token_total[static_cast<size_t>(i)];
    if (!(m > 0.0)) return cur;
    if (rng.Uniform() >= std::min(1.0, m * q[kTok])) return cur;
    const Token a =
        detail::SampleCategorical(token_row(i), cur, r.token_dsum[static_cast<size_t>(i)], rng);
    return a < 0 ? cur : a;
  };
  // Number of events of a count row (insertions, splits).
  auto count = [&](double m, double qk) -> int64_t {
    if (!(m > 0.0)) return 0;
    if (poisson) return detail::SamplePoisson(m * qk, rng);
    return rng.Uniform() < std::min(1.0, m * qk) ? 1 : 0;
  };

  if (process_ == ProcessKind::kDfm) {
    for (int64_t i = 0; i < n; ++i) {
      const Token a = move_token(i);
      if (a != s.x[static_cast<size_t>(i)]) {
        s.x[static_cast<size_t>(i)] = a;
        ++s.num_events;
        s.rates_fresh = false;
        Record(s, t_end, JumpKind::kToken, i, a);
      }
    }
    return;
  }

  if (process_ == ProcessKind::kEdit) {
    s.scratch.clear();
    bool changed = false;
    // A step that would grow the sequence past max_length is not applied.
    const size_t events_before = s.events.size();
    const int64_t num_events_before = s.num_events;
    for (int64_t j = 0; j <= n; ++j) {
      const int64_t k = count(r.insert_total[static_cast<size_t>(j)], q[kIns]);
      if (k > opt_.max_length) {
        AbandonStep(s, events_before, num_events_before);
        return;
      }
      for (int64_t c = 0; c < k; ++c) {
        const Token a = detail::SampleCategorical(
            std::span<const double>(r.insert_dist.data() + static_cast<size_t>(j) * vv, vv), -1,
            r.insert_dsum[static_cast<size_t>(j)], rng);
        if (a < 0) break;
        s.scratch.push_back(a);
        ++s.num_events;
        changed = true;
        Record(s, t_end, JumpKind::kInsert, j, a);
      }
      if (static_cast<int64_t>(s.scratch.size()) > opt_.max_length) {
        AbandonStep(s, events_before, num_events_before);
        return;
      }
      if (j == n) break;
      const Token cur = s.x[static_cast<size_t>(j)];
      double pd = std::min(1.0, r.delete_rate[static_cast<size_t>(j)] * q[kDel]);
      double ps = std::min(1.0, r.token_total[static_cast<size_t>(j)] * q[kTok]);
      if (pd + ps > 1.0) {
        const double scale = 1.0 / (pd + ps);
        pd *= scale;
        ps *= scale;
      }
      if (!(pd > 0.0) && !(ps > 0.0)) {
        s.scratch.push_back(cur);
        continue;
      }
      const double u = rng.Uniform();
      if (u < pd) {
        ++s.num_events;
        changed = true;
        Record(s, t_end, JumpKind::kDelete, j, cur);
      } else if (u < pd + ps) {
        const Token a =
            detail::SampleCategorical(token_row(j), cur, r.token_dsum[static_cast<size_t>(j)], rng);
        s.scratch.push_back(a < 0 ? cur : a);
        if (a >= 0) {
          ++s.num_events;
          changed = true;
          Record(s, t_end, JumpKind::kToken, j, a);
        }
      } else {
        s.scratch.push_back(cur);
      }
    }
    if (changed) {
      s.x.swap(s.scratch);
      s.rates_fresh = false;
    }
    return;
  }

  // Branching: token move, then deletion, then splits (see sampler.h).
  s.new_token.resize(static_cast<size_t>(n));
  s.split_count.resize(static_cast<size_t>(n));
  s.deleted.resize(static_cast<size_t>(n));
  int64_t num_deleted = 0, total_splits = 0;
  for (int64_t i = 0; i < n; ++i) {
    const size_t ui = static_cast<size_t>(i);
    const Token a = move_token(i);
    s.new_token[ui] = a;
    const double pdel = r.delete_rate[ui] * q[kDel];
    const bool del = pdel > 0.0 && rng.Uniform() < pdel;
    s.deleted[ui] = del;
    num_deleted += del;
    int64_t k = 0;
    if (!del && a == s.x[ui]) k = count(r.split_rate[ui], q[kSpl]);
    if (k > opt_.max_length) {
      s.truncated = s.done = true;
      return;
    }
    s.split_count[ui] = k;
    total_splits += k;
  }
  if (n > 0 && num_deleted == n) {
    // Length never drops below 1: one deleted element, chosen uniformly, stays.
    s.deleted[rng.UniformInt(static_cast<uint32_t>(n))] = 0;
    --num_deleted;
  }
  if (n - num_deleted + total_splits > opt_.max_length) {
    s.truncated = s.done = true;
    return;
  }
  s.scratch.clear();
  bool changed = false;
  for (int64_t i = 0; i < n; ++i) {
    const size_t ui = static_cast<size_t>(i);
    if (s.new_token[ui] != s.x[ui]) {
      ++s.num_events;
      changed = true;
      Record(s, t_end, JumpKind::kToken, i, s.new_token[ui]);
    }
    if (s.deleted[ui]) {
      ++s.num_events;
      changed = true;
      Record(s, t_end, JumpKind::kDelete, i, s.new_token[ui]);
      continue;
    }
    s.scratch.push_back(s.new_token[ui]);
    for (int64_t c = 0; c < s.split_count[ui]; ++c) {
      s.scratch.push_back(s.new_token[ui]);
      ++s.num_events;
      changed = true;
      Record(s, t_end, JumpKind::kSplit, i, s.new_token[ui]);
    }
  }
  if (changed) {
    s.x.swap(s.scratch);
    s.rates_fresh = false;
  }
}

bool Engine::ApplyOneEvent(Slot& s, const std::array<double, kNumKinds>& h, double t,
                           PhiloxStream& rng) {
  const SequenceRates& r = s.rates;
  const auto m = Totals(s);
  std::array<double, kNumKinds> w{};
  double wtot = 0.0;
  for (int k = 0; k < kNumKinds; ++k) {
    w[k] = h[k] * m[k];
    wtot += w[k];
  }
  if (!(wtot > 0.0)) return false;
  double u = rng.Uniform() * wtot;
  int kind = -1;
  for (int k = 0; k < kNumKinds; ++k) {
    if (!(w[k] > 0.0)) continue;
    kind = k;
    u -= w[k];
    if (u < 0.0) break;
  }
  const std::vector<double>* rows = nullptr;
  switch (kind) {
    case kTok:
      rows = &r.token_total;
      break;
    case kIns:
      rows = &r.insert_total;
      break;
    case kDel:
      rows = &r.delete_rate;
      break;
    default:
      rows = &r.split_rate;
      break;
  }
  double v = rng.Uniform() * m[kind];
  int64_t row = -1;
  for (size_t i = 0; i < rows->size(); ++i) {
    if (!((*rows)[i] > 0.0)) continue;
    row = static_cast<int64_t>(i);
    v -= (*rows)[i];
    if (v < 0.0) break;
  }
  if (row < 0) return false;
  const size_t vv = static_cast<size_t>(vocab_size_);
  const size_t ur = static_cast<size_t>(row);
  switch (kind) {
    case kTok: {
      const Token cur = s.x[ur];
      const Token a = detail::SampleCategorical(
          std::span<const double>(r.token_dist.data() + ur * vv, vv), cur, r.token_dsum[ur], rng);
      if (a < 0) return false;
      s.x[ur] = a;
      Record(s, t, JumpKind::kToken, row, a);
      break;
    }
    case kIns: {
      const Token a = detail::SampleCategorical(
          std::span<const double>(r.insert_dist.data() + ur * vv, vv), -1, r.insert_dsum[ur], rng);
      if (a < 0) return false;
      s.x.insert(s.x.begin() + row, a);
      Record(s, t, JumpKind::kInsert, row, a);
      break;
    }
    case kDel: {
      Record(s, t, JumpKind::kDelete, row, s.x[ur]);
      s.x.erase(s.x.begin() + row);
      break;
    }
    default: {
      const Token a = s.x[ur];
      s.x.insert(s.x.begin() + row + 1, a);
      Record(s, t, JumpKind::kSplit, row, a);
      break;
    }
  }
  ++s.num_events;
  s.rates_fresh = false;
  CheckLength(s);
  return true;
}

void Engine::AdvanceGrid(Slot& s) {
  if (s.step >= static_cast<uint64_t>(opt_.max_steps_per_sequence)) {
    s.truncated = s.done = true;
    return;
  }
  if (!time_dependent_ && AllZero(Totals(s))) {
    // Time-independent multipliers that are all zero stay zero: no event
    // can happen any more, so the sequence is finished.
    s.t = 1.0;
    s.done = true;
    return;
  }
  const double t2 = NextGridTime(s.t);
  const auto q = Fire(s.t, t2);
  ++s.step;
  ++s.steps;
  PhiloxStream rng(opt_.seed, s.stream, kPurposeSampler, s.step << 32);
  Leap(s, q, opt_.kind == SamplerKind::kTauLeap, t2, rng);
  s.t = t2;
  if (s.t >= 1.0) s.done = true;
  if (time_dependent_) s.rates_fresh = false;
}

void Engine::AdvanceAdaptive(Slot& s) {
  if (s.step >= static_cast<uint64_t>(opt_.max_steps_per_sequence)) {
    s.truncated = s.done = true;
    return;
  }
  if (!time_dependent_ && AllZero(Totals(s))) {
    s.t = 1.0;
    s.done = true;
    return;
  }
  const double t2 = AdaptiveStepEnd(s.t, Totals(s));
  const auto q = Fire(s.t, t2);
  ++s.step;
  ++s.steps;
  PhiloxStream rng(opt_.seed, s.stream, kPurposeSampler, s.step << 32);
  Leap(s, q, /*poisson=*/true, t2, rng);
  s.t = t2;
  if (s.t >= 1.0) s.done = true;
  if (time_dependent_) s.rates_fresh = false;
}

void Engine::AdvanceGillespie(Slot& s) {
  for (;;) {
    if (s.pending) {
      // Thinning: accept the proposal at s.t with probability
      // lambda(t') / lambda_bar(t'), the rates now evaluated at t'.
      s.pending = false;
      PhiloxStream rng(opt_.seed, s.stream, kPurposeSampler, (s.step << 32) | kAcceptanceOffset);
      const auto h = Hazards(s.t);
      const auto m = Totals(s);
      double lam = 0.0, lam_bar = 0.0;
      for (int k = 0; k < kNumKinds; ++k) {
        lam += h[k] * m[k];
        lam_bar += h[k] * s.bound[k];
      }
      if (lam > lam_bar * (1.0 + 1e-9)) ++s.violations;
      if (lam > 0.0 && rng.Uniform() * lam_bar < lam && ApplyOneEvent(s, h, s.t, rng)) {
        return;  // state changed: evaluate again at the same t
      }
      ++s.rejections;
    }
    if (s.done || !Propose(s, Totals(s))) return;
    if (time_dependent_) {
      s.rates_fresh = false;
      return;
    }
    // Time-independent multipliers: the rates at t' are the ones at hand.
  }
}

void Engine::AdvanceFrozen(Slot& s) {
  if (s.step >= static_cast<uint64_t>(opt_.max_steps_per_sequence)) {
    s.truncated = s.done = true;
    return;
  }
  const auto m = Totals(s);
  ++s.step;
  ++s.steps;
  PhiloxStream rng(opt_.seed, s.stream, kPurposeSampler, s.step << 32);
  const double t2 = NextEventTime(s.t, m, rng.Exponential());
  if (t2 > 1.0) {
    s.t = 1.0;
    s.done = true;
    return;
  }
  s.t = t2;
  // APPROXIMATE: the event is drawn from the multipliers frozen at the
  // previous evaluation time.
  ApplyOneEvent(s, Hazards(t2), t2, rng);
  if (time_dependent_) s.rates_fresh = false;
}

absl::StatusOr<SampleResult> Engine::Run() {
  const auto clock_start = std::chrono::steady_clock::now();
  const int64_t num = start_.num_sequences();
  SampleResult result;
  SamplerStats& stats = result.stats;
  std::vector<std::vector<Token>> finals(static_cast<size_t>(num));
  std::vector<double> final_times(static_cast<size_t>(num), 1.0);
  std::vector<std::vector<TrajectoryEvent>> trajectories(
      opt_.record_trajectory ? static_cast<size_t>(num) : 0);

  std::vector<Slot> slots(static_cast<size_t>(std::min<int64_t>(opt_.max_batch, num)));
  int64_t next = 0, finished = 0;
  for (Slot& s : slots) Load(s, next++);

  RateOutputs outputs;
  std::vector<size_t> eval_ids, active_ids;
  absl::Status status;

  auto retire = [&](Slot& s) {
    finals[static_cast<size_t>(s.seq)] = s.x;
    final_times[static_cast<size_t>(s.seq)] = s.t;
    if (opt_.record_trajectory) trajectories[static_cast<size_t>(s.seq)] = std::move(s.events);
    stats.steps += s.steps;
    stats.events += s.num_events;
    stats.rejections += s.rejections;
    stats.bound_violations += s.violations;
    stats.truncated += s.truncated;
    ++finished;
    if (next < num) {
      Load(s, next++);
    } else {
      s.seq = -1;
    }
  };

  auto body = [&]() -> absl::Status {
    for (;;) {
      // Retire finished sequences (possibly several times, as new ones may
      // start at t = 1) and collect the active ones.
      active_ids.clear();
      for (size_t i = 0; i < slots.size(); ++i) {
        while (slots[i].seq >= 0 && slots[i].done) retire(slots[i]);
        if (slots[i].seq >= 0) active_ids.push_back(i);
      }
      if (opt_.progress) opt_.progress(finished, num);
      if (active_ids.empty()) return absl::OkStatus();
      ++stats.rounds;
      if (fused_ == Fused::kGrid) {
        JUMPFLOW_RETURN_IF_ERROR(FusedGridRound(slots, active_ids, stats));
        continue;
      }
      if (fused_ == Fused::kGillespie) {
        JUMPFLOW_RETURN_IF_ERROR(FusedGillespieRound(slots, active_ids, stats));
        continue;
      }

      // One batched evaluation for every active sequence without fresh rates.
      eval_ids.clear();
      for (size_t i : active_ids) {
        if (!slots[i].rates_fresh) eval_ids.push_back(i);
      }
      if (!eval_ids.empty()) {
        JUMPFLOW_ASSIGN_OR_RETURN(const SequenceBatch batch, BatchOf(slots, eval_ids));
        outputs.Reset(batch, process_, vocab_size_);
        const std::array<size_t, 7> shape = {outputs.token_rate.size(),  outputs.token_dist.size(),
                                             outputs.insert_rate.size(), outputs.insert_dist.size(),
                                             outputs.delete_rate.size(), outputs.split_rate.size(),
                                             outputs.fallback.size()};
        if (absl::Status s = model_.Evaluate(batch, &outputs); !s.ok()) {
          return absl::Status(s.code(), absl::StrCat("model '", model_.Name(), "': ", s.message()));
        }
        const std::array<size_t, 7> after = {outputs.token_rate.size(),  outputs.token_dist.size(),
                                             outputs.insert_rate.size(), outputs.insert_dist.size(),
                                             outputs.delete_rate.size(), outputs.split_rate.size(),
                                             outputs.fallback.size()};
        if (after != shape) {
          return absl::InternalError(
              absl::StrCat("model '", model_.Name(), "' resized its RateOutputs"));
        }
        ++stats.model_calls;
        stats.sequence_evaluations += static_cast<int64_t>(eval_ids.size());
        for (uint8_t f : outputs.fallback) stats.fallbacks += f != 0;
        const auto offs = batch.offsets();
        tbb::parallel_for(tbb::blocked_range<size_t>(0, eval_ids.size(), 8),
                          [&](const tbb::blocked_range<size_t>& range) {
                            for (size_t e = range.begin(); e < range.end(); ++e) {
                              Slot& s = slots[eval_ids[e]];
                              const int64_t b = static_cast<int64_t>(e);
                              s.status = LoadRates(outputs, offs[e], offs[e] + b, s.x, &s.rates);
                              s.rates_fresh = s.status.ok();
                            }
                          });
        for (size_t i : eval_ids) {
          if (!slots[i].status.ok()) {
            return absl::InvalidArgumentError(absl::StrCat(
                "model '", model_.Name(), "' returned an invalid multiplier for sequence ",
                slots[i].seq, ": ", slots[i].status.message()));
          }
        }
      }

      tbb::parallel_for(tbb::blocked_range<size_t>(0, active_ids.size(), 4),
                        [&](const tbb::blocked_range<size_t>& range) {
                          for (size_t e = range.begin(); e < range.end(); ++e) {
                            Slot& s = slots[active_ids[e]];
                            switch (opt_.kind) {
                              case SamplerKind::kEuler:
                              case SamplerKind::kTauLeap:
                                AdvanceGrid(s);
                                break;
                              case SamplerKind::kAdaptive:
                                AdvanceAdaptive(s);
                                break;
                              case SamplerKind::kGillespie:
                                AdvanceGillespie(s);
                                break;
                              case SamplerKind::kGillespieFrozen:
                                AdvanceFrozen(s);
                                break;
                            }
                          }
                        });
    }
  };

  if (opt_.num_threads > 0) {
    tbb::task_arena arena(opt_.num_threads);
    arena.execute([&] { status = body(); });
  } else {
    status = body();
  }
  JUMPFLOW_RETURN_IF_ERROR(status);

  JUMPFLOW_ASSIGN_OR_RETURN(result.final_batch,
                            SequenceBatch::FromVectors(finals, vocab_size_, final_times));
  if (opt_.record_trajectory) {
    for (auto& events : trajectories) {
      result.trajectory.insert(result.trajectory.end(), events.begin(), events.end());
    }
  }
  stats.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - clock_start).count();
  return result;
}

}  // namespace

absl::StatusOr<SamplerKind> ParseSamplerKind(absl::string_view name) {
  if (name == "euler") return SamplerKind::kEuler;
  if (name == "tau-leap") return SamplerKind::kTauLeap;
  if (name == "adaptive") return SamplerKind::kAdaptive;
  if (name == "gillespie") return SamplerKind::kGillespie;
  if (name == "gillespie-frozen") return SamplerKind::kGillespieFrozen;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown sampler '", name,
                   "' (expected euler, tau-leap, adaptive, gillespie or gillespie-frozen)"));
}

std::string SamplerKindName(SamplerKind kind) {
  switch (kind) {
    case SamplerKind::kEuler:
      return "euler";
    case SamplerKind::kTauLeap:
      return "tau-leap";
    case SamplerKind::kAdaptive:
      return "adaptive";
    case SamplerKind::kGillespie:
      return "gillespie";
    case SamplerKind::kGillespieFrozen:
      return "gillespie-frozen";
  }
  return "unknown";
}

bool HasFusedEvents(const RateModel& model, SamplerKind kind) {
  if (!model.ProvidesSoftmaxLogits()) return false;
  switch (model.process()) {
    case ProcessKind::kDfm:
      return kind == SamplerKind::kEuler || kind == SamplerKind::kTauLeap ||
             kind == SamplerKind::kGillespie;
    case ProcessKind::kEdit:
      return kind == SamplerKind::kEuler || kind == SamplerKind::kGillespie;
    default:
      return false;
  }
}

std::vector<double> MakeTimeGrid(TimeGrid grid, int64_t steps, const Scheduler& scheduler) {
  steps = std::max<int64_t>(steps, 1);
  std::vector<double> points;
  points.reserve(static_cast<size_t>(steps + 1));
  points.push_back(0.0);
  for (int64_t i = 1; i < steps; ++i) {
    const double f = static_cast<double>(i) / static_cast<double>(steps);
    const double t = grid == TimeGrid::kUniform ? f : scheduler.InverseKappa(f);
    if (t > points.back() && t < 1.0) points.push_back(t);
  }
  points.push_back(1.0);
  return points;
}

absl::StatusOr<SampleResult> Sample(RateModel& model, const KindSchedulers& schedulers,
                                    const SequenceBatch& start, const SamplerOptions& options) {
  Engine engine(model, schedulers, start, options);
  JUMPFLOW_RETURN_IF_ERROR(engine.Validate());
  return engine.Run();
}

}  // namespace jumpflow
