// @brief `jumpflow train`: fit the reference transformer to a jump process
// (DFM, Edit Flows, Branching Flows) on a text file or (x0, x1) pairs, with a
// progress bar, a CSV log and resumable checkpoints (jumpflow/trainer.h).
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "jumpflow/cli/commands.h"
#include "jumpflow/cli/flags.h"
#include "jumpflow/model/checkpoint.h"
#include "jumpflow/status_macros.h"
#include "jumpflow/trainer.h"
#include "sequences/file_util.h"

namespace jumpflow::cli {
namespace {

using absl::StrCat;

std::string Duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return absl::StrFormat("%dh%02dm", s / 3600, (s / 60) % 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

std::string Rate(double per_second) {
  if (per_second >= 1e6) return absl::StrFormat("%.2fM", per_second / 1e6);
  if (per_second >= 1e3) return absl::StrFormat("%.1fk", per_second / 1e3);
  return absl::StrFormat("%.0f", per_second);
}

// Reporter draws a progress bar on a terminal and plain lines otherwise.
class Reporter {
 public:
  Reporter(bool tty, int64_t start_step, int64_t total_steps, bool quiet)
      : tty_(tty), start_step_(start_step), quiet_(quiet) {
    line_every_ = std::max<int64_t>(1, (total_steps - start_step) / 20);
  }

  void Update(const TrainProgress& p) {
    if (quiet_) return;
    const int64_t done = p.step.step - start_step_;
    const int64_t todo = p.total_steps - start_step_;
    const double eta = done > 0 ? p.elapsed_seconds * static_cast<double>(todo - done) / done : NAN;
    const std::string eval =
        std::isfinite(p.eval_loss) ? absl::StrFormat("  eval %.4f", p.eval_loss) : "";
    const bool last = p.step.step == p.total_steps;
    if (tty_) {
      const double now = p.elapsed_seconds;
      if (!last && now - last_draw_ < 0.1) return;
      last_draw_ = now;
      constexpr int kWidth = 24;
      const int filled = static_cast<int>(kWidth * done / std::max<int64_t>(1, todo));
      std::fprintf(stderr, "\r[%s%s] %lld/%lld  loss %.4f%s  %s tok/s  ETA %s   ",
                   std::string(filled, '#').c_str(), std::string(kWidth - filled, '.').c_str(),
                   static_cast<long long>(p.step.step), static_cast<long long>(p.total_steps),
                   p.recent_loss, eval.c_str(), Rate(p.tokens_per_second).c_str(),
                   Duration(eta).c_str());
      if (last) std::fprintf(stderr, "\n");
      std::fflush(stderr);
      return;
    }
    if (last || p.evaluated || done % line_every_ == 0) {
      std::fprintf(stderr, "step %lld/%lld  loss %.4f%s  lr %.3g  %s tok/s  elapsed %s  ETA %s\n",
                   static_cast<long long>(p.step.step), static_cast<long long>(p.total_steps),
                   p.recent_loss, eval.c_str(), p.step.learning_rate,
                   Rate(p.tokens_per_second).c_str(), Duration(p.elapsed_seconds).c_str(),
                   Duration(eta).c_str());
    }
  }

 private:
  bool tty_;
  int64_t start_step_;
  bool quiet_;
  int64_t line_every_ = 1;
  double last_draw_ = -1.0;
};

// The flags that may be given together with --resume (everything else comes
// from the checkpoint).
const std::set<std::string>& ResumeFlags() {
  static const std::set<std::string> flags = {
      "data",      "pairs", "chars", "vocab",   "max-length", "out",
      "resume",    "log",   "steps", "threads", "eval-every", "checkpoint-every",
      "log-every", "quiet", "device"};
  return flags;
}

const std::vector<std::string>& AllFlags() {
  static const std::vector<std::string> flags = {"process",
                                                 "data",
                                                 "pairs",
                                                 "chars",
                                                 "vocab",
                                                 "max-length",
                                                 "out",
                                                 "resume",
                                                 "log",
                                                 "steps",
                                                 "batch",
                                                 "dim",
                                                 "layers",
                                                 "heads",
                                                 "mlp-ratio",
                                                 "time-features",
                                                 "lr",
                                                 "warmup",
                                                 "lr-schedule",
                                                 "min-lr-fraction",
                                                 "clip",
                                                 "weight-decay",
                                                 "eval-fraction",
                                                 "eval-every",
                                                 "eval-sequences",
                                                 "checkpoint-every",
                                                 "log-every",
                                                 "seed",
                                                 "threads",
                                                 "device",
                                                 "scheduler",
                                                 "insert-scheduler",
                                                 "delete-scheduler",
                                                 "substitute-scheduler",
                                                 "split-scheduler",
                                                 "deletion-scheduler",
                                                 "time-dist",
                                                 "time-weight",
                                                 "rate-link",
                                                 "rate-scale",
                                                 "insert-gate",
                                                 "source",
                                                 "insert-order",
                                                 "gap-times",
                                                 "noise-min",
                                                 "noise-max",
                                                 "alignment",
                                                 "branch-delete",
                                                 "coalescence",
                                                 "branch-root",
                                                 "bound-factor",
                                                 "quiet"};
  return flags;
}

struct Data {
  Dataset x1;
  std::vector<std::vector<Token>> x0;
  int64_t dropped_length = 0;
  int64_t dropped_unknown = 0;
};

// LoadData reads --data (one sequence per line) or --pairs (x0 TAB x1) with
// `vocab` (from the checkpoint on --resume) or the --chars / --vocab flags.
absl::StatusOr<Data> LoadData(const FlagSet& flags, const Vocabulary* vocab) {
  const bool has_data = !flags.Get("data").empty(), has_pairs = !flags.Get("pairs").empty();
  if (has_data == has_pairs) {
    return absl::InvalidArgumentError("give exactly one of --data FILE and --pairs FILE");
  }
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t max_length, flags.GetInt("max-length", 0));
  DatasetOptions options;
  if (max_length > 0) options.max_length = max_length;
  options.skip_unknown = !flags.Get("chars").empty();
  Data out;
  if (has_data) {
    if (vocab != nullptr) {
      JUMPFLOW_ASSIGN_OR_RETURN(out.x1,
                                vocab->kind() == Vocabulary::Kind::kToken
                                    ? Dataset::LoadTokens(flags.Get("data"), *vocab, options)
                                    : Dataset::LoadLines(flags.Get("data"), *vocab, options));
    } else {
      JUMPFLOW_ASSIGN_OR_RETURN(
          out.x1, LoadTextData(flags.Get("data"), flags.Get("chars"), flags.Get("vocab"), options));
    }
    out.dropped_length = out.x1.dropped_by_length();
    out.dropped_unknown = out.x1.dropped_unknown();
    return out;
  }
  const std::string path = flags.Get("pairs");
  Vocabulary v = *Vocabulary::FromCharacters("a");
  if (vocab != nullptr) {
    v = *vocab;
  } else if (!flags.Get("vocab").empty()) {
    JUMPFLOW_ASSIGN_OR_RETURN(v, Vocabulary::FromTokenFile(flags.Get("vocab")));
  } else if (!flags.Get("chars").empty()) {
    JUMPFLOW_ASSIGN_OR_RETURN(v, Vocabulary::FromCharacters(flags.Get("chars")));
  } else {
    JUMPFLOW_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
    JUMPFLOW_ASSIGN_OR_RETURN(v,
                              Vocabulary::FromCharacters(absl::StrReplaceAll(text, {{"\t", ""}})));
  }
  options.min_length = 0;
  JUMPFLOW_ASSIGN_OR_RETURN(std::vector<SequencePair> pairs, LoadPairs(path, v, options));
  std::vector<std::vector<Token>> x1;
  for (SequencePair& p : pairs) {
    if (p.x1.empty()) {
      return absl::InvalidArgumentError(StrCat(path, ": a pair has an empty target x1"));
    }
    out.x0.push_back(std::move(p.x0));
    x1.push_back(std::move(p.x1));
  }
  JUMPFLOW_ASSIGN_OR_RETURN(out.x1, Dataset::FromSequences(v, std::move(x1)));
  return out;
}

absl::Status Train(const FlagSet& flags) {
  const std::string out_path = flags.Get("out");
  if (out_path.empty()) return absl::InvalidArgumentError("--out CKPT is required");
  JUMPFLOW_RETURN_IF_ERROR(CheckWritable(out_path));
  if (!flags.Get("log").empty()) JUMPFLOW_RETURN_IF_ERROR(CheckWritable(flags.Get("log")));
  const bool resume = flags.GetBool("resume");
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t steps, flags.GetInt("steps", 1));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t threads, flags.GetInt("threads", 0));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t eval_every, flags.GetInt("eval-every", 0));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t checkpoint_every, flags.GetInt("checkpoint-every", 0));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t log_every, flags.GetInt("log-every", 1));
  const bool quiet = flags.GetBool("quiet");
  JUMPFLOW_ASSIGN_OR_RETURN(const kernels::Backend device, ParseDevice(flags.Get("device")));

  absl::StatusOr<Trainer> trainer = absl::UnknownError("unset");
  int64_t dropped_length = 0, dropped_unknown = 0;
  if (resume) {
    for (const std::string& name : AllFlags()) {
      if (flags.Was(name) && !ResumeFlags().contains(name)) {
        return absl::InvalidArgumentError(
            StrCat("--", name,
                   " cannot be combined with --resume (training settings come from "
                   "the checkpoint '",
                   out_path, "')"));
      }
    }
    JUMPFLOW_ASSIGN_OR_RETURN(Checkpoint ckpt, LoadCheckpoint(out_path));
    JUMPFLOW_ASSIGN_OR_RETURN(Data data, LoadData(flags, &ckpt.vocab));
    dropped_length = data.dropped_length;
    dropped_unknown = data.dropped_unknown;
    ResumeOverrides o;
    if (flags.Was("steps")) o.steps = steps;
    if (flags.Was("eval-every")) o.eval_every = eval_every;
    if (flags.Was("checkpoint-every")) o.checkpoint_every = checkpoint_every;
    if (flags.Was("log-every")) o.log_every = log_every;
    o.threads = static_cast<int>(threads);
    o.device = device;
    o.checkpoint_path = out_path;
    o.log_path = flags.Get("log");
    trainer = Trainer::Resume(out_path, std::move(data.x1), std::move(data.x0), o);
  } else {
    TrainerOptions o;
    JUMPFLOW_ASSIGN_OR_RETURN(o.process, ParseTrainProcess(flags.Get("process")));
    JUMPFLOW_ASSIGN_OR_RETURN(Data data, LoadData(flags, nullptr));
    dropped_length = data.dropped_length;
    dropped_unknown = data.dropped_unknown;
    o.scheduler = flags.Get("scheduler");
    o.insert_scheduler = flags.Get("insert-scheduler");
    o.delete_scheduler = flags.Get("delete-scheduler");
    o.substitute_scheduler = flags.Get("substitute-scheduler");
    o.split_scheduler = flags.Get("split-scheduler");
    o.deletion_scheduler = flags.Get("deletion-scheduler");
    o.time_distribution = flags.Get("time-dist");
    o.time_weight = flags.Get("time-weight");
    JUMPFLOW_ASSIGN_OR_RETURN(o.rate_link, ParseRateLink(flags.Get("rate-link")));
    const std::string rate_scale = flags.Get("rate-scale");
    if (rate_scale != "survival" && rate_scale != "none") {
      return absl::InvalidArgumentError(
          StrCat("--rate-scale must be survival or none, got '", rate_scale, "'"));
    }
    o.survival_scale = rate_scale == "survival";
    const std::string gate = flags.Get("insert-gate");
    if (gate != "on" && gate != "off") {
      return absl::InvalidArgumentError(
          StrCat("--insert-gate must be on or off, got '", gate, "'"));
    }
    const std::string source = flags.Get("source");
    if (source == "empty") {
      o.edit_source = EditSource::kEmpty;
    } else if (source == "noise") {
      o.edit_source = EditSource::kNoise;
    } else {
      return absl::InvalidArgumentError(
          StrCat("--source must be empty or noise, got '", source, "'"));
    }
    const std::string order = flags.Get("insert-order");
    if (order != "independent" && order != "left-to-right") {
      return absl::InvalidArgumentError(
          StrCat("--insert-order must be independent or left-to-right, got '", order, "'"));
    }
    // (The trainer rejects left-to-right outside insertion-only Edit Flows.)
    if (order == "left-to-right") o.insertion_order = InsertionOrder::kLeftToRight;
    const std::string gap_times = flags.Get("gap-times");
    if (gap_times != "auto" && gap_times != "shared" && gap_times != "per-gap") {
      return absl::InvalidArgumentError(
          StrCat("--gap-times must be auto, shared or per-gap, got '", gap_times, "'"));
    }
    o.per_gap_times = gap_times == "per-gap" ||
                      (gap_times == "auto" && o.insertion_order == InsertionOrder::kLeftToRight);
    JUMPFLOW_ASSIGN_OR_RETURN(o.noise_min_length, flags.GetInt("noise-min", 0));
    JUMPFLOW_ASSIGN_OR_RETURN(o.noise_max_length, flags.GetInt("noise-max", 0));
    const std::string alignment = flags.Get("alignment");
    if (alignment != "min-edit" && alignment != "random") {
      return absl::InvalidArgumentError(
          StrCat("--alignment must be min-edit or random, got '", alignment, "'"));
    }
    o.alignment = alignment == "random" ? EditAlignment::kRandom : EditAlignment::kMinEdit;
    JUMPFLOW_ASSIGN_OR_RETURN(o.branching_deletion_probability, flags.GetDouble("branch-delete"));
    JUMPFLOW_ASSIGN_OR_RETURN(o.branching_coalescence, flags.GetDouble("coalescence"));
    const std::string root = flags.Get("branch-root");
    if (root != "mask" && root != "uniform") {
      return absl::InvalidArgumentError(
          StrCat("--branch-root must be mask or uniform, got '", root, "'"));
    }
    o.branching_uniform_root = root == "uniform";
    JUMPFLOW_ASSIGN_OR_RETURN(const int64_t dim, flags.GetInt("dim", 1));
    JUMPFLOW_ASSIGN_OR_RETURN(const int64_t layers, flags.GetInt("layers", 1));
    JUMPFLOW_ASSIGN_OR_RETURN(const int64_t heads, flags.GetInt("heads", 1));
    JUMPFLOW_ASSIGN_OR_RETURN(const int64_t mlp_ratio, flags.GetInt("mlp-ratio", 1));
    JUMPFLOW_ASSIGN_OR_RETURN(const int64_t time_features, flags.GetInt("time-features", 2));
    if (dim > 4096 || layers > 64 || heads > 64 || mlp_ratio > 16 || time_features > 1024) {
      return absl::InvalidArgumentError(StrCat("model too large: --dim ", dim, " --layers ", layers,
                                               " --heads ", heads, " --mlp-ratio ", mlp_ratio,
                                               " --time-features ", time_features));
    }
    o.model.dim = static_cast<int32_t>(dim);
    o.model.layers = static_cast<int32_t>(layers);
    o.model.heads = static_cast<int32_t>(heads);
    o.model.mlp_ratio = static_cast<int32_t>(mlp_ratio);
    o.model.time_features = static_cast<int32_t>(time_features);
    o.model.max_length = 0;  // the longest training state
    o.model.insert_gate = gate == "on";
    JUMPFLOW_ASSIGN_OR_RETURN(o.batch_size, flags.GetInt("batch", 1));
    o.steps = steps;
    JUMPFLOW_ASSIGN_OR_RETURN(o.optimizer.learning_rate, flags.GetDouble("lr"));
    if (flags.Get("warmup") == "auto") {
      o.optimizer.warmup_steps = std::min<int64_t>(100, steps / 10);
    } else {
      JUMPFLOW_ASSIGN_OR_RETURN(o.optimizer.warmup_steps, flags.GetInt("warmup", 0));
    }
    JUMPFLOW_ASSIGN_OR_RETURN(o.optimizer.schedule, ParseLrSchedule(flags.Get("lr-schedule")));
    JUMPFLOW_ASSIGN_OR_RETURN(o.optimizer.min_learning_rate_fraction,
                              flags.GetDouble("min-lr-fraction"));
    JUMPFLOW_ASSIGN_OR_RETURN(o.optimizer.clip_norm, flags.GetDouble("clip"));
    JUMPFLOW_ASSIGN_OR_RETURN(o.optimizer.weight_decay, flags.GetDouble("weight-decay"));
    JUMPFLOW_ASSIGN_OR_RETURN(o.eval_fraction, flags.GetDouble("eval-fraction"));
    o.eval_every = eval_every;
    JUMPFLOW_ASSIGN_OR_RETURN(o.eval_sequences, flags.GetInt("eval-sequences", 1));
    o.checkpoint_every = checkpoint_every;
    o.checkpoint_path = out_path;
    o.log_path = flags.Get("log");
    o.log_every = log_every;
    JUMPFLOW_ASSIGN_OR_RETURN(const int64_t seed, flags.GetInt("seed", 0));
    o.seed = static_cast<uint64_t>(seed);
    o.threads = static_cast<int>(threads);
    o.device = device;
    JUMPFLOW_ASSIGN_OR_RETURN(o.bound_factor, flags.GetDouble("bound-factor"));
    trainer = Trainer::Create(std::move(o), std::move(data.x1), std::move(data.x0));
  }
  if (!trainer.ok()) return trainer.status();

  const TrainerOptions& o = trainer->options();
  const TransformerConfig& c = trainer->model().config();
  if (!quiet) {
    std::fprintf(
        stderr,
        "jumpflow train: %s, %lld training / %lld held-out sequences "
        "(%lld dropped by length, %lld with unknown symbols), vocabulary %d\n",
        TrainProcessName(o.process).c_str(), static_cast<long long>(trainer->train_data().size()),
        static_cast<long long>(trainer->eval_data().size()), static_cast<long long>(dropped_length),
        static_cast<long long>(dropped_unknown), c.vocab_size);
    std::fprintf(stderr,
                 "model: dim %d, %d layers, %d heads, max length %d, %lld parameters; "
                 "scheduler %s, t ~ %s, weight %s; batch %lld, %s step %lld -> %lld\n",
                 c.dim, c.layers, c.heads, c.max_length,
                 static_cast<long long>(trainer->model().NumParameters()), o.scheduler.c_str(),
                 o.time_distribution.c_str(), o.time_weight.c_str(),
                 static_cast<long long>(o.batch_size), resume ? "resuming at" : "from",
                 static_cast<long long>(trainer->step()), static_cast<long long>(o.steps));
  }
  Reporter reporter(isatty(STDERR_FILENO) != 0, trainer->step(), o.steps, quiet);
  double last_loss = NAN, last_eval = NAN, elapsed = 0.0, tps = 0.0;
  JUMPFLOW_RETURN_IF_ERROR(trainer->Train([&](const TrainProgress& p) {
    reporter.Update(p);
    last_loss = p.recent_loss;
    last_eval = p.eval_loss;
    elapsed = p.elapsed_seconds;
    tps = p.tokens_per_second;
  }));
  // No held-out sequences (a tiny data set, or --eval-fraction 0): no eval
  // loss to report, rather than a NaN.
  const std::string eval = std::isfinite(last_eval) ? absl::StrFormat("%.4f", last_eval)
                                                    : std::string("n/a (no held-out sequences)");
  std::printf(
      "trained to step %lld in %.1f s (%s tok/s); last train loss %.4f, eval loss %s; "
      "checkpoint %s\n",
      static_cast<long long>(trainer->step()), elapsed, Rate(tps).c_str(), last_loss, eval.c_str(),
      out_path.c_str());
  return absl::OkStatus();
}

}  // namespace

