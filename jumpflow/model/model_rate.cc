// @brief TransformerRateModel and checkpoint loading (see model_rate.h).
#include "jumpflow/model/model_rate.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <span>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "jumpflow/status_macros.h"
#include "kernels/philox.h"
#include "oneapi/tbb/blocked_range.h"
#include "oneapi/tbb/parallel_for.h"

namespace jumpflow {
namespace {

using absl::InvalidArgumentError;
using absl::StrCat;

// Link applies a RateLink to a raw output (exp clamped like the loss kernel).
double Link(RateLink link, float z) {
  if (link == RateLink::kExp) return std::exp(std::min(static_cast<double>(z), 80.0));
  const double x = z;
  return x > 0.0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

// GapInsertRate is the insertion total of the gap row with outputs z at
// insertion scale c_ins = OutputHeads::Scale(insert_scale, t).
double GapInsertRate(const OutputHeads& heads, const HeadLayout& layout, const float* z,
                     double c_ins) {
  const double c_gap =
      heads.insert_gate ? OutputHeads::GatedScale(c_ins, z[layout.insert_gate], nullptr) : c_ins;
  return c_gap * Link(heads.rate_link, z[layout.insert_rate]);
}

double Sigmoid(float z) {
  const double x = z;
  return x >= 0.0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x));
}

// SoftmaxUserTokens writes softmax(z[0..v)) to out[0..v) and zeroes the
// special ids.
void SoftmaxUserTokens(const float* z, int64_t v, double* out) {
  float zmax = z[0];
  for (int64_t j = 1; j < v; ++j) zmax = std::max(zmax, z[j]);
  double sum = 0.0;
  for (int64_t j = 0; j < v; ++j) {
    out[j] = std::exp(static_cast<double>(z[j]) - zmax);
    sum += out[j];
  }
  const double inv = 1.0 / sum;
  for (int64_t j = 0; j < v; ++j) out[j] = j < Vocabulary::kNumSpecials ? 0.0 : out[j] * inv;
}

absl::StatusOr<std::string> Setting(const std::map<std::string, std::string>& settings,
                                    const std::string& key) {
  auto it = settings.find(key);
  if (it == settings.end()) {
    return InvalidArgumentError(StrCat("checkpoint setting '", key, "' is missing"));
  }
  return it->second;
}

std::string SettingOr(const std::map<std::string, std::string>& settings, const std::string& key,
                      const std::string& fallback) {
  auto it = settings.find(key);
  return it == settings.end() || it->second.empty() ? fallback : it->second;
}

absl::StatusOr<double> SettingDouble(const std::map<std::string, std::string>& settings,
                                     const std::string& key, double fallback) {
  auto it = settings.find(key);
  if (it == settings.end()) return fallback;
  double v = 0.0;
  if (!absl::SimpleAtod(it->second, &v) || !std::isfinite(v)) {
    return InvalidArgumentError(
        StrCat("checkpoint setting '", key, "' is not a number: '", it->second, "'"));
  }
  return v;
}

absl::StatusOr<int64_t> SettingInt(const std::map<std::string, std::string>& settings,
                                   const std::string& key, int64_t fallback) {
  auto it = settings.find(key);
  if (it == settings.end()) return fallback;
  int64_t v = 0;
  if (!absl::SimpleAtoi(it->second, &v)) {
    return InvalidArgumentError(
        StrCat("checkpoint setting '", key, "' is not an integer: '", it->second, "'"));
  }
  return v;
}

// DrawLength draws a length from cumulative histogram counts.
int64_t DrawLength(const std::vector<int64_t>& cumulative, PhiloxStream& rng) {
  const int64_t total = cumulative.back();
  const uint64_t u = static_cast<uint64_t>(rng.Uniform() * static_cast<double>(total));
  return std::upper_bound(cumulative.begin(), cumulative.end(), static_cast<int64_t>(u)) -
         cumulative.begin();
}

}  // namespace

absl::StatusOr<RateLink> ParseRateLink(absl::string_view name) {
  if (name == "exp") return RateLink::kExp;
  if (name == "softplus") return RateLink::kSoftplus;
  return InvalidArgumentError(StrCat("unknown rate link '", name, "' (exp or softplus)"));
}

std::string RateLinkName(RateLink link) { return link == RateLink::kExp ? "exp" : "softplus"; }

