// @brief Reference transformer: forward pass, hand-written backward pass,
// parameter layout and initialisation (see transformer.h).
#include "jumpflow/model/transformer.h"

#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <utility>

// GCC 12 reports false "may be used uninitialized" warnings inside its own
// AVX-512 intrinsics when Eigen kernels are inlined (-march=native).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <Eigen/Core>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "jumpflow/model/detail/transformer_ops.h"
#include "jumpflow/status_macros.h"
#include "kernels/philox.h"
#include "oneapi/tbb/blocked_range.h"
#include "oneapi/tbb/parallel_for.h"
#include "sequences/vocabulary.h"

namespace jumpflow {
namespace {

using detail::AddColumnSums;
using detail::CMapMat;
using detail::CMapMatS;
using detail::CMapRow;
using detail::MapMat;
using detail::MapMatS;
using detail::MapRow;

// Group indices in storage order (TransformerParameterGroups builds them in
// exactly this order).
constexpr int kTokEmb = 0, kPosEmb = 1, kTimeW = 2, kTimeB = 3, kLayerBase = 4;
enum LayerField : int {
  kLn1G = 0,
  kLn1B,
  kWqkv,
  kBqkv,
  kWo,
  kBo,
  kLn2G,
  kLn2B,
  kW1,
  kB1,
  kW2,
  kB2,
  kPerLayer
};
// Offsets after the layers: kLnfG + base, ...
enum TailField : int { kLnfG = 0, kLnfB, kTokW, kTokB, kGapW, kGapB };

// Chunking: a chunk holds whole sequences and at least
// max(kMinChunkRows, total_rows / kMaxChunks) wrapped rows, so the cut
// depends only on the lengths. Each chunk owns a gradient buffer.
constexpr int64_t kMinChunkRows = 128;
constexpr int64_t kMaxChunks = 4;
// Buffers carved from the arena start on 64-byte boundaries.
constexpr int64_t kAlignElements = 16;
// Time-feature frequencies are geometric from 1 to kMaxTimeFrequency.
constexpr double kMaxTimeFrequency = 1000.0;

struct Dims {
  int64_t v, d, h, dh, m, f, l, ct, cg, p;
  bool th;     // TransformerConfig::time_at_heads
  int64_t te;  // time embedding width: d (added to the stream) or 2 d ([gamma, beta])
};

template <typename S>
Dims MakeDims(const TransformerConfig& c, const HeadLayout& layout, int64_t num_params) {
  Dims d;
  d.v = c.vocab_size;
  d.d = c.dim;
  d.h = c.heads;
  d.dh = c.dim / c.heads;
  d.m = static_cast<int64_t>(c.mlp_ratio) * c.dim;
  d.f = c.time_features;
  d.l = c.layers;
  d.ct = layout.token_columns;
  d.cg = layout.gap_columns;
  d.p = num_params;
  d.th = c.time_at_heads;
  d.te = c.time_at_heads ? 2 * d.d : d.d;
  return d;
}

// ChunkDims are the sizes a chunk's buffers depend on.
struct ChunkDims {
  int64_t rows = 0;    // wrapped rows (sum of n + 2)
  int64_t nseq = 0;    // sequences
  int64_t sum_m2 = 0;  // sum of (n + 2)^2
  int64_t max_m2 = 0;  // max of (n + 2)^2
};

// Bump carves aligned sub-buffers from a base pointer; with a null base it
// only measures.
template <typename S>
class Bump {
 public:
  explicit Bump(S* base) : base_(base) {}
  S* Take(int64_t n) {
    S* p = base_ == nullptr ? nullptr : base_ + used_;
    used_ += (n + kAlignElements - 1) / kAlignElements * kAlignElements;
    return p;
  }
  int64_t used() const { return used_; }

 private:
  S* base_;
  int64_t used_ = 0;
};

// LayerActs are one block's saved activations for a chunk.
template <typename S>
struct LayerActs {
  S *xhat1, *rstd1, *a1, *qkv, *o, *p, *xhat2, *rstd2, *a2, *u, *g;
};

template <typename S>
LayerActs<S> CarveLayer(Bump<S>& bump, const Dims& d, const ChunkDims& c) {
  LayerActs<S> a;
  a.xhat1 = bump.Take(c.rows * d.d);
  a.rstd1 = bump.Take(c.rows);
  a.a1 = bump.Take(c.rows * d.d);
  a.qkv = bump.Take(c.rows * 3 * d.d);
  a.o = bump.Take(c.rows * d.d);
  a.p = bump.Take(d.h * c.sum_m2);
  a.xhat2 = bump.Take(c.rows * d.d);
  a.rstd2 = bump.Take(c.rows);
  a.a2 = bump.Take(c.rows * d.d);
  a.u = bump.Take(c.rows * d.m);
  a.g = bump.Take(c.rows * d.m);
  return a;
}

// ChunkView holds the pointers of one chunk's region of the arena.
template <typename S>
struct ChunkView {
  ChunkDims dims;
  S* tfeat;  // nseq x f time features
  S* temb;   // nseq x te time embeddings
  S* x;      // rows x d residual stream
  // time_at_heads only (else empty); the gap buffers have one row per gap
  // row of the chunk (rows - nseq of them, in batch order; none without a
  // gap head).
  S* gfeat;      // gaps x f time features of the gap rows
  S* gemb;       // gaps x 2d [gamma, beta] of the gap rows
  S* mt;         // rows x d modulated token-head input
  S *ml, *mr;    // gaps x d modulated gap-head inputs (left, right state)
  S *dml, *dmr;  // gaps x d their gradients
  S* gemb_grad;  // gaps x 2d gradient of the gap rows' [gamma, beta]
  S* dtemb_seq;  // nseq x 2d gradient of the sequences' [gamma, beta]
  S* layers;     // first layer's block
  int64_t layer_stride;
  S *xhatf, *rstdf, *hf;
  S* head;  // rows x max(ct, 2 cg): head scratch (forward and backward)
  S *dx, *dy, *dqkv, *dmlp, *dp, *dtemb;

