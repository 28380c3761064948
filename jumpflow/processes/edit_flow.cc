// @brief Edit Flows training batches (DESIGN.md section 1 "Edit Flows").
//
// Reference: Havasi, Karrer, Gat, Chen et al., "Edit Flows: Flow Matching
// with Edit Operations" (2025, arXiv 2506.09018), sections 3.2-3.3: the
// aligned mixture path z_t and the conditional rates
// u_t(x | x_t, z) = kappa'/(1 - kappa) * [edit brings z_t closer to z_1].
// Deviation from the paper: no BOS token; gap 0 of our layout already lets
// the front of the sequence receive insertions.
#include "jumpflow/processes/edit_flow.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <utility>

#include "absl/strings/str_cat.h"
#include "jumpflow/processes/detail/batch_builder.h"
#include "jumpflow/processes/detail/checks.h"
#include "jumpflow/status_macros.h"
#include "kernels/philox.h"
#include "oneapi/tbb/blocked_range.h"
#include "oneapi/tbb/parallel_for.h"
#include "sequences/edits.h"

namespace jumpflow {
namespace {

constexpr int64_t kMaxNoiseLength = int64_t{1} << 20;

struct EditScratch {
  std::vector<Token> x0;
  std::vector<Token> z_t;
  std::vector<Token> gap_tokens;
};

// Emits the pending insertions of one gap: sorted, distinct tokens with
// their counts.
void FlushGap(std::vector<Token>& gap_tokens, detail::ChunkArena& out) {
  out.BeginGapRow();
  if (gap_tokens.empty()) return;
  std::sort(gap_tokens.begin(), gap_tokens.end());
  size_t i = 0;
  while (i < gap_tokens.size()) {
    size_t j = i + 1;
    while (j < gap_tokens.size() && gap_tokens[j] == gap_tokens[i]) ++j;
    out.AddGapEntry(gap_tokens[i], static_cast<float>(j - i));
    i = j;
  }
  gap_tokens.clear();
}

absl::Status ValidateOptions(const SequenceBatch& x1, const EditFlowOptions& options) {
  const int32_t vocab_size = options.vocab_size;
  JUMPFLOW_RETURN_IF_ERROR(detail::CheckVocabSize(vocab_size, 0, "for Edit Flows"));
  JUMPFLOW_RETURN_IF_ERROR(detail::CheckTokens(x1, "x1", vocab_size, /*allow_mask=*/false));
  const int64_t num_sequences = x1.num_sequences();
  if (options.alignment != EditAlignment::kMinEdit && options.alignment != EditAlignment::kRandom &&
      options.alignment != EditAlignment::kUser) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown EditAlignment ", static_cast<int>(options.alignment)));
  }
  for (double c : {options.costs.insert, options.costs.del, options.costs.substitute}) {
    if (!std::isfinite(c) || c < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("alignment costs must be finite and >= 0, got insert=", options.costs.insert,
                       " delete=", options.costs.del, " substitute=", options.costs.substitute));
    }
  }
  if (options.insertion_order != InsertionOrder::kIndependent &&
      options.insertion_order != InsertionOrder::kLeftToRight) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown InsertionOrder ", static_cast<int>(options.insertion_order)));
  }
  if (options.insertion_order == InsertionOrder::kLeftToRight &&
      options.source != EditSource::kEmpty) {
    return absl::InvalidArgumentError(
        "InsertionOrder::kLeftToRight requires EditSource::kEmpty (insertions only)");
  }
  if (options.all_prefixes && options.insertion_order != InsertionOrder::kLeftToRight) {
    return absl::InvalidArgumentError("all_prefixes requires InsertionOrder::kLeftToRight");
  }
  if ((options.gap_time_distribution != nullptr || options.gap_time_weight != nullptr) &&
      !options.all_prefixes) {
    return absl::InvalidArgumentError("per-gap times require all_prefixes");
  }
  if (options.gap_time_weight != nullptr && options.gap_time_distribution == nullptr) {
    return absl::InvalidArgumentError("gap_time_weight needs gap_time_distribution");
  }
  if (options.alignment == EditAlignment::kUser && options.source != EditSource::kPairs) {
    return absl::InvalidArgumentError("EditAlignment::kUser requires EditSource::kPairs");
  }
  switch (options.source) {
    case EditSource::kEmpty:
      for (int64_t b = 0; b < num_sequences; ++b) {
        if (x1.length(b) == 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              "x1 sequence ", b,
              " is empty; insertion-only Edit Flows (empty x0) need a nonempty target"));
        }
      }
      break;
    case EditSource::kNoise:
      JUMPFLOW_RETURN_IF_ERROR(detail::CheckVocabSize(vocab_size, Vocabulary::kNumSpecials,
                                                      "for noise sources (no user tokens)"));
      if (options.noise_min_length < 0 || options.noise_max_length < options.noise_min_length ||
          options.noise_max_length > kMaxNoiseLength) {
        return absl::InvalidArgumentError(absl::StrCat(
            "noise length range [", options.noise_min_length, ", ", options.noise_max_length,
            "] is invalid; need 0 <= min <= max <= ", kMaxNoiseLength));
      }
      break;
    case EditSource::kPairs: {
      if (options.x0 == nullptr) {
        return absl::InvalidArgumentError("EditSource::kPairs needs EditFlowOptions::x0");
      }
      if (options.x0->num_sequences() != num_sequences) {
        return absl::InvalidArgumentError(absl::StrCat("x0 has ", options.x0->num_sequences(),
                                                       " sequences but x1 has ", num_sequences));
      }
      JUMPFLOW_RETURN_IF_ERROR(
          detail::CheckTokens(*options.x0, "x0", vocab_size, /*allow_mask=*/true));
      if (options.alignment == EditAlignment::kUser) {
        if (options.alignments == nullptr ||
            static_cast<int64_t>(options.alignments->size()) != num_sequences) {
          return absl::InvalidArgumentError(absl::StrCat(
              "EditAlignment::kUser needs one alignment per sequence (", num_sequences, "), got ",
              options.alignments == nullptr ? 0 : options.alignments->size()));
        }
        for (int64_t b = 0; b < num_sequences; ++b) {
          absl::Status s =
              ValidateAlignment((*options.alignments)[b], options.x0->sequence(b), x1.sequence(b));
          if (!s.ok()) {
            return absl::InvalidArgumentError(
                absl::StrCat("user alignment of sequence ", b, ": ", s.message()));
          }
        }
      }
      break;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown EditSource ", static_cast<int>(options.source)));
  }
  return absl::OkStatus();
}