double OutputHeads::Scale(const std::shared_ptr<const Scheduler>& scale, double t) {
  return scale == nullptr ? 1.0 : std::max(scale->Survival(t), kMinRateScale);
}

double OutputHeads::GatedScale(double c, double z_gate, double* dlogc_dgate) {
  const double g = 1.0 / (1.0 + std::exp(-z_gate));
  const double log_c = std::log(c);
  if (dlogc_dgate != nullptr) *dlogc_dgate = -log_c * g * (1.0 - g);
  return std::exp((1.0 - g) * log_c);
}

absl::StatusOr<OutputHeads> MakeOutputHeads(const HeadOptions& o) {
  OutputHeads h;
  h.rate_link = o.rate_link;
  if (o.process == "dfm-mask" || o.process == "dfm-uniform") {
    h.process = ProcessKind::kDfm;
    h.frozen_unmasked = o.process == "dfm-mask";
  } else if (o.process == "edit") {
    h.process = ProcessKind::kEdit;
    h.insertion_only = o.insertion_only;
    if (o.survival_scale) {
      h.insert_scale = o.insert;
      h.delete_scale = o.del;
      h.substitute_scale = o.substitute;
    }
  } else if (o.process == "branching") {
    h.process = ProcessKind::kBranching;
    h.frozen_unmasked = o.mask_roots;
    if (o.survival_scale) {
      h.delete_scale = o.del;
      if (!o.mask_roots) h.split_scale = o.split;
    }
  } else {
    return InvalidArgumentError(StrCat("unknown process '", o.process, "'"));
  }
  if (o.insert_gate) {
    if (h.process != ProcessKind::kEdit || h.insert_scale == nullptr ||
        h.rate_link != RateLink::kExp) {
      return InvalidArgumentError(
          "the insertion gate needs the edit process, survival rate scaling and the exp rate "
          "link");
    }
    h.insert_gate = true;
  }
  return h;
}

Parametrization OutputHeads::RateSoftmax() const {
  return rate_link == RateLink::kExp ? Parametrization::kLogRateSoftmax
                                     : Parametrization::kSoftplusRateSoftmax;
}

Parametrization OutputHeads::ScalarRate() const {
  return rate_link == RateLink::kExp ? Parametrization::kExp : Parametrization::kSoftplus;
}

TransformerRateModel::TransformerRateModel(Transformer model, OutputHeads heads,
                                           double bound_factor)
    : model_(std::move(model)), heads_(heads), bound_factor_(bound_factor) {}

TransformerRateModel::~TransformerRateModel() = default;

absl::StatusOr<std::unique_ptr<TransformerRateModel>> TransformerRateModel::Create(
    Transformer model, OutputHeads heads, double bound_factor) {
  if (heads.process != model.config().process) {
    return InvalidArgumentError(StrCat("output heads are for process ", ProcessName(heads.process),
                                       " but the model has ", ProcessName(model.config().process),
                                       " heads"));
  }
  if (heads.insert_gate != model.config().insert_gate) {
    return InvalidArgumentError(StrCat("output heads ", heads.insert_gate ? "use" : "do not use",
                                       " the insertion gate but the model ",
                                       model.config().insert_gate ? "has" : "does not have",
                                       " its column"));
  }
  if (!(std::isfinite(bound_factor) && bound_factor >= 1.0)) {
    return InvalidArgumentError(StrCat("bound factor must be finite and >= 1, got ", bound_factor));
  }
  return std::unique_ptr<TransformerRateModel>(
      new TransformerRateModel(std::move(model), heads, bound_factor));
}

std::string TransformerRateModel::Name() const {
  const TransformerConfig& c = model_.config();
  return StrCat("transformer(", ProcessName(c.process), ", dim ", c.dim, ", layers ", c.layers,
                ", ", model_.NumParameters(), " parameters)");
}

absl::Status TransformerRateModel::ForwardChecked(const SequenceBatch& batch) {
  JUMPFLOW_RETURN_IF_ERROR(
      model_.Forward(batch, &workspace_, &outputs_, {}, Transformer::ForwardMode::kInference));
  const int64_t tc = outputs_.token_columns, gc = outputs_.gap_columns;
  for (size_t k = 0; k < outputs_.token_out.size(); ++k) {
    if (!std::isfinite(outputs_.token_out[k])) {
      return InvalidArgumentError(StrCat("model output of token row ", k / tc, " is not finite"));
    }
  }
  for (size_t k = 0; k < outputs_.gap_out.size(); ++k) {
    if (!std::isfinite(outputs_.gap_out[k])) {
      return InvalidArgumentError(StrCat("model output of gap row ", k / gc, " is not finite"));
    }
  }
  return absl::OkStatus();
}

