// @brief RateOutputs, the callback model and the checkpoint hook.
#include "jumpflow/rate_model.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"

namespace jumpflow {
namespace {

class CallbackRateModel final : public RateModel {
 public:
  CallbackRateModel(CallbackRateModelOptions options, RateCallback callback)
      : options_(std::move(options)), callback_(std::move(callback)) {}
  ProcessKind process() const override { return options_.process; }
  int32_t vocab_size() const override { return options_.vocab_size; }
  std::string Name() const override { return options_.name; }
  double BoundFactor() const override { return options_.bound_factor; }
  bool TimeDependent() const override { return options_.time_dependent; }
  absl::Status Evaluate(const SequenceBatch& batch, RateOutputs* out) override {
    return callback_(batch, out);
  }

 private:
  CallbackRateModelOptions options_;
  RateCallback callback_;
};

}  // namespace

absl::Status RateModel::EvaluateSoftmaxLogits(const SequenceBatch& /*batch*/,
                                              SoftmaxLogits* /*out*/) {
  return absl::UnimplementedError(
      absl::StrCat("model '", Name(), "' does not provide softmax logits"));
}

void RateOutputs::Reset(const SequenceBatch& batch, ProcessKind process_kind, int32_t v) {
  process = process_kind;
  vocab_size = v;
  num_sequences = batch.num_sequences();
  num_tokens = batch.num_tokens();
  num_gaps = batch.num_gaps();
  const size_t nt = static_cast<size_t>(num_tokens);
  const size_t ng = static_cast<size_t>(num_gaps);
  const size_t vv = static_cast<size_t>(v);
  token_rate.assign(nt, 1.0);
  token_dist.assign(nt * vv, 0.0);
  const bool edit = process == ProcessKind::kEdit;
  const bool branching = process == ProcessKind::kBranching;
  insert_rate.assign(edit ? ng : 0, 1.0);
  insert_dist.assign(edit ? ng * vv : 0, 0.0);
  delete_rate.assign(edit || branching ? nt : 0, 0.0);
  split_rate.assign(branching ? nt : 0, 0.0);
  fallback.assign(static_cast<size_t>(num_sequences), 0);
}

absl::StatusOr<std::unique_ptr<RateModel>> MakeCallbackRateModel(
    const CallbackRateModelOptions& options, RateCallback callback) {
  if (options.vocab_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("callback model: vocab_size must be >= 1, got ", options.vocab_size));
  }
  if (!(std::isfinite(options.bound_factor) && options.bound_factor >= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "callback model: bound_factor must be finite and >= 1, got ", options.bound_factor));
  }
  if (!callback) return absl::InvalidArgumentError("callback model: the callback is empty");
  return std::unique_ptr<RateModel>(new CallbackRateModel(options, std::move(callback)));
}

}  // namespace jumpflow