// PerGapTimes fills gap_times and gap_weights of an all-prefix batch (file
// comment of edit_flow.h, "Per-gap times"), in parallel over sequences (each
// has its own stream, so the result does not depend on the thread count).
absl::Status PerGapTimes(const SequenceBatch& x1, const Scheduler& kappa, const TimeDistribution& p,
                         const TimeWeight* w, uint64_t seed, TrainingBatch* tb) {
  const int64_t num_sequences = x1.num_sequences();
  tb->gap_times.assign(static_cast<size_t>(tb->x_t.num_gaps()), 0.0);
  tb->gap_weights.assign(static_cast<size_t>(tb->x_t.num_gaps()), 0.0f);
  // The first non-finite weight of each sequence (k < 0: none).
  struct BadGap {
    int64_t k = -1;
    double t = 0.0, density = 0.0, dkappa = 0.0, weight = 0.0;
  };
  std::vector<BadGap> bad(static_cast<size_t>(num_sequences));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, num_sequences), [&](const auto& range) {
    std::vector<double> draws;
    for (int64_t b = range.begin(); b < range.end(); ++b) {
      const int64_t n = x1.length(b), g0 = x1.offsets()[b] + b;
      PhiloxStream rng(seed, static_cast<uint32_t>(b), kPurposeGapTime);
      draws.resize(static_cast<size_t>(n + 1));
      for (int64_t k = 0; k <= n; ++k) {
        // Survival 1 - u ~ Beta(n - k + 1, k + 1): the (n - k + 1)-th
        // smallest of n + 1 uniforms.
        for (double& x : draws) x = rng.Uniform();
        std::nth_element(draws.begin(), draws.begin() + (n - k), draws.end());
        const double t = kappa.InverseSurvival(draws[static_cast<size_t>(n - k)]);
        const double density = p.Density(t), dkappa = kappa.KappaDerivative(t);
        const double weight =
            density / dkappa * (w != nullptr ? w->Weight(t) : 1.0) / static_cast<double>(n + 1);
        if (!(std::isfinite(weight) && weight >= 0.0)) {
          bad[static_cast<size_t>(b)] = {k, t, density, dkappa, weight};
          break;
        }
        tb->gap_times[static_cast<size_t>(g0 + k)] = t;
        tb->gap_weights[static_cast<size_t>(g0 + k)] = static_cast<float>(weight);
      }
    }
  });
  for (int64_t b = 0; b < num_sequences; ++b) {
    const BadGap& e = bad[static_cast<size_t>(b)];
    if (e.k < 0) continue;
    return absl::InvalidArgumentError(absl::StrCat(
        "per-gap time weight of sequence ", b, " gap ", e.k, " at t = ", e.t, " is ", e.weight,
        " (density ", e.density, ", kappa' ", e.dkappa,
        "); the time distribution needs a finite density, and none where kappa is flat"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TrainingBatch> MakeEditFlowBatch(const SequenceBatch& x1, const BatchTimes& times,
                                                const Scheduler& scheduler,
                                                const EditFlowOptions& options, uint64_t seed,
                                                const BatchWeights& weights, EditFlowTrace* trace) {
  JUMPFLOW_RETURN_IF_ERROR(ValidateOptions(x1, options));
  const int64_t num_sequences = x1.num_sequences();
  JUMPFLOW_ASSIGN_OR_RETURN(std::vector<double> t, times.Resolve(num_sequences, seed));
  JUMPFLOW_ASSIGN_OR_RETURN(std::vector<float> w, weights.Resolve(t));
  const Scheduler& ins_sched = options.insert_scheduler ? *options.insert_scheduler : scheduler;
  const Scheduler& del_sched = options.delete_scheduler ? *options.delete_scheduler : scheduler;
  const Scheduler& sub_sched =
      options.substitute_scheduler ? *options.substitute_scheduler : scheduler;
  if (trace != nullptr) {
    trace->alignments.assign(static_cast<size_t>(num_sequences), Alignment{});
    trace->z_t.assign(static_cast<size_t>(num_sequences), {});
  }
  const uint32_t num_user =
      static_cast<uint32_t>(std::max<int32_t>(1, options.vocab_size - Vocabulary::kNumSpecials));

  auto emit = [&](int64_t b, detail::ChunkArena& out, EditScratch& scratch) -> absl::Status {
    const auto target = x1.sequence(b);
    const uint32_t stream = static_cast<uint32_t>(b);
    const double k_ins = ins_sched.Kappa(t[b]);
    const double k_del = del_sched.Kappa(t[b]);
    const double k_sub = sub_sched.Kappa(t[b]);
    PhiloxStream coins(seed, stream, kPurposePath);
    std::vector<Token>& z_t = scratch.z_t;
    z_t.clear();
    std::vector<Token>& gap_tokens = scratch.gap_tokens;
    gap_tokens.clear();

    // Insertion only: the alignment is every column an insertion.
    auto trace_insertions = [&] {
      if (trace == nullptr) return;
      Alignment& al = trace->alignments[b];
      al.z0.assign(target.size(), Vocabulary::kEps);
      al.z1.assign(target.begin(), target.end());
      trace->z_t[b] = z_t;
    };
    if (options.insertion_order == InsertionOrder::kLeftToRight) {
      // x_t = x_1[0, K) with K = the number of the n coins below kappa, and
      // the last gap carries the next token x_1[K] with count n - K. All
      // prefixes: x_t = x_1 (K = n) and every gap K' carries the targets of
      // the prefix state x_1[0, K').
      const size_t n = target.size();
      size_t k = n;
      if (!options.all_prefixes) {
        k = 0;
        for (size_t i = 0; i < n; ++i) k += detail::Uniform32(coins) < k_ins ? 1 : 0;
      }
      for (size_t i = 0; i < k; ++i) {
        out.BeginGapRow();
        if (options.all_prefixes) out.AddGapEntry(target[i], static_cast<float>(n - i));
        out.BeginTokenRow(target[i], 0.0f);
      }
      out.BeginGapRow();
      if (k < n) out.AddGapEntry(target[k], static_cast<float>(n - k));
      z_t.assign(target.begin(), target.begin() + static_cast<std::ptrdiff_t>(k));
      z_t.resize(n, Vocabulary::kEps);
      trace_insertions();
      return absl::OkStatus();
    }
    if (options.source == EditSource::kEmpty) {
      // Every column is an insertion: no alignment needed.
      for (const Token y : target) {
        if (detail::Uniform32(coins) < k_ins) {
          z_t.push_back(y);
          FlushGap(gap_tokens, out);
          out.BeginTokenRow(y, 0.0f);
        } else {
          z_t.push_back(Vocabulary::kEps);
          gap_tokens.push_back(y);
        }
      }
      FlushGap(gap_tokens, out);
      trace_insertions();
      return absl::OkStatus();
    }

    std::span<const Token> source;
    if (options.source == EditSource::kNoise) {
      PhiloxStream noise(seed, stream, kPurposeSource);
      const int64_t span = options.noise_max_length - options.noise_min_length + 1;
      const int64_t len = options.noise_min_length +
                          static_cast<int64_t>(noise.UniformInt(static_cast<uint32_t>(span)));
      scratch.x0.resize(static_cast<size_t>(len));
      for (Token& x : scratch.x0) {
        x = Vocabulary::kNumSpecials + static_cast<Token>(noise.UniformInt(num_user));
      }
      source = scratch.x0;
    } else {
      source = options.x0->sequence(b);
    }

    Alignment computed;
    const Alignment* al = nullptr;
    if (options.alignment == EditAlignment::kUser) {
      al = &(*options.alignments)[b];
    } else {
      const uint64_t al_seed = DeriveSeed(seed, b, kPurposeAlignment);
      absl::StatusOr<Alignment> r = options.alignment == EditAlignment::kRandom
                                        ? RandomAlignment(source, target, al_seed)
                                        : MinEditAlignment(source, target, options.costs, al_seed);
      if (!r.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("aligning sequence ", b, ": ", r.status().message()));
      }
      computed = std::move(r).value();
      al = &computed;
    }

    const size_t columns = al->z0.size();
    for (size_t k = 0; k < columns; ++k) {
      const Token a = al->z0[k], c = al->z1[k];
      Token z = a;
      if (a != c) {
        const double kappa =
            a == Vocabulary::kEps ? k_ins : (c == Vocabulary::kEps ? k_del : k_sub);
        if (detail::Uniform32(coins) < kappa) z = c;
      }
      z_t.push_back(z);
      if (z == Vocabulary::kEps) {
        // Pending insertion (z_1 = c is a token) or an already deleted token.
        if (c != Vocabulary::kEps) gap_tokens.push_back(c);
        continue;
      }
      FlushGap(gap_tokens, out);
      out.BeginTokenRow(z, c == Vocabulary::kEps ? 1.0f : 0.0f);
      if (c != Vocabulary::kEps && c != z) out.AddTokenEntry(c, 1.0f);
    }
    FlushGap(gap_tokens, out);
    if (trace != nullptr) {
      trace->alignments[b] = *al;
      trace->z_t[b] = z_t;
    }
    return absl::OkStatus();
  };

  JUMPFLOW_ASSIGN_OR_RETURN(
      TrainingBatch tb,
      detail::BuildBatch<EditScratch>(
          num_sequences, {.token = true, .del = true, .split = false, .insert = true}, emit));
  tb.process = ProcessKind::kEdit;
  for (int64_t b = 0; b < num_sequences; ++b) tb.x_t.set_time(b, t[b]);
  tb.weights = std::move(w);
  if (options.gap_time_distribution != nullptr) {
    JUMPFLOW_RETURN_IF_ERROR(PerGapTimes(x1, ins_sched, *options.gap_time_distribution,
                                         options.gap_time_weight, seed, &tb));
  } else if (options.all_prefixes) {
    // P(K) = C(n, K) kappa^K (1 - kappa)^(n - K), in log space (lgamma),
    // exact at kappa = 0 and 1.
    tb.gap_weights.reserve(static_cast<size_t>(tb.x_t.num_gaps()));
    for (int64_t b = 0; b < num_sequences; ++b) {
      const int64_t n = x1.length(b);
      const double kappa = ins_sched.Kappa(t[b]);
      for (int64_t k = 0; k <= n; ++k) {
        double p;
        if (kappa <= 0.0) {
          p = k == 0 ? 1.0 : 0.0;
        } else if (kappa >= 1.0) {
          p = k == n ? 1.0 : 0.0;
        } else {
          p = std::exp(std::lgamma(n + 1.0) - std::lgamma(k + 1.0) - std::lgamma(n - k + 1.0) +
                       k * std::log(kappa) + (n - k) * std::log1p(-kappa));
        }
        tb.gap_weights.push_back(static_cast<float>(p));
      }
    }
  }
  return tb;
}

absl::StatusOr<std::vector<std::vector<Token>>> ApplyEditTargets(const TrainingBatch& batch,
                                                                 const EditFlowTrace* trace) {
  const SequenceBatch& x_t = batch.x_t;
  const int64_t num_sequences = x_t.num_sequences();
  const int64_t rows = x_t.num_tokens();
  if (batch.token_targets.num_rows() != rows ||
      static_cast<int64_t>(batch.delete_targets.size()) != rows ||
      batch.insert_targets.num_rows() != x_t.num_gaps()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Edit Flows targets do not match x_t: ", batch.token_targets.num_rows(), " token rows, ",
        batch.delete_targets.size(), " delete targets, ", batch.insert_targets.num_rows(),
        " gap rows for ", rows, " tokens and ", x_t.num_gaps(), " gaps"));
  }
  if (trace != nullptr && static_cast<int64_t>(trace->z_t.size()) != num_sequences) {
    return absl::InvalidArgumentError("trace does not match the batch's sequence count");
  }
  std::vector<std::vector<Token>> result(static_cast<size_t>(num_sequences));
  std::vector<Edit> edits;
  std::vector<std::vector<Token>> ordered;  // per gap, trace order
  for (int64_t b = 0; b < num_sequences; ++b) {
    edits.clear();
    const int64_t n = x_t.length(b);
    const int64_t row0 = x_t.offsets()[b];
    const int64_t gap0 = row0 + b;
    if (trace != nullptr) {
      // Pending insertions per gap, in column order.
      ordered.assign(static_cast<size_t>(n) + 1, {});
      const auto& z_t = trace->z_t[b];
      const auto& z1 = trace->alignments[b].z1;
      if (z1.size() != z_t.size()) {
        return absl::InvalidArgumentError(absl::StrCat("trace of sequence ", b, " is malformed"));
      }
      int64_t j = 0;
      for (size_t k = 0; k < z_t.size(); ++k) {
        if (z_t[k] != Vocabulary::kEps) {
          ++j;
        } else if (z1[k] != Vocabulary::kEps) {
          if (j > n) return absl::InvalidArgumentError("trace z_t is longer than x_t");
          ordered[j].push_back(z1[k]);
        }
      }
      if (j != n) {
        return absl::InvalidArgumentError(
            absl::StrCat("trace z_t of sequence ", b, " has ", j, " tokens, x_t has ", n));
      }
    }
    for (int64_t j = 0; j <= n; ++j) {
      const int64_t g = gap0 + j;
      const auto& ins = batch.insert_targets;
      int64_t total = 0;
      for (int64_t e = ins.row_offsets[g]; e < ins.row_offsets[g + 1]; ++e) {
        const float count = ins.values[e];
        if (!(count >= 1.0f) || count != std::floor(count)) {
          return absl::InvalidArgumentError(absl::StrCat("insertion count ", count, " of gap ", j,
                                                         " of sequence ", b,
                                                         " is not a positive integer"));
        }
        total += static_cast<int64_t>(count);
        if (trace == nullptr) {
          for (int64_t m = 0; m < static_cast<int64_t>(count); ++m) {
            edits.push_back(Edit::Insert(static_cast<int32_t>(j), ins.cols[e]));
          }
        }
      }
      if (trace != nullptr) {
        // The trace order must be a permutation of the counted multiset.
        std::vector<Token> sorted = ordered[j];
        std::sort(sorted.begin(), sorted.end());
        std::vector<Token> counted;
        for (int64_t e = ins.row_offsets[g]; e < ins.row_offsets[g + 1]; ++e) {
          counted.insert(counted.end(), static_cast<size_t>(ins.values[e]), ins.cols[e]);
        }
        if (sorted != counted || static_cast<int64_t>(counted.size()) != total) {
          return absl::InvalidArgumentError(absl::StrCat(
              "insertion targets of gap ", j, " of sequence ", b, " disagree with the trace"));
        }
        for (Token a : ordered[j]) edits.push_back(Edit::Insert(static_cast<int32_t>(j), a));
      }
    }
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = row0 + i;
      const float del = batch.delete_targets[r];
      const int64_t entries =
          batch.token_targets.row_offsets[r + 1] - batch.token_targets.row_offsets[r];
      if (del != 0.0f && del != 1.0f) {
        return absl::InvalidArgumentError(
            absl::StrCat("delete target ", del, " of row ", r, " is not 0 or 1"));
      }
      if (entries > 1 || (entries == 1 && del == 1.0f)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "row ", r, " has ", entries, " substitution targets and delete target ", del));
      }
      if (del == 1.0f) edits.push_back(Edit::Delete(static_cast<int32_t>(i)));
      if (entries == 1) {
        const int64_t e = batch.token_targets.row_offsets[r];
        if (batch.token_targets.values[e] != 1.0f) {
          return absl::InvalidArgumentError(
              absl::StrCat("substitution target of row ", r, " is not 1"));
        }
        edits.push_back(Edit::Substitute(static_cast<int32_t>(i), batch.token_targets.cols[e]));
      }
    }
    JUMPFLOW_ASSIGN_OR_RETURN(result[b], ApplyEdits(x_t.sequence(b), edits));
  }
  return result;
}

}  // namespace jumpflow