  LayerActs<S> Layer(int64_t l, const Dims& d) const {
    Bump<S> bump(layers + l * layer_stride);
    return CarveLayer<S>(bump, d, dims);
  }
};

// CarveChunk lays out a chunk's buffers from `base` (null: measure only) and
// returns the number of elements used. Without `backward` (an inference
// forward) the layers share one block (layer_stride 0) and the gradient
// buffers, which Forward never touches, are empty.
template <typename S>
int64_t CarveChunk(S* base, const Dims& d, const ChunkDims& c, ChunkView<S>* view, bool backward) {
  const int64_t g = backward ? 1 : 0;  // multiplies the sizes of gradient buffers
  Bump<S> bump(base);
  ChunkView<S> v;
  v.dims = c;
  v.tfeat = bump.Take(c.nseq * d.f);
  v.temb = bump.Take(c.nseq * d.te);
  v.x = bump.Take(c.rows * d.d);
  const int64_t gaps = d.th && d.cg > 0 ? c.rows - c.nseq : 0, mrows = d.th ? c.rows : 0;
  v.gfeat = bump.Take(gaps * d.f);
  v.gemb = bump.Take(gaps * 2 * d.d);
  v.mt = bump.Take(mrows * d.d);
  v.ml = bump.Take(gaps * d.d);
  v.mr = bump.Take(gaps * d.d);
  v.dml = bump.Take(g * gaps * d.d);
  v.dmr = bump.Take(g * gaps * d.d);
  v.gemb_grad = bump.Take(g * gaps * 2 * d.d);
  v.dtemb_seq = bump.Take(d.th ? g * c.nseq * 2 * d.d : 0);
  Bump<S> measure(nullptr);
  CarveLayer<S>(measure, d, c);
  v.layer_stride = backward ? measure.used() : 0;
  v.layers = bump.Take(backward ? v.layer_stride * d.l : measure.used());
  v.xhatf = bump.Take(c.rows * d.d);
  v.rstdf = bump.Take(c.rows);
  v.hf = bump.Take(c.rows * d.d);
  v.head = bump.Take(c.rows * std::max(d.ct, 2 * d.cg));
  v.dx = bump.Take(g * c.rows * d.d);
  v.dy = bump.Take(g * c.rows * d.d);
  v.dqkv = bump.Take(g * c.rows * 3 * d.d);
  v.dmlp = bump.Take(g * c.rows * d.m);
  v.dp = bump.Take(g * c.max_m2);
  v.dtemb = bump.Take(g * d.te);
  if (view != nullptr) *view = v;
  return bump.used();
}

// TimeFrequencies returns the f/2 frequencies of the time features:
// w_k = 1000^(k / (f/2 - 1)) (w_0 = 1).
std::vector<double> TimeFrequencies(int64_t f) {
  const int64_t k_count = f / 2;
  std::vector<double> w(static_cast<size_t>(k_count), 1.0);
  for (int64_t k = 0; k < k_count && k_count > 1; ++k) {
    w[static_cast<size_t>(k)] = std::exp(std::log(kMaxTimeFrequency) * static_cast<double>(k) /
                                         static_cast<double>(k_count - 1));
  }
  return w;
}

// TimeFeatures writes the f = 2 w.size() sinusoidal features of t:
// sin(w_k t) for k < f/2, then cos(w_k t). Sinusoidal embeddings as in
// Vaswani et al. 2017 and the DDPM timestep embedding (Ho et al. 2020), on t
// in [0, 1].
template <typename S>
void TimeFeatures(double t, const std::vector<double>& w, S* out) {
  const size_t k_count = w.size();
  for (size_t k = 0; k < k_count; ++k) {
    out[k] = static_cast<S>(std::sin(w[k] * t));
    out[k_count + k] = static_cast<S>(std::cos(w[k] * t));
  }
}

inline Token WrappedToken(std::span<const Token> seq, int64_t i) {
  const int64_t n = static_cast<int64_t>(seq.size());
  if (i == 0) return Vocabulary::kBos;
  if (i == n + 1) return Vocabulary::kEos;
  return seq[static_cast<size_t>(i - 1)];
}

}  // namespace

// ---------------------------------------------------------------------------
// Configuration.

const char* ProcessName(ProcessKind process) {
  switch (process) {
    case ProcessKind::kDfm:
      return "dfm";
    case ProcessKind::kEdit:
      return "edit";
    case ProcessKind::kBranching:
      return "branching";
  }
  return "unknown";
}

absl::StatusOr<ProcessKind> ParseProcessName(absl::string_view name) {
  if (name == "dfm") return ProcessKind::kDfm;
  if (name == "edit") return ProcessKind::kEdit;
  if (name == "branching") return ProcessKind::kBranching;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown process '", name, "' (expected dfm, edit or branching)"));
}

absl::Status TransformerConfig::Validate() const {
  auto positive = [](const char* name, int64_t value) -> absl::Status {
    if (value <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("model config: ", name, " must be positive, got ", value));
    }
    return absl::OkStatus();
  };
  if (vocab_size <= Vocabulary::kNumSpecials) {
    return absl::InvalidArgumentError(absl::StrCat("model config: vocab_size must exceed the ",
                                                   Vocabulary::kNumSpecials, " specials, got ",
                                                   vocab_size));
  }
  JUMPFLOW_RETURN_IF_ERROR(positive("dim", dim));
  JUMPFLOW_RETURN_IF_ERROR(positive("layers", layers));
  JUMPFLOW_RETURN_IF_ERROR(positive("heads", heads));
  JUMPFLOW_RETURN_IF_ERROR(positive("mlp_ratio", mlp_ratio));
  JUMPFLOW_RETURN_IF_ERROR(positive("max_length", max_length));
  JUMPFLOW_RETURN_IF_ERROR(positive("time_features", time_features));
  if (dim % heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model config: dim ", dim, " is not divisible by heads ", heads));
  }
  if (time_features % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model config: time_features must be even, got ", time_features));
  }
  // Keep every buffer index well inside int64 and the model a sane size.
  constexpr int64_t kMaxSize = 1 << 16;
  if (dim > kMaxSize || layers > 1024 || mlp_ratio > 64 || max_length > (1 << 20) ||
      vocab_size > (1 << 24) || time_features > kMaxSize) {
    return absl::InvalidArgumentError(absl::StrCat("model config too large: ", Serialize()));
  }
  if (insert_gate && process != ProcessKind::kEdit) {
    return absl::InvalidArgumentError("model config: insert_gate needs the edit process");
  }
  if (causal && process != ProcessKind::kEdit) {
    return absl::InvalidArgumentError("model config: causal needs the edit process");
  }
  if (process != ProcessKind::kDfm && process != ProcessKind::kEdit &&
      process != ProcessKind::kBranching) {
    return absl::InvalidArgumentError(
        absl::StrCat("model config: unknown process ", static_cast<int>(process)));
  }
  return absl::OkStatus();
}

std::string TransformerConfig::Serialize() const {
  return absl::StrCat("vocab_size=", vocab_size, "\ndim=", dim, "\nlayers=", layers,
                      "\nheads=", heads, "\nmlp_ratio=", mlp_ratio, "\nmax_length=", max_length,
                      "\ntime_features=", time_features, "\nprocess=", ProcessName(process), "\n",
                      insert_gate ? "insert_gate=1\n" : "", causal ? "causal=1\n" : "",
                      time_at_heads ? "time_at_heads=1\n" : "");
}