absl::Status TransformerRateModel::EvaluateSoftmaxLogits(const SequenceBatch& batch,
                                                         SoftmaxLogits* out) {
  if (!ProvidesSoftmaxLogits()) return RateModel::EvaluateSoftmaxLogits(batch, out);
  JUMPFLOW_RETURN_IF_ERROR(ForwardChecked(batch));
  const int64_t v = model_.config().vocab_size;
  out->first_token = Vocabulary::kNumSpecials;
  if (heads_.process == ProcessKind::kEdit) {
    // Gap rows: the insertion logits and totals Evaluate turns into
    // insert_dist and insert_rate (a causal model inserts at the last gap
    // only).
    const HeadLayout& layout = model_.layout();
    const int64_t gc = outputs_.gap_columns, ng = batch.num_tokens() + batch.num_sequences();
    const std::span<const int64_t> offsets = batch.offsets();
    out->logits.resize(static_cast<size_t>(ng * v));
    out->row_scales.resize(static_cast<size_t>(ng));
    for (int64_t b = 0; b < batch.num_sequences(); ++b) {
      const double c_ins = OutputHeads::Scale(heads_.insert_scale, batch.time(b));
      const int64_t last = offsets[b + 1] + b;
      for (int64_t g = offsets[b] + b; g <= last; ++g) {
        const float* z = outputs_.gap_out.data() + g * gc;
        std::memcpy(out->logits.data() + g * v, z + layout.insert_logits,
                    static_cast<size_t>(v) * sizeof(float));
        out->row_scales[static_cast<size_t>(g)] =
            model_.config().causal && g < last
                ? 0.0f
                : static_cast<float>(GapInsertRate(heads_, layout, z, c_ins));
      }
    }
    return absl::OkStatus();
  }
  const int64_t tc = outputs_.token_columns;
  const int64_t first = model_.layout().token_logits, nt = batch.num_tokens();
  out->logits.resize(static_cast<size_t>(nt * v));
  out->row_scales.resize(static_cast<size_t>(nt));
  for (int64_t r = 0; r < nt; ++r) {
    std::memcpy(out->logits.data() + r * v, outputs_.token_out.data() + r * tc + first,
                static_cast<size_t>(v) * sizeof(float));
    out->row_scales[static_cast<size_t>(r)] =
        Frozen(batch.tokens()[static_cast<size_t>(r)]) ? 0.0f : 1.0f;
  }
  return absl::OkStatus();
}