int RunTrain(int argc, char** argv) {
  FlagSet flags("train",
                "Train the reference transformer on a discrete jump process and write a\n"
                "checkpoint that `jumpflow sample --model CKPT` reads. Data: --data FILE (one\n"
                "sequence per line) or --pairs FILE (source TAB target per line; Edit Flows\n"
                "learn to edit source into target). Loss: Bregman divergences between the\n"
                "predicted and conditional rate multipliers, mean over sequences (see\n"
                "jumpflow/trainer.h). With --resume the settings come from the checkpoint;\n"
                "only data, --out, --log, --steps, --threads, --device and the intervals may\n"
                "be given.\n"
                "Resuming to the same --steps continues bit-identically; a larger --steps\n"
                "stretches the cosine schedule (use --lr-schedule constant to extend runs).");
  flags.Add("process", "edit", "dfm-mask | dfm-uniform | edit | branching");
  flags.Add("data", "", "training sequences, one per line");
  flags.Add("pairs", "", "instead of --data: 'x0 TAB x1' lines (Edit Flows on pairs)");
  flags.Add("chars", "",
            "character vocabulary, e.g. abcdefghijklmnopqrstuvwxyz; lines with other characters "
            "are skipped ('' = every character of the file)");
  flags.Add("vocab", "", "token vocabulary file (one symbol per line; whitespace-separated data)");
  flags.Add("max-length", "0", "drop sequences longer than this (0 = keep all)");
  flags.Add("out", "", "checkpoint path (required; written atomically)");
  flags.AddBool("resume", "continue training from the checkpoint at --out");
  flags.Add("log", "", "CSV log: step,train_loss,eval_loss,lr,tokens_per_s,seconds");
  flags.Add("steps", "1000", "training steps (total, counting resumed ones)");
  flags.Add("batch", "64", "sequences per step");
  flags.Add("dim", "64", "transformer width");
  flags.Add("layers", "2", "transformer blocks");
  flags.Add("heads", "4", "attention heads (must divide --dim)");
  flags.Add("mlp-ratio", "4", "MLP hidden width / dim");
  flags.Add("time-features", "32", "sinusoidal time features (even)");
  flags.Add("lr", "2e-3", "peak AdamW learning rate");
  flags.Add("warmup", "auto", "linear warm-up steps (auto = min(100, steps / 10))");
  flags.Add("lr-schedule", "cosine", "after warm-up: cosine (to --min-lr-fraction) or constant");
  flags.Add("min-lr-fraction", "0.1", "final learning rate / peak for the cosine schedule");
  flags.Add("clip", "1.0", "global gradient-norm clipping (<= 0: off)");
  flags.Add("weight-decay", "0.01", "AdamW decoupled weight decay on weight matrices");
  flags.Add("eval-fraction", "0.05", "held-out share of the data, in [0, 0.5]");
  flags.Add("eval-every", "200", "eval loss every N steps (0 = only at the end)");
  flags.Add("eval-sequences", "512", "held-out sequences used for the eval loss");
  flags.Add("checkpoint-every", "0", "also checkpoint every N steps (0 = only at the end)");
  flags.Add("log-every", "10", "CSV row every N steps");
  flags.Add("seed", "1", "seed of initialisation, split, batches, times and paths");
  flags.Add("threads", "0", "worker threads (0 = all cores); results do not depend on it");
  flags.Add("device", "cpu",
            "where the fused loss kernels run: cpu, or cuda (the GPU; the model stays on the CPU, "
            "its outputs go to the GPU and the gradients back every step, so it pays only for "
            "very wide heads; losses agree with cpu to ~1e-5)");
  flags.Add("scheduler", "",
            "kappa: linear | poly:N | cosine | beta:A,B ('' = poly:3 for edit, else linear)");
  flags.Add("insert-scheduler", "", "edit: insertion scheduler ('' = --scheduler)");
  flags.Add("delete-scheduler", "", "edit: deletion scheduler ('' = --scheduler)");
  flags.Add("substitute-scheduler", "", "edit: substitution scheduler ('' = --scheduler)");
  flags.Add("split-scheduler", "", "branching: split-time scheduler ('' = --scheduler)");
  flags.Add("deletion-scheduler", "", "branching: deletion scheduler ('' = --scheduler)");
  flags.Add("time-dist", "uniform",
            "t distribution: uniform | beta:A,B | logitnormal:MU,SIGMA | mix:... | tilted:W|SPEC");
  flags.Add("time-weight", "constant",
            "loss weight w(t): constant[:C] | hazard:SCHED | inverse_hazard:SCHED");
  flags.Add("rate-link", "exp", "total-rate outputs: exp (log-rate) or softplus");
  flags.Add("rate-scale", "survival",
            "edit/branching rates times 1 - kappa(t) (survival) or not (none); see "
            "jumpflow/model/model_rate.h");
  flags.Add("insert-gate", "off",
            "edit: insertion rates times S(t)^(1 - gate) with a learned per-gap gate (on) instead "
            "of S(t) (off); needs --rate-scale survival and --rate-link exp; see "
            "jumpflow/model/model_rate.h");
  flags.Add("source", "empty", "edit without --pairs: x0 empty (insertions only) or noise");
  flags.Add("insert-order", "independent",
            "edit --source empty: insertion times independent per token, or left-to-right "
            "(sorted: x_t is always a prefix of the word; the model is causal and each step "
            "trains on every prefix of its words); see jumpflow/processes/edit_flow.h");
  flags.Add("gap-times", "auto",
            "--insert-order left-to-right: one time per word (shared) or one per prefix drawn "
            "from its posterior (per-gap: same expected loss, less variance; the model takes "
            "time at its heads); auto = per-gap with left-to-right; see "
            "jumpflow/processes/edit_flow.h");
  flags.Add("noise-min", "0", "edit --source noise: shortest x0");
  flags.Add("noise-max", "0", "edit --source noise: longest x0");
  flags.Add("alignment", "min-edit", "edit: alignment of (x0, x1): min-edit or random");
  flags.Add("branch-delete", "0", "branching: probability of a to-be-deleted duplicate");
  flags.Add("coalescence", "1", "branching: merge probability per adjacent pair (1 = one root)");
  flags.Add("branch-root", "mask", "branching: root tokens mask or uniform");
  flags.Add("bound-factor", "2", "thinning bound factor recorded for exact Gillespie sampling");
  flags.AddBool("quiet", "no progress output");
  return RunMain(flags, argc, argv, 2, "jumpflow train", Train);
}

}  // namespace jumpflow::cli
