// @brief DFM mixture-path training batches (DESIGN.md section 1 "DFM").
//
// Reference for the path and its conditional rates: Gat et al., "Discrete
// Flow Matching" (2024), and facebookresearch/flow_matching
// (MixtureDiscreteProbPath.sample: x_t = where(U < kappa(t), x_1, x_0)).
#include "jumpflow/processes/dfm.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "jumpflow/processes/detail/batch_builder.h"
#include "jumpflow/processes/detail/checks.h"
#include "jumpflow/status_macros.h"

namespace jumpflow {
namespace {

struct NoScratch {};

}  // namespace

absl::StatusOr<TrainingBatch> MakeDfmBatch(const SequenceBatch& x1, const BatchTimes& times,
                                           const Scheduler& scheduler, const DfmOptions& options,
                                           uint64_t seed, const BatchWeights& weights) {
  const int32_t vocab_size = options.vocab_size;
  JUMPFLOW_RETURN_IF_ERROR(detail::CheckVocabSize(vocab_size, 0, "for DFM"));
  JUMPFLOW_RETURN_IF_ERROR(detail::CheckTokens(x1, "x1", vocab_size, /*allow_mask=*/false));
  const int64_t num_sequences = x1.num_sequences();
  switch (options.source) {
    case DfmSource::kMask:
      break;
    case DfmSource::kUniform:
      JUMPFLOW_RETURN_IF_ERROR(detail::CheckVocabSize(
          vocab_size, Vocabulary::kNumSpecials, "for a uniform source (no user tokens)"));
      break;
    case DfmSource::kCoupling: {
      if (options.x0 == nullptr) {
        return absl::InvalidArgumentError("DfmSource::kCoupling needs DfmOptions::x0");
      }
      const SequenceBatch& x0 = *options.x0;
      if (x0.num_sequences() != num_sequences) {
        return absl::InvalidArgumentError(absl::StrCat("x0 has ", x0.num_sequences(),
                                                       " sequences but x1 has ", num_sequences));
      }
      for (int64_t b = 0; b < num_sequences; ++b) {
        if (x0.length(b) != x1.length(b)) {
          return absl::InvalidArgumentError(
              absl::StrCat("DFM coupling: x0 sequence ", b, " has length ", x0.length(b),
                           " but x1 sequence ", b, " has length ", x1.length(b)));
        }
      }
      JUMPFLOW_RETURN_IF_ERROR(detail::CheckTokens(x0, "x0", vocab_size, /*allow_mask=*/true));
      break;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown DfmSource ", static_cast<int>(options.source)));
  }
  JUMPFLOW_ASSIGN_OR_RETURN(std::vector<double> t, times.Resolve(num_sequences, seed));
  JUMPFLOW_ASSIGN_OR_RETURN(std::vector<float> w, weights.Resolve(t));

  const uint32_t num_user = static_cast<uint32_t>(vocab_size - Vocabulary::kNumSpecials);
  auto emit = [&](int64_t b, detail::ChunkArena& out, NoScratch&) -> absl::Status {
    const auto target = x1.sequence(b);
    const double kappa = scheduler.Kappa(t[b]);
    PhiloxStream coins(seed, static_cast<uint32_t>(b), kPurposePath);
    PhiloxStream noise(seed, static_cast<uint32_t>(b), kPurposeSource);
    for (size_t i = 0; i < target.size(); ++i) {
      const Token y = target[i];
      Token x;
      if (detail::Uniform32(coins) < kappa) {
        x = y;
      } else if (options.source == DfmSource::kMask) {
        x = Vocabulary::kMask;
      } else if (options.source == DfmSource::kUniform) {
        x = Vocabulary::kNumSpecials + static_cast<Token>(noise.UniformInt(num_user));
      } else {
        x = options.x0->sequence(b)[i];
      }
      out.BeginTokenRow(x);
      if (x != y) out.AddTokenEntry(y, 1.0f);
    }
    return absl::OkStatus();
  };
  JUMPFLOW_ASSIGN_OR_RETURN(TrainingBatch tb,
                            detail::BuildBatch<NoScratch>(num_sequences, {.token = true}, emit));
  tb.process = ProcessKind::kDfm;
  for (int64_t b = 0; b < num_sequences; ++b) tb.x_t.set_time(b, t[b]);
  tb.weights = std::move(w);
  return tb;
}

}  // namespace jumpflow