absl::StatusOr<TransformerConfig> TransformerConfig::Parse(absl::string_view text) {
  TransformerConfig c;
  struct Field {
    const char* key;
    int32_t* value;
    bool seen;
  };
  Field fields[] = {{"vocab_size", &c.vocab_size, false},
                    {"dim", &c.dim, false},
                    {"layers", &c.layers, false},
                    {"heads", &c.heads, false},
                    {"mlp_ratio", &c.mlp_ratio, false},
                    {"max_length", &c.max_length, false},
                    {"time_features", &c.time_features, false}};
  bool process_seen = false;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    line = absl::StripAsciiWhitespace(line);
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("model config: line '", line, "' is not key=value"));
    }
    const absl::string_view key = line.substr(0, eq);
    const absl::string_view value = line.substr(eq + 1);
    if (key == "process") {
      JUMPFLOW_ASSIGN_OR_RETURN(c.process, ParseProcessName(value));
      process_seen = true;
      continue;
    }
    // Optional flags (absent from configs written before they existed).
    bool* flag = key == "insert_gate"     ? &c.insert_gate
                 : key == "causal"        ? &c.causal
                 : key == "time_at_heads" ? &c.time_at_heads
                                          : nullptr;
    if (flag != nullptr) {
      if (value != "0" && value != "1") {
        return absl::InvalidArgumentError(
            absl::StrCat("model config: bad value '", value, "' for ", key));
      }
      *flag = value == "1";
      continue;
    }
    bool known = false;
    for (Field& f : fields) {
      if (key != f.key) continue;
      known = true;
      if (!absl::SimpleAtoi(value, f.value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("model config: bad value '", value, "' for ", key));
      }
      f.seen = true;
    }
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat("model config: unknown key '", key, "'"));
    }
  }
  for (const Field& f : fields) {
    if (!f.seen) {
      return absl::InvalidArgumentError(absl::StrCat("model config: missing key '", f.key, "'"));
    }
  }
  if (!process_seen) return absl::InvalidArgumentError("model config: missing key 'process'");
  JUMPFLOW_RETURN_IF_ERROR(c.Validate());
  return c;
}

HeadLayout MakeHeadLayout(ProcessKind process, int32_t vocab_size, bool insert_gate) {
  HeadLayout h;
  switch (process) {
    case ProcessKind::kDfm:
      h.token_columns = vocab_size;
      h.token_logits = 0;
      break;
    case ProcessKind::kEdit:
      h.token_columns = 2 + vocab_size;
      h.delete_rate = 0;
      h.substitute_rate = 1;
      h.token_logits = 2;
      h.gap_columns = 1 + vocab_size;
      h.insert_rate = 0;
      h.insert_logits = 1;
      if (insert_gate) h.insert_gate = h.gap_columns++;
      break;
    case ProcessKind::kBranching:
      h.token_columns = 2 + vocab_size;
      h.split_rate = 0;
      h.delete_logit = 1;
      h.token_logits = 2;
      break;
  }
  return h;
}

std::vector<ParameterGroup> TransformerParameterGroups(const TransformerConfig& c) {
  const HeadLayout layout = MakeHeadLayout(c.process, c.vocab_size, c.insert_gate);
  const int64_t d = c.dim, m = static_cast<int64_t>(c.mlp_ratio) * c.dim;
  std::vector<ParameterGroup> groups;
  int64_t offset = 0;
  auto add = [&](std::string name, int64_t rows, int64_t cols, bool decay) {
    groups.push_back({std::move(name), offset, rows * cols, rows, cols, decay});
    offset += rows * cols;
  };
  add("token_embedding", c.vocab_size, d, false);
  add("position_embedding", static_cast<int64_t>(c.max_length) + 2, d, false);
  // [gamma, beta] of the heads' modulation with time_at_heads, else the
  // embedding added to the stream.
  const int64_t te = c.time_at_heads ? 2 * d : d;
  add("time_weight", c.time_features, te, true);
  add("time_bias", 1, te, false);
  for (int l = 0; l < c.layers; ++l) {
    const std::string p = absl::StrCat("layer", l, ".");
    add(p + "ln1_gain", 1, d, false);
    add(p + "ln1_shift", 1, d, false);
    add(p + "qkv_weight", d, 3 * d, true);
    add(p + "qkv_bias", 1, 3 * d, false);
    add(p + "attn_out_weight", d, d, true);
    add(p + "attn_out_bias", 1, d, false);
    add(p + "ln2_gain", 1, d, false);
    add(p + "ln2_shift", 1, d, false);
    add(p + "mlp_in_weight", d, m, true);
    add(p + "mlp_in_bias", 1, m, false);
    add(p + "mlp_out_weight", m, d, true);
    add(p + "mlp_out_bias", 1, d, false);
  }
  add("final_ln_gain", 1, d, false);
  add("final_ln_shift", 1, d, false);
  add("token_head_weight", d, layout.token_columns, true);
  add("token_head_bias", 1, layout.token_columns, false);
  if (layout.gap_columns > 0) {
    // Rows 0..d-1 act on the state left of the gap, rows d..2d-1 on the right.
    add("gap_head_weight", 2 * d, layout.gap_columns, true);
    add("gap_head_bias", 1, layout.gap_columns, false);
  }
  return groups;
}

// ---------------------------------------------------------------------------
// Workspace.

// ScratchArena is the workspace's activation storage. It grows to 5/4 of
// the size asked for without copying or zeroing the old contents: Forward
// writes every buffer before reading it (the arena was always reused across
// calls with stale contents, and the tests that compare runs of different
// batch sizes and call histories bit for bit pass). 64-byte aligned like
// AlignedVector; from 4 MiB on 2 MiB aligned with transparent huge pages
// advised (Linux). Sampling grows the arena round after round as its
// sequences lengthen: with a zero-filled, copied std::vector, first-touch
// page faults and memset took ~40% of `jumpflow sample` on the project VM
// (120,000 faults for 1,000 words).
template <typename S>
class ScratchArena {
 public:
  S* data() { return data_.get(); }
  // Reserve makes room for n values; the contents are lost when it grows.
  void Reserve(int64_t n) {
    if (n <= size_) return;
    data_.reset();
    const int64_t want = n + n / 4;
    const size_t bytes = static_cast<size_t>(want) * sizeof(S);
    const size_t align = bytes >= (size_t{4} << 20) ? (size_t{2} << 20) : 64;
    data_ = Buffer(static_cast<S*>(::operator new (bytes, std::align_val_t{align})), Free{align});
#if defined(MADV_HUGEPAGE)
    if (align > 64) ::madvise(data_.get(), bytes, MADV_HUGEPAGE);  // advice only: errors ignored
#endif
    size_ = want;
  }

 private:
  struct Free {
    size_t align = 64;
    void operator()(S* p) const { ::operator delete (p, std::align_val_t{align}); }
  };
  using Buffer = std::unique_ptr<S, Free>;
  Buffer data_;
  int64_t size_ = 0;
};

template <typename S>
struct BasicTransformer<S>::Workspace::Impl {
  bool has_forward = false;  // a kTraining forward pass is in the arena
  TransformerConfig config;
  // Copy of the batch of the last Forward.
  std::vector<Token> tokens;
  std::vector<int64_t> offsets;
  std::vector<double> times;
  // Chunk c covers sequences [chunk_seq[c], chunk_seq[c + 1]); its buffers
  // start at arena[arena_offset[c]].
  std::vector<int64_t> chunk_seq;
  std::vector<ChunkDims> chunk_dims;
  std::vector<int64_t> arena_offset;
  ScratchArena<S> arena;
  detail::AlignedVector<S> chunk_grads;  // num_chunks x num_params
};