absl::Status TransformerRateModel::Evaluate(const SequenceBatch& batch, RateOutputs* out) {
  JUMPFLOW_RETURN_IF_ERROR(ForwardChecked(batch));
  const HeadLayout& layout = model_.layout();
  const int64_t v = model_.config().vocab_size;
  const int64_t tc = outputs_.token_columns, gc = outputs_.gap_columns;
  const OutputHeads& heads = heads_;
  // A causal model is a left-to-right insertion model: only the last gap of
  // each sequence inserts (jumpflow/processes/edit_flow.h, all prefixes).
  const bool last_gap_only = model_.config().causal;
  const float* tok = outputs_.token_out.data();
  const float* gap = outputs_.gap_out.data();
  const std::span<const int64_t> offsets = batch.offsets();
  tbb::parallel_for(
      tbb::blocked_range<int64_t>(0, batch.num_sequences(), 16),
      [&](const tbb::blocked_range<int64_t>& range) {
        for (int64_t b = range.begin(); b < range.end(); ++b) {
          const double t = batch.time(b);
          const double c_ins = OutputHeads::Scale(heads.insert_scale, t);
          const double c_del = OutputHeads::Scale(heads.delete_scale, t);
          const double c_sub = OutputHeads::Scale(heads.substitute_scale, t);
          const double c_split = OutputHeads::Scale(heads.split_scale, t);
          for (int64_t r = offsets[b]; r < offsets[b + 1]; ++r) {
            const float* z = tok + r * tc;
            double* dist = out->token_dist.data() + r * v;
            const size_t ur = static_cast<size_t>(r);
            switch (heads.process) {
              case ProcessKind::kDfm:
                if (Frozen(batch.tokens()[ur])) {
                  out->token_rate[ur] = 0.0;
                  std::fill(dist, dist + v, 0.0);
                  break;
                }
                out->token_rate[ur] = 1.0;
                SoftmaxUserTokens(z + layout.token_logits, v, dist);
                break;
              case ProcessKind::kEdit:
                if (heads.insertion_only) {
                  out->token_rate[ur] = 0.0;
                  out->delete_rate[ur] = 0.0;
                  std::fill(dist, dist + v, 0.0);
                } else {
                  out->token_rate[ur] = c_sub * Link(heads.rate_link, z[layout.substitute_rate]);
                  out->delete_rate[ur] = c_del * Sigmoid(z[layout.delete_rate]);
                  SoftmaxUserTokens(z + layout.token_logits, v, dist);
                }
                break;
              case ProcessKind::kBranching:
                out->split_rate[ur] = c_split * Link(heads.rate_link, z[layout.split_rate]);
                out->delete_rate[ur] = c_del * Sigmoid(z[layout.delete_logit]);
                if (Frozen(batch.tokens()[ur])) {
                  out->split_rate[ur] = 0.0;
                  out->token_rate[ur] = 0.0;
                  std::fill(dist, dist + v, 0.0);
                  break;
                }
                out->token_rate[ur] = 1.0;
                SoftmaxUserTokens(z + layout.token_logits, v, dist);
                break;
            }
          }
          if (heads.process != ProcessKind::kEdit) continue;
          for (int64_t g = offsets[b] + b; g <= offsets[b + 1] + b; ++g) {
            if (last_gap_only && g < offsets[b + 1] + b) {
              out->insert_rate[static_cast<size_t>(g)] = 0.0;
              std::fill_n(out->insert_dist.data() + g * v, v, 0.0);
              continue;
            }
            const float* z = gap + g * gc;
            out->insert_rate[static_cast<size_t>(g)] = GapInsertRate(heads, layout, z, c_ins);
            SoftmaxUserTokens(z + layout.insert_logits, v, out->insert_dist.data() + g * v);
          }
        }
      });
  return absl::OkStatus();
}

KindSchedulers TrainedModel::schedulers() const {
  KindSchedulers k;
  k.token = model->process() == ProcessKind::kEdit ? substitute_scheduler.get() : scheduler.get();
  k.insert = insert_scheduler.get();
  k.del = delete_scheduler.get();
  k.split = split_scheduler.get();
  return k;
}

bool TrainedModel::needs_start_sequences() const {
  return process_name == "edit" && SettingOr(settings, "edit_source", "empty") == "pairs";
}

absl::StatusOr<SequenceBatch> TrainedModel::SourceBatch(int64_t num, uint64_t seed) const {
  if (num < 0)
    return InvalidArgumentError(StrCat("number of start states must be >= 0, got ", num));
  if (needs_start_sequences()) {
    return absl::FailedPreconditionError(
        "this Edit Flow was trained on (x0, x1) pairs: it edits given sequences, so pass the "
        "start sequences (StartFromText / --from) instead of drawing a source");
  }
  const int32_t v = vocab.size();
  const uint32_t num_user = static_cast<uint32_t>(v - Vocabulary::kNumSpecials);
  std::vector<int64_t> cumulative;
  {
    JUMPFLOW_ASSIGN_OR_RETURN(std::vector<int64_t> hist,
                              ParseLengthHistogram(SettingOr(settings, "length_histogram", "")));
    int64_t run = 0;
    for (int64_t c : hist) cumulative.push_back(run += c);
  }
  const bool need_lengths = process_name != "edit";
  if (need_lengths && (cumulative.empty() || cumulative.back() <= 0)) {
    return InvalidArgumentError("checkpoint setting 'length_histogram' is empty");
  }
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t noise_min, SettingInt(settings, "noise_min_length", 0));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t noise_max, SettingInt(settings, "noise_max_length", 0));
  JUMPFLOW_ASSIGN_OR_RETURN(const double coalescence,
                            SettingDouble(settings, "branching_coalescence", 1.0));
  const std::string edit_source = SettingOr(settings, "edit_source", "empty");
  const bool uniform_root = SettingOr(settings, "branching_root", "mask") == "uniform";

  std::vector<Token> tokens;
  std::vector<int64_t> offsets{0};
  auto user_token = [&](PhiloxStream& rng) {
    return static_cast<Token>(Vocabulary::kNumSpecials + rng.UniformInt(num_user));
  };
  for (int64_t b = 0; b < num; ++b) {
    PhiloxStream rng(seed, static_cast<uint32_t>(b), kPurposeSource);
    if (process_name == "dfm-mask" || process_name == "dfm-uniform") {
      const int64_t n = DrawLength(cumulative, rng);
      for (int64_t i = 0; i < n; ++i) {
        tokens.push_back(process_name == "dfm-mask" ? Vocabulary::kMask : user_token(rng));
      }
    } else if (process_name == "edit") {
      if (edit_source == "noise") {
        const int64_t n =
            noise_min +
            static_cast<int64_t>(rng.UniformInt(static_cast<uint32_t>(noise_max - noise_min + 1)));
        for (int64_t i = 0; i < n; ++i) tokens.push_back(user_token(rng));
      }
    } else {  // branching
      int64_t roots = 1;
      if (coalescence < 1.0) {
        const int64_t n = DrawLength(cumulative, rng);
        for (int64_t i = 1; i < n; ++i) roots += rng.Uniform() >= coalescence;
      }
      for (int64_t i = 0; i < roots; ++i) {
        tokens.push_back(uniform_root ? user_token(rng) : Vocabulary::kMask);
      }
    }
    offsets.push_back(static_cast<int64_t>(tokens.size()));
  }
  return SequenceBatch::FromParts(std::move(tokens), std::move(offsets),
                                  std::vector<double>(static_cast<size_t>(num), 0.0), v);
}