template <typename S>
BasicTransformer<S>::Workspace::Workspace() : impl_(std::make_unique<Impl>()) {}
template <typename S>
BasicTransformer<S>::Workspace::~Workspace() = default;
template <typename S>
BasicTransformer<S>::Workspace::Workspace(Workspace&&) noexcept = default;
template <typename S>
typename BasicTransformer<S>::Workspace& BasicTransformer<S>::Workspace::operator=(
    Workspace&&) noexcept = default;

// ---------------------------------------------------------------------------
// Construction.

template <typename S>
absl::StatusOr<BasicTransformer<S>> BasicTransformer<S>::Create(const TransformerConfig& config,
                                                                uint64_t seed) {
  JUMPFLOW_RETURN_IF_ERROR(config.Validate());
  BasicTransformer model;
  model.config_ = config;
  model.layout_ = MakeHeadLayout(config.process, config.vocab_size, config.insert_gate);
  model.groups_ = TransformerParameterGroups(config);
  const ParameterGroup& last = model.groups_.back();
  model.parameters_.assign(static_cast<size_t>(last.offset + last.size), S(0));
  const int first_tail = kLayerBase + kPerLayer * config.layers;
  for (size_t gi = 0; gi < model.groups_.size(); ++gi) {
    const ParameterGroup& g = model.groups_[gi];
    const int i = static_cast<int>(gi);
    double stddev = 0.0;
    double fill = 0.0;
    if (i == kTokEmb || i == kPosEmb) {
      stddev = 0.02;
    } else if (i == kTimeW) {
      stddev = 0.02 * std::sqrt(2.0 / config.time_features);
    } else if (i < first_tail && i >= kLayerBase) {
      const int field = (i - kLayerBase) % kPerLayer;
      if (field == kLn1G || field == kLn2G) {
        fill = 1.0;
      } else if (field == kWqkv || field == kW1) {
        stddev = 1.0 / std::sqrt(static_cast<double>(g.rows));
      } else if (field == kWo || field == kW2) {
        stddev = 1.0 / std::sqrt(static_cast<double>(g.rows) * 2.0 * config.layers);
      }
    } else if (i == first_tail + kLnfG) {
      fill = 1.0;
    } else if (i == first_tail + kTokW || i == first_tail + kGapW) {
      stddev = 0.02;
    }
    S* p = model.parameters_.data() + g.offset;
    if (stddev > 0.0) {
      PhiloxStream rng(seed, static_cast<uint32_t>(gi), kPurposeInit);
      for (int64_t k = 0; k < g.size; ++k) p[k] = static_cast<S>(stddev * rng.Normal());
    } else {
      std::fill(p, p + g.size, static_cast<S>(fill));
    }
  }
  return model;
}

template <typename S>
absl::StatusOr<BasicTransformer<S>> BasicTransformer<S>::FromParameters(
    const TransformerConfig& config, std::vector<S> parameters) {
  JUMPFLOW_RETURN_IF_ERROR(config.Validate());
  BasicTransformer model;
  model.config_ = config;
  model.layout_ = MakeHeadLayout(config.process, config.vocab_size, config.insert_gate);
  model.groups_ = TransformerParameterGroups(config);
  const ParameterGroup& last = model.groups_.back();
  if (static_cast<int64_t>(parameters.size()) != last.offset + last.size) {
    return absl::InvalidArgumentError(absl::StrCat("model parameters: got ", parameters.size(),
                                                   " values, the config needs ",
                                                   last.offset + last.size));
  }
  for (const ParameterGroup& g : model.groups_) {
    for (int64_t k = 0; k < g.size; ++k) {
      if (!std::isfinite(static_cast<double>(parameters[static_cast<size_t>(g.offset + k)]))) {
        return absl::InvalidArgumentError(
            absl::StrCat("model parameters: ", g.name, "[", k, "] is not finite"));
      }
    }
  }
  model.parameters_.assign(parameters.begin(), parameters.end());
  return model;
}

// ---------------------------------------------------------------------------
// Forward.

template <typename S>
absl::Status BasicTransformer<S>::Forward(const SequenceBatch& batch, Workspace* workspace,
                                          Outputs* out, std::span<const double> gap_times,
                                          ForwardMode mode) const {
  if (workspace == nullptr || out == nullptr) {
    return absl::InvalidArgumentError("Forward: null workspace or outputs");
  }
  typename Workspace::Impl* ws = workspace->impl_.get();
  ws->has_forward = false;
  const bool backward = mode == ForwardMode::kTraining;
  const int64_t num_seq = batch.num_sequences();
  for (int64_t b = 0; b < num_seq; ++b) {
    if (batch.length(b) > config_.max_length) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", b, " has length ", batch.length(b),
                       ", above the model's max_length ", config_.max_length));
    }
    const double t = batch.time(b);
    if (!(t >= 0.0 && t <= 1.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", b, " has time ", t, ", outside [0, 1]"));
    }
    const std::span<const Token> seq = batch.sequence(b);
    for (size_t i = 0; i < seq.size(); ++i) {
      if (seq[i] < 0 || seq[i] >= config_.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("sequence ", b, " position ", i, ": token ", seq[i],
                         " is outside the model's vocabulary [0, ", config_.vocab_size, ")"));
      }
    }
  }

  if (!gap_times.empty()) {
    if (!config_.time_at_heads) {
      return absl::InvalidArgumentError(
          "per-gap times need a model with time_at_heads (its trunk sees no time)");
    }
    if (static_cast<int64_t>(gap_times.size()) != batch.num_gaps()) {
      return absl::InvalidArgumentError(
          absl::StrCat("got ", gap_times.size(), " gap times for ", batch.num_gaps(), " gap rows"));
    }
    for (size_t g = 0; g < gap_times.size(); ++g) {
      if (!(gap_times[g] >= 0.0 && gap_times[g] <= 1.0)) {
        return absl::InvalidArgumentError(
            absl::StrCat("gap row ", g, " has time ", gap_times[g], ", outside [0, 1]"));
      }
    }
  }

  const Dims d = MakeDims<S>(config_, layout_, NumParameters());
  ws->config = config_;
  ws->tokens.assign(batch.tokens().begin(), batch.tokens().end());
  ws->offsets.assign(batch.offsets().begin(), batch.offsets().end());
  ws->times.assign(batch.times().begin(), batch.times().end());

  // Chunk plan: depends on the lengths only.
  const int64_t total_rows = batch.num_tokens() + 2 * num_seq;
  const int64_t target =
      std::max<int64_t>(kMinChunkRows, (total_rows + kMaxChunks - 1) / kMaxChunks);
  ws->chunk_seq.assign(1, 0);
  ws->chunk_dims.clear();
  ChunkDims cur;
  for (int64_t b = 0; b < num_seq; ++b) {
    const int64_t m = batch.length(b) + 2;
    cur.rows += m;
    cur.nseq += 1;
    cur.sum_m2 += m * m;
    cur.max_m2 = std::max(cur.max_m2, m * m);
    if (cur.rows >= target || b + 1 == num_seq) {
      ws->chunk_seq.push_back(b + 1);
      ws->chunk_dims.push_back(cur);
      cur = ChunkDims();
    }
  }
  const int64_t num_chunks = static_cast<int64_t>(ws->chunk_dims.size());
  ws->arena_offset.assign(1, 0);
  for (int64_t c = 0; c < num_chunks; ++c) {
    ws->arena_offset.push_back(ws->arena_offset.back() +
                               CarveChunk<S>(nullptr, d, ws->chunk_dims[c], nullptr, backward));
  }
  ws->arena.Reserve(ws->arena_offset.back());

  out->num_tokens = batch.num_tokens();
  out->num_gaps = batch.num_gaps();
  out->token_columns = layout_.token_columns;
  out->gap_columns = layout_.gap_columns;
  out->token_out.resize(static_cast<size_t>(out->num_tokens * d.ct));
  out->gap_out.resize(static_cast<size_t>(out->num_gaps * d.cg));

  const S* P = parameters_.data();
  auto off = [this](int group) { return groups_[static_cast<size_t>(group)].offset; };
  const int tail = kLayerBase + kPerLayer * config_.layers;
  const S scale = static_cast<S>(1.0 / std::sqrt(static_cast<double>(d.dh)));
  S* token_out = out->token_out.data();
  S* gap_out = out->gap_out.data();
  const std::vector<double> freqs = TimeFrequencies(d.f);

  auto run_chunk = [&](int64_t c) {
    ChunkView<S> v;
    CarveChunk<S>(ws->arena.data() + ws->arena_offset[c], d, ws->chunk_dims[c], &v, backward);
    const int64_t b0 = ws->chunk_seq[c], b1 = ws->chunk_seq[c + 1];
    const int64_t rows = v.dims.rows;
    MapMat<S> x(v.x, rows, d.d);

    // Embeddings.
    const CMapMat<S> tok_emb(P + off(kTokEmb), d.v, d.d);
    const CMapMat<S> pos_emb(P + off(kPosEmb), config_.max_length + 2, d.d);
    const CMapMat<S> time_w(P + off(kTimeW), d.f, d.te);
    const CMapRow<S> time_b(P + off(kTimeB), d.te);
    int64_t s = 0;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t k = b - b0;
      S* f = v.tfeat + k * d.f;
      TimeFeatures<S>(batch.time(b), freqs, f);
      MapRow<S> temb(v.temb + k * d.te, d.te);
      temb.noalias() = CMapRow<S>(f, d.f) * time_w;
      temb += time_b;
      const std::span<const Token> seq = batch.sequence(b);
      const int64_t m = batch.length(b) + 2;
      for (int64_t i = 0; i < m; ++i) {
        x.row(s + i) = tok_emb.row(WrappedToken(seq, i)) + pos_emb.row(i);
        if (!d.th) x.row(s + i) += temb;
      }
      s += m;
    }
    if (d.th && d.cg > 0) {
      // Every gap row's [gamma, beta], from its own time.
      const int64_t g0 = batch.offsets()[b0] + b0, gaps = rows - (b1 - b0);
      int64_t g = 0;
      for (int64_t b = b0; b < b1; ++b) {
        const S* seq_feat = v.tfeat + (b - b0) * d.f;
        for (int64_t j = 0; j <= batch.length(b); ++j, ++g) {
          S* gf = v.gfeat + g * d.f;
          if (gap_times.empty()) {
            std::copy(seq_feat, seq_feat + d.f, gf);
          } else {
            TimeFeatures<S>(gap_times[g0 + g], freqs, gf);
          }
        }
      }
      MapMat<S> gemb(v.gemb, gaps, d.te);
      gemb.noalias() = CMapMat<S>(v.gfeat, gaps, d.f) * time_w;
      gemb.rowwise() += time_b;
    }

    // Blocks.
    for (int64_t l = 0; l < d.l; ++l) {
      const LayerActs<S> a = v.Layer(l, d);
      const int base = kLayerBase + kPerLayer * static_cast<int>(l);
      detail::LayerNormForward<S>(v.x, rows, d.d, P + off(base + kLn1G), P + off(base + kLn1B),
                                  a.xhat1, a.rstd1, a.a1);
      MapMat<S> qkv(a.qkv, rows, 3 * d.d);
      qkv.noalias() = CMapMat<S>(a.a1, rows, d.d) * CMapMat<S>(P + off(base + kWqkv), d.d, 3 * d.d);
      qkv.rowwise() += CMapRow<S>(P + off(base + kBqkv), 3 * d.d);
      // Attention within each sequence.
      s = 0;
      int64_t p_off = 0;
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t m = batch.length(b) + 2;
        for (int64_t h = 0; h < d.h; ++h) {
          const CMapMatS<S> q(a.qkv + s * 3 * d.d + h * d.dh, m, d.dh,
                              Eigen::OuterStride<>(3 * d.d));
          const CMapMatS<S> kk(a.qkv + s * 3 * d.d + d.d + h * d.dh, m, d.dh,
                               Eigen::OuterStride<>(3 * d.d));
          const CMapMatS<S> vv(a.qkv + s * 3 * d.d + 2 * d.d + h * d.dh, m, d.dh,
                               Eigen::OuterStride<>(3 * d.d));
          MapMat<S> p(a.p + p_off + h * m * m, m, m);
          p.noalias() = (q * kk.transpose()) * scale;
          if (config_.causal) {
            // Later positions get weight 0 (set after the softmax too: Eigen's
            // exp of -inf is a tiny positive number), so their softmax
            // backward, dS = P .* (...), is 0 as well.
            p.template triangularView<Eigen::StrictlyUpper>().setConstant(
                -std::numeric_limits<S>::infinity());
            detail::SoftmaxRows<S>(p.data(), m, m);
            p.template triangularView<Eigen::StrictlyUpper>().setZero();
          } else {
            detail::SoftmaxRows<S>(p.data(), m, m);
          }
          MapMatS<S> o(a.o + s * d.d + h * d.dh, m, d.dh, Eigen::OuterStride<>(d.d));
          o.noalias() = p * vv;
        }
        p_off += d.h * m * m;
        s += m;
      }
      x.noalias() += CMapMat<S>(a.o, rows, d.d) * CMapMat<S>(P + off(base + kWo), d.d, d.d);
      x.rowwise() += CMapRow<S>(P + off(base + kBo), d.d);
      // MLP.
      detail::LayerNormForward<S>(v.x, rows, d.d, P + off(base + kLn2G), P + off(base + kLn2B),
                                  a.xhat2, a.rstd2, a.a2);
      MapMat<S> u(a.u, rows, d.m);
      u.noalias() = CMapMat<S>(a.a2, rows, d.d) * CMapMat<S>(P + off(base + kW1), d.d, d.m);
      u.rowwise() += CMapRow<S>(P + off(base + kB1), d.m);
      detail::GeluForward<S>(a.u, rows * d.m, a.g);
      x.noalias() += CMapMat<S>(a.g, rows, d.m) * CMapMat<S>(P + off(base + kW2), d.m, d.d);
      x.rowwise() += CMapRow<S>(P + off(base + kB2), d.d);
    }
    detail::LayerNormForward<S>(v.x, rows, d.d, P + off(tail + kLnfG), P + off(tail + kLnfB),
                                v.xhatf, v.rstdf, v.hf);
    const CMapMat<S> hf(v.hf, rows, d.d);

    // Token head: rows 1..n of each wrapped sequence.
    {
      if (d.th) {  // modulated by the sequence's time
        MapMat<S> mt(v.mt, rows, d.d);
        s = 0;
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t m = batch.length(b) + 2;
          const CMapRow<S> gamma(v.temb + (b - b0) * d.te, d.d);
          const CMapRow<S> beta(v.temb + (b - b0) * d.te + d.d, d.d);
          for (int64_t i = 0; i < m; ++i) {
            mt.row(s + i) =
                (hf.row(s + i).array() * (gamma.array() + S(1)) + beta.array()).matrix();
          }
          s += m;
        }
      }
      MapMat<S> tmp(v.head, rows, d.ct);
      tmp.noalias() =
          CMapMat<S>(d.th ? v.mt : v.hf, rows, d.d) * CMapMat<S>(P + off(tail + kTokW), d.d, d.ct);
      const CMapRow<S> bias(P + off(tail + kTokB), d.ct);
      s = 0;
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t n = batch.length(b);
        MapMat<S> dst(token_out + batch.offsets()[b] * d.ct, n, d.ct);
        dst = tmp.middleRows(s + 1, n);
        dst.rowwise() += bias;
        s += n + 2;
      }
    }
    // Gap head: gap j sees [h_j, h_{j+1}] of the wrapped sequence.
    if (d.cg > 0 && d.th) {
      // Each gap row modulates its states with its own [gamma, beta]; the
      // chunk's gap rows are contiguous in gap_out.
      const int64_t gaps = rows - (b1 - b0);
      MapMat<S> ml(v.ml, gaps, d.d), mr(v.mr, gaps, d.d);
      int64_t g = 0;
      s = 0;
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t n = batch.length(b);
        for (int64_t j = 0; j <= n; ++j, ++g) {
          const auto gamma = CMapRow<S>(v.gemb + g * d.te, d.d).array() + S(1);
          const auto beta = CMapRow<S>(v.gemb + g * d.te + d.d, d.d).array();
          ml.row(g) = (hf.row(s + j).array() * gamma + beta).matrix();
          if (!config_.causal) mr.row(g) = (hf.row(s + j + 1).array() * gamma + beta).matrix();
        }
        s += n + 2;
      }
      MapMat<S> dst(gap_out + (batch.offsets()[b0] + b0) * d.cg, gaps, d.cg);
      dst.noalias() = ml * CMapMat<S>(P + off(tail + kGapW), d.d, d.cg);
      if (!config_.causal) {
        dst.noalias() += mr * CMapMat<S>(P + off(tail + kGapW) + d.d * d.cg, d.d, d.cg);
      }
      dst.rowwise() += CMapRow<S>(P + off(tail + kGapB), d.cg);
    } else if (d.cg > 0) {
      MapMat<S> left(v.head, rows, d.cg), right(v.head + rows * d.cg, rows, d.cg);
      left.noalias() = hf * CMapMat<S>(P + off(tail + kGapW), d.d, d.cg);
      if (!config_.causal) {  // a causal gap sees only its left state
        right.noalias() = hf * CMapMat<S>(P + off(tail + kGapW) + d.d * d.cg, d.d, d.cg);
      }
      const CMapRow<S> bias(P + off(tail + kGapB), d.cg);
      s = 0;
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t n = batch.length(b);
        MapMat<S> dst(gap_out + (batch.offsets()[b] + b) * d.cg, n + 1, d.cg);
        if (config_.causal) {
          dst = left.middleRows(s, n + 1);
        } else {
          dst = left.middleRows(s, n + 1) + right.middleRows(s + 1, n + 1);
        }
        dst.rowwise() += bias;
        s += n + 2;
      }
    }
  };

  tbb::parallel_for(tbb::blocked_range<int64_t>(0, num_chunks, 1),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      for (int64_t c = r.begin(); c < r.end(); ++c) run_chunk(c);
                    });
  ws->has_forward = backward;
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Backward.