absl::StatusOr<SequenceBatch> TrainedModel::StartFromText(
    const std::vector<std::string>& texts) const {
  std::vector<std::vector<Token>> seqs;
  for (size_t i = 0; i < texts.size(); ++i) {
    absl::StatusOr<std::vector<Token>> ids = vocab.Encode(texts[i]);
    if (!ids.ok()) {
      return InvalidArgumentError(
          StrCat("start text ", i, " ", QuoteText(texts[i]), ": ", ids.status().message()));
    }
    if (static_cast<int64_t>(ids->size()) > max_length()) {
      return InvalidArgumentError(StrCat("start text ", i, " ", QuoteText(texts[i]), " has ",
                                         ids->size(), " symbols; the model accepts at most ",
                                         max_length()));
    }
    seqs.push_back(*std::move(ids));
  }
  return SequenceBatch::FromVectors(seqs, vocab.size());
}

absl::StatusOr<TrainedModel> TrainedModelFromCheckpoint(const Checkpoint& checkpoint,
                                                        double bound_factor) {
  JUMPFLOW_RETURN_IF_ERROR(ValidateCheckpoint(checkpoint));
  const auto& s = checkpoint.settings;
  TrainedModel tm;
  tm.vocab = checkpoint.vocab;
  tm.settings = s;
  JUMPFLOW_ASSIGN_OR_RETURN(tm.process_name, Setting(s, "process"));
  ProcessKind kind;
  if (tm.process_name == "dfm-mask" || tm.process_name == "dfm-uniform") {
    kind = ProcessKind::kDfm;
  } else if (tm.process_name == "edit") {
    kind = ProcessKind::kEdit;
  } else if (tm.process_name == "branching") {
    kind = ProcessKind::kBranching;
  } else {
    return InvalidArgumentError(
        StrCat("checkpoint setting 'process' is '", tm.process_name, "' (not a trainer process)"));
  }
  if (kind != checkpoint.model_config.process) {
    return InvalidArgumentError(StrCat("checkpoint process '", tm.process_name,
                                       "' does not match the model's ",
                                       ProcessName(checkpoint.model_config.process), " heads"));
  }
  HeadOptions ho;
  ho.process = tm.process_name;
  JUMPFLOW_ASSIGN_OR_RETURN(ho.rate_link, ParseRateLink(SettingOr(s, "rate_link", "exp")));
  const std::string edit_source = SettingOr(s, "edit_source", "empty");
  if (edit_source != "empty" && edit_source != "noise" && edit_source != "pairs") {
    return InvalidArgumentError(StrCat("checkpoint setting 'edit_source' is '", edit_source, "'"));
  }
  ho.insertion_only = edit_source == "empty";
  ho.mask_roots = SettingOr(s, "branching_root", "mask") == "mask";

  JUMPFLOW_ASSIGN_OR_RETURN(const std::string main_spec, Setting(s, "scheduler"));
  auto make = [&](const std::string& key) -> absl::StatusOr<std::shared_ptr<const Scheduler>> {
    const std::string spec = SettingOr(s, key, main_spec);
    absl::StatusOr<std::unique_ptr<Scheduler>> sched = MakeScheduler(spec);
    if (!sched.ok()) {
      return InvalidArgumentError(
          StrCat("checkpoint setting '", key, "': ", sched.status().message()));
    }
    return std::shared_ptr<const Scheduler>(*std::move(sched));
  };
  JUMPFLOW_ASSIGN_OR_RETURN(tm.scheduler, make("scheduler"));
  JUMPFLOW_ASSIGN_OR_RETURN(tm.insert_scheduler, make("insert_scheduler"));
  JUMPFLOW_ASSIGN_OR_RETURN(tm.substitute_scheduler, make("substitute_scheduler"));
  JUMPFLOW_ASSIGN_OR_RETURN(tm.split_scheduler, make("split_scheduler"));
  JUMPFLOW_ASSIGN_OR_RETURN(
      tm.delete_scheduler,
      make(kind == ProcessKind::kBranching ? "deletion_scheduler" : "delete_scheduler"));
  const std::string rate_scale = SettingOr(s, "rate_scale", "none");
  if (rate_scale != "survival" && rate_scale != "none") {
    return InvalidArgumentError(StrCat("checkpoint setting 'rate_scale' is '", rate_scale, "'"));
  }
  ho.survival_scale = rate_scale == "survival";
  ho.insert_gate = checkpoint.model_config.insert_gate;
  ho.insert = tm.insert_scheduler;
  ho.del = tm.delete_scheduler;
  ho.substitute = tm.substitute_scheduler;
  ho.split = tm.split_scheduler;
  JUMPFLOW_ASSIGN_OR_RETURN(OutputHeads heads, MakeOutputHeads(ho));
  if (!(bound_factor > 0.0)) {
    JUMPFLOW_ASSIGN_OR_RETURN(
        bound_factor, SettingDouble(s, "bound_factor", TransformerRateModel::kDefaultBoundFactor));
  }
  JUMPFLOW_ASSIGN_OR_RETURN(Transformer model, Transformer::FromParameters(checkpoint.model_config,
                                                                           checkpoint.parameters));
  JUMPFLOW_ASSIGN_OR_RETURN(tm.model,
                            TransformerRateModel::Create(std::move(model), heads, bound_factor));
  return tm;
}

absl::StatusOr<TrainedModel> LoadTrainedModel(const std::string& path, double bound_factor) {
  JUMPFLOW_ASSIGN_OR_RETURN(Checkpoint checkpoint, LoadCheckpoint(path));
  absl::StatusOr<TrainedModel> tm = TrainedModelFromCheckpoint(checkpoint, bound_factor);
  if (!tm.ok()) {
    return absl::Status(tm.status().code(), StrCat(path, ": ", tm.status().message()));
  }
  return tm;
}

absl::StatusOr<std::unique_ptr<RateModel>> LoadModelFromCheckpoint(const std::string& path) {
  JUMPFLOW_ASSIGN_OR_RETURN(TrainedModel tm, LoadTrainedModel(path));
  return std::unique_ptr<RateModel>(std::move(tm.model));
}

absl::StatusOr<std::vector<int64_t>> ParseLengthHistogram(absl::string_view text) {
  std::vector<int64_t> counts;
  if (text.empty()) return counts;
  for (absl::string_view entry : absl::StrSplit(text, ',')) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(entry, ':');
    int64_t len = 0, count = 0;
    if (!absl::SimpleAtoi(kv.first, &len) || !absl::SimpleAtoi(kv.second, &count) || len < 0 ||
        count < 0 || len > (1 << 20)) {
      return InvalidArgumentError(StrCat("bad length histogram entry '", entry, "'"));
    }
    if (static_cast<int64_t>(counts.size()) <= len) counts.resize(static_cast<size_t>(len) + 1, 0);
    counts[static_cast<size_t>(len)] += count;
  }
  return counts;
}

std::string FormatLengthHistogram(const std::vector<int64_t>& counts) {
  std::string out;
  for (size_t len = 0; len < counts.size(); ++len) {
    if (counts[len] == 0) continue;
    absl::StrAppend(&out, out.empty() ? "" : ",", len, ":", counts[len]);
  }
  return out;
}

}  // namespace jumpflow