template <typename S>
absl::Status BasicTransformer<S>::Backward(std::span<const S> d_token_out,
                                           std::span<const S> d_gap_out, Workspace* workspace,
                                           std::span<S> gradients) const {
  if (workspace == nullptr) return absl::InvalidArgumentError("Backward: null workspace");
  typename Workspace::Impl* ws = workspace->impl_.get();
  if (!ws->has_forward) {
    return absl::FailedPreconditionError("Backward: the workspace holds no training forward pass");
  }
  if (!(ws->config == config_)) {
    return absl::FailedPreconditionError(
        "Backward: the workspace's forward pass was run by a model with another config");
  }
  const Dims d = MakeDims<S>(config_, layout_, NumParameters());
  const int64_t num_seq = static_cast<int64_t>(ws->offsets.size()) - 1;
  const int64_t num_tokens = ws->offsets.back();
  const int64_t num_gaps = num_tokens + num_seq;
  if (static_cast<int64_t>(d_token_out.size()) != num_tokens * d.ct) {
    return absl::InvalidArgumentError(absl::StrCat("Backward: d_token_out has ", d_token_out.size(),
                                                   " entries, expected ", num_tokens * d.ct));
  }
  if (static_cast<int64_t>(d_gap_out.size()) != num_gaps * d.cg &&
      !(d.cg == 0 && d_gap_out.empty())) {
    return absl::InvalidArgumentError(absl::StrCat("Backward: d_gap_out has ", d_gap_out.size(),
                                                   " entries, expected ", num_gaps * d.cg));
  }
  if (static_cast<int64_t>(gradients.size()) != d.p) {
    return absl::InvalidArgumentError(
        absl::StrCat("Backward: gradients has ", gradients.size(), " entries, expected ", d.p));
  }
  const int64_t num_chunks = static_cast<int64_t>(ws->chunk_dims.size());
  if (num_chunks == 0) return absl::OkStatus();
  if (static_cast<int64_t>(ws->chunk_grads.size()) < num_chunks * d.p) {
    ws->chunk_grads.resize(static_cast<size_t>(num_chunks * d.p));
  }

  const S* P = parameters_.data();
  auto off = [this](int group) { return groups_[static_cast<size_t>(group)].offset; };
  const int tail = kLayerBase + kPerLayer * config_.layers;
  const S scale = static_cast<S>(1.0 / std::sqrt(static_cast<double>(d.dh)));
  const int64_t* offsets = ws->offsets.data();

  auto run_chunk = [&](int64_t c) {
    ChunkView<S> v;
    CarveChunk<S>(ws->arena.data() + ws->arena_offset[c], d, ws->chunk_dims[c], &v,
                  /*backward=*/true);
    S* G = ws->chunk_grads.data() + c * d.p;
    std::fill(G, G + d.p, S(0));
    const int64_t b0 = ws->chunk_seq[c], b1 = ws->chunk_seq[c + 1];
    const int64_t rows = v.dims.rows;
    const CMapMat<S> hf(v.hf, rows, d.d);
    MapMat<S> dx(v.dx, rows, d.d), dy(v.dy, rows, d.d);

    // Token head.
    {
      MapMat<S> dt(v.head, rows, d.ct);
      int64_t s = 0;
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t n = offsets[b + 1] - offsets[b];
        dt.row(s).setZero();
        dt.middleRows(s + 1, n) = CMapMat<S>(d_token_out.data() + offsets[b] * d.ct, n, d.ct);
        dt.row(s + n + 1).setZero();
        s += n + 2;
      }
      MapMat<S>(G + off(tail + kTokW), d.d, d.ct).noalias() +=
          CMapMat<S>(d.th ? v.mt : v.hf, rows, d.d).transpose() * dt;
      AddColumnSums<S>(v.head, rows, d.ct, G + off(tail + kTokB));
      dy.noalias() = dt * CMapMat<S>(P + off(tail + kTokW), d.d, d.ct).transpose();
      if (d.th) {
        // dy holds dL/d(modulated input): per sequence, dgamma = sum dy .* h,
        // dbeta = sum dy, and dL/dh = dy .* (1 + gamma).
        MapMat<S> dte(v.dtemb_seq, b1 - b0, d.te);
        s = 0;
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t m = offsets[b + 1] - offsets[b] + 2;
          dte.row(b - b0).head(d.d) =
              (dy.middleRows(s, m).array() * hf.middleRows(s, m).array()).colwise().sum();
          dte.row(b - b0).tail(d.d) = dy.middleRows(s, m).colwise().sum();
          const auto gamma = CMapRow<S>(v.temb + (b - b0) * d.te, d.d).array() + S(1);
          for (int64_t i = 0; i < m; ++i) dy.row(s + i).array() *= gamma;
          s += m;
        }
        MapMat<S>(G + off(kTimeW), d.f, d.te).noalias() +=
            CMapMat<S>(v.tfeat, b1 - b0, d.f).transpose() * dte;
        AddColumnSums<S>(v.dtemb_seq, b1 - b0, d.te, G + off(kTimeB));
      }
    }
    // Gap head.
    if (d.cg > 0 && d.th) {
      const int64_t gaps = rows - (b1 - b0);
      const CMapMat<S> dg(d_gap_out.data() + (offsets[b0] + b0) * d.cg, gaps, d.cg);
      const CMapMat<S> wl(P + off(tail + kGapW), d.d, d.cg);
      const CMapMat<S> wr(P + off(tail + kGapW) + d.d * d.cg, d.d, d.cg);
      MapMat<S> dml(v.dml, gaps, d.d), dmr(v.dmr, gaps, d.d);
      MapMat<S>(G + off(tail + kGapW), d.d, d.cg).noalias() +=
          CMapMat<S>(v.ml, gaps, d.d).transpose() * dg;
      dml.noalias() = dg * wl.transpose();
      if (!config_.causal) {
        MapMat<S>(G + off(tail + kGapW) + d.d * d.cg, d.d, d.cg).noalias() +=
            CMapMat<S>(v.mr, gaps, d.d).transpose() * dg;
        dmr.noalias() = dg * wr.transpose();
      }
      AddColumnSums<S>(dg.data(), gaps, d.cg, G + off(tail + kGapB));
      // dgamma, dbeta per gap row; dL/dh gets dm .* (1 + gamma).
      MapMat<S> dge(v.gemb_grad, gaps, d.te);
      int64_t g = 0, s = 0;
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t n = offsets[b + 1] - offsets[b];
        for (int64_t j = 0; j <= n; ++j, ++g) {
          const auto gamma = CMapRow<S>(v.gemb + g * d.te, d.d).array() + S(1);
          dge.row(g).head(d.d) = dml.row(g).array() * hf.row(s + j).array();
          dge.row(g).tail(d.d) = dml.row(g);
          dy.row(s + j).array() += dml.row(g).array() * gamma;
          if (!config_.causal) {
            dge.row(g).head(d.d).array() += dmr.row(g).array() * hf.row(s + j + 1).array();
            dge.row(g).tail(d.d) += dmr.row(g);
            dy.row(s + j + 1).array() += dmr.row(g).array() * gamma;
          }
        }
        s += n + 2;
      }
      MapMat<S>(G + off(kTimeW), d.f, d.te).noalias() +=
          CMapMat<S>(v.gfeat, gaps, d.f).transpose() * dge;
      AddColumnSums<S>(v.gemb_grad, gaps, d.te, G + off(kTimeB));
    } else if (d.cg > 0) {
      MapMat<S> dl(v.head, rows, d.cg), dr(v.head + rows * d.cg, rows, d.cg);
      int64_t s = 0;
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t n = offsets[b + 1] - offsets[b];
        const CMapMat<S> src(d_gap_out.data() + (offsets[b] + b) * d.cg, n + 1, d.cg);
        dl.middleRows(s, n + 1) = src;
        dl.row(s + n + 1).setZero();
        if (!config_.causal) {  // a causal gap sees only its left state
          dr.row(s).setZero();
          dr.middleRows(s + 1, n + 1) = src;
        }
        AddColumnSums<S>(src.data(), n + 1, d.cg, G + off(tail + kGapB));
        s += n + 2;
      }
      const CMapMat<S> wl(P + off(tail + kGapW), d.d, d.cg);
      const CMapMat<S> wr(P + off(tail + kGapW) + d.d * d.cg, d.d, d.cg);
      MapMat<S>(G + off(tail + kGapW), d.d, d.cg).noalias() += hf.transpose() * dl;
      dy.noalias() += dl * wl.transpose();
      if (!config_.causal) {
        MapMat<S>(G + off(tail + kGapW) + d.d * d.cg, d.d, d.cg).noalias() += hf.transpose() * dr;
        dy.noalias() += dr * wr.transpose();
      }
    }
    detail::LayerNormBackward<S>(v.dy, v.xhatf, v.rstdf, rows, d.d, P + off(tail + kLnfG),
                                 G + off(tail + kLnfG), G + off(tail + kLnfB), v.dx,
                                 /*accumulate=*/false);

    // Blocks, last to first; dx is dL/d(residual stream).
    for (int64_t l = d.l - 1; l >= 0; --l) {
      const LayerActs<S> a = v.Layer(l, d);
      const int base = kLayerBase + kPerLayer * static_cast<int>(l);
      // MLP branch.
      MapMat<S> dmlp(v.dmlp, rows, d.m);
      MapMat<S>(G + off(base + kW2), d.m, d.d).noalias() +=
          CMapMat<S>(a.g, rows, d.m).transpose() * dx;
      AddColumnSums<S>(v.dx, rows, d.d, G + off(base + kB2));
      dmlp.noalias() = dx * CMapMat<S>(P + off(base + kW2), d.m, d.d).transpose();
      detail::GeluBackward<S>(a.u, rows * d.m, v.dmlp);
      MapMat<S>(G + off(base + kW1), d.d, d.m).noalias() +=
          CMapMat<S>(a.a2, rows, d.d).transpose() * dmlp;
      AddColumnSums<S>(v.dmlp, rows, d.m, G + off(base + kB1));
      dy.noalias() = dmlp * CMapMat<S>(P + off(base + kW1), d.d, d.m).transpose();
      detail::LayerNormBackward<S>(v.dy, a.xhat2, a.rstd2, rows, d.d, P + off(base + kLn2G),
                                   G + off(base + kLn2G), G + off(base + kLn2B), v.dx,
                                   /*accumulate=*/true);
      // Attention branch.
      MapMat<S>(G + off(base + kWo), d.d, d.d).noalias() +=
          CMapMat<S>(a.o, rows, d.d).transpose() * dx;
      AddColumnSums<S>(v.dx, rows, d.d, G + off(base + kBo));
      dy.noalias() = dx * CMapMat<S>(P + off(base + kWo), d.d, d.d).transpose();  // dL/dO
      int64_t s = 0, p_off = 0;
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t m = offsets[b + 1] - offsets[b] + 2;
        for (int64_t h = 0; h < d.h; ++h) {
          const Eigen::OuterStride<> s3(3 * d.d);
          const CMapMatS<S> q(a.qkv + s * 3 * d.d + h * d.dh, m, d.dh, s3);
          const CMapMatS<S> kk(a.qkv + s * 3 * d.d + d.d + h * d.dh, m, d.dh, s3);
          const CMapMatS<S> vv(a.qkv + s * 3 * d.d + 2 * d.d + h * d.dh, m, d.dh, s3);
          MapMatS<S> dq(v.dqkv + s * 3 * d.d + h * d.dh, m, d.dh, s3);
          MapMatS<S> dk(v.dqkv + s * 3 * d.d + d.d + h * d.dh, m, d.dh, s3);
          MapMatS<S> dv(v.dqkv + s * 3 * d.d + 2 * d.d + h * d.dh, m, d.dh, s3);
          const CMapMatS<S> dout(v.dy + s * d.d + h * d.dh, m, d.dh, Eigen::OuterStride<>(d.d));
          const CMapMat<S> p(a.p + p_off + h * m * m, m, m);
          MapMat<S> dp(v.dp, m, m);
          dp.noalias() = dout * vv.transpose();
          dv.noalias() = p.transpose() * dout;
          // Softmax backward: dS = P .* (dP - rowsum(P .* dP)), times the scale.
          for (int64_t i = 0; i < m; ++i) {
            const S dot = p.row(i).dot(dp.row(i));
            dp.row(i) = (p.row(i).array() * (dp.row(i).array() - dot) * scale).matrix();
          }
          dq.noalias() = dp * kk;
          dk.noalias() = dp.transpose() * q;
        }
        p_off += d.h * m * m;
        s += m;
      }
      MapMat<S>(G + off(base + kWqkv), d.d, 3 * d.d).noalias() +=
          CMapMat<S>(a.a1, rows, d.d).transpose() * CMapMat<S>(v.dqkv, rows, 3 * d.d);
      AddColumnSums<S>(v.dqkv, rows, 3 * d.d, G + off(base + kBqkv));
      dy.noalias() = CMapMat<S>(v.dqkv, rows, 3 * d.d) *
                     CMapMat<S>(P + off(base + kWqkv), d.d, 3 * d.d).transpose();
      detail::LayerNormBackward<S>(v.dy, a.xhat1, a.rstd1, rows, d.d, P + off(base + kLn1G),
                                   G + off(base + kLn1G), G + off(base + kLn1B), v.dx,
                                   /*accumulate=*/true);
    }

    // Embeddings.
    MapMat<S> g_tok(G + off(kTokEmb), d.v, d.d);
    MapMat<S> g_pos(G + off(kPosEmb), config_.max_length + 2, d.d);
    MapMat<S> g_time_w(G + off(kTimeW), d.f, d.te);
    MapRow<S> g_time_b(G + off(kTimeB), d.te);
    MapRow<S> dtemb(v.dtemb, d.te);
    int64_t s = 0;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n = offsets[b + 1] - offsets[b];
      const std::span<const Token> seq(ws->tokens.data() + offsets[b], static_cast<size_t>(n));
      if (!d.th) dtemb.setZero();
      for (int64_t i = 0; i < n + 2; ++i) {
        g_tok.row(WrappedToken(seq, i)) += dx.row(s + i);
        g_pos.row(i) += dx.row(s + i);
        if (!d.th) dtemb += dx.row(s + i);
      }
      if (!d.th) {  // with time_at_heads the stream carries no time
        g_time_b += dtemb;
        g_time_w.noalias() += CMapRow<S>(v.tfeat + (b - b0) * d.f, d.f).transpose() * dtemb;
      }
      s += n + 2;
    }
  };

  tbb::parallel_for(tbb::blocked_range<int64_t>(0, num_chunks, 1),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      for (int64_t c = r.begin(); c < r.end(); ++c) run_chunk(c);
                    });

  // Sum the chunk buffers in chunk order (deterministic), in parallel over
  // fixed parameter blocks.
  constexpr int64_t kReduceBlock = 1 << 14;
  const int64_t num_blocks = (d.p + kReduceBlock - 1) / kReduceBlock;
  const S* cg = ws->chunk_grads.data();
  S* out = gradients.data();
  tbb::parallel_for(
      tbb::blocked_range<int64_t>(0, num_blocks, 1), [&](const tbb::blocked_range<int64_t>& r) {
        for (int64_t blk = r.begin(); blk < r.end(); ++blk) {
          const int64_t begin = blk * kReduceBlock;
          const int64_t len = std::min(kReduceBlock, d.p - begin);
          Eigen::Map<Eigen::Array<S, Eigen::Dynamic, 1>> o(out + begin, len);
          for (int64_t c = 0; c < num_chunks; ++c) {
            o += Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>>(cg + c * d.p + begin, len);
          }
        }
      });
  return absl::OkStatus();
}

template class BasicTransformer<float>;
template class BasicTransformer<double>;

}  // namespace jumpflow
