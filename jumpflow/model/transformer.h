// @brief The reference trainable model: a small bidirectional transformer
// encoder with output heads for DFM, Edit Flows and Branching Flows.
//
// Architecture (pre-norm encoder, Vaswani et al. 2017 "Attention is all you
// need", with the pre-LayerNorm placement of Xiong et al. 2020): each
// sequence x of length n is wrapped as [BOS] x [EOS] (n + 2 positions).
// Position i of the wrapped sequence starts as
//   e_i = E_tok[token_i] + E_pos[i] + W_time^T phi(t) + b_time,
// where phi(t) are `time_features` sinusoidal features of the sequence's time
// t (sin(w_k t), cos(w_k t), w_k geometric from 1 to 1000). Then `layers`
// blocks of
//   x += MHSA(LN(x));  x += W2 GELU(W1 LN(x) + b1) + b2
// (multi-head self-attention within the sequence only: batches are ragged and
// never padded; GELU is the tanh form of Hendrycks & Gimpel 2016), and a final
// LayerNorm gives h_0 .. h_{n+1}. Heads are linear layers on h:
//   token row i (position i of x, i.e. h_{i+1}):  h_{i+1} W_tok + b_tok
//   gap row j (0..n, between x[j-1] and x[j]):    [h_j, h_{j+1}] W_gap + b_gap
// i.e. a gap sees the concatenation of the hidden states on both of its sides
// (the BOS state for the front gap, the EOS state for the back gap). A causal
// model (TransformerConfig::causal) masks attention to later positions and
// gives gap j [h_j, 0]: everything at or before gap j is a function of the
// prefix x[0, j) (and t) alone.
//
// Time at the heads (TransformerConfig::time_at_heads): no time embedding is
// added to e_i; instead every head row modulates its final-LayerNorm state(s)
// with its own time t_r (FiLM, Perez et al. 2018; the adaptive LayerNorm of
// DiT, Peebles & Xie 2023):
//   [gamma_r, beta_r] = W_time^T phi(t_r) + b_time   (2 dim values)
//   token row i:  (h_{i+1} .* (1 + gamma_r) + beta_r) W_tok + b_tok
//   gap row j:    [h_j .* (1 + gamma_r) + beta_r, h_{j+1} .* (1 + gamma_r) + beta_r] W_gap + b_gap
// (a causal gap again drops the right half). The trunk is then a function of
// the tokens alone, so one pass serves head rows at different times: token
// rows use their sequence's time, gap rows the time Forward's gap_times
// gives them (default: the sequence's). Edit Flows' all-prefix batches with
// per-gap times (jumpflow/processes/edit_flow.h) rely on this.
//
// Outputs are raw (pre-activation); the loss module applies the
// parametrizations (softmax, softplus, sigmoid, ...). Column meaning per
// process (V = vocabulary size, specials included); HeadLayout names them:
//   DFM        token_out [num_tokens x V]:     V posterior logits.
//              gap_out   none (0 columns).
//   Edit       token_out [num_tokens x 2 + V]: col 0 raw deletion rate,
//                                              col 1 raw substitution rate,
//                                              cols 2..V+1 substitution logits.
//              gap_out   [num_gaps x 1 + V]:   col 0 raw insertion rate,
//                                              cols 1..V insertion logits
//                                              (+ col V+1, the raw insertion
//                                              gate, with insert_gate).
//   Branching  token_out [num_tokens x 2 + V]: col 0 raw split rate,
//                                              col 1 raw deletion logit,
//                                              cols 2..V+1 anchor-token logits.
//              gap_out   none.
// Edit token rows' columns 1 .. V+1 (substitution rate, then logits) and Edit
// gap rows' columns 0 .. V are each one [rate, logits] block: the layout of
// the rate x softmax parametrizations of kernels/loss.h (token rows with row
// stride V + 2, so copy them out to a compact [rows x V+1] buffer).
// Both buffers are row-major and compact: column c of token row r is
// token_out[r * token_columns + c]; row spaces are those of
// sequences/sequence_batch.h (token row = position in the batch, gap j of
// sequence b = row offsets[b] + b + j).
//
// Parameters live in one flat vector (for the optimizer and checkpoints);
// ParameterGroups() names the slices. Every weight matrix is stored row-major
// as [fan_in x fan_out] and applied to row vectors (y = x W + b).
//
// Parallelism and reproducibility: the batch is cut into chunks of whole
// sequences (the cut depends only on the sequence lengths, never on the
// thread count); oneTBB runs the chunks in parallel, each chunk accumulates
// its own parameter gradient buffer, and the buffers are summed in chunk
// order; parameters and activations sit in 64-byte aligned storage, so
// vectorised reductions sum in the same order in every run. Forward and
// Backward are therefore bitwise identical for any number of threads. A sequence's outputs depend
// only on that sequence (attention never crosses sequences); they can differ from a run with other
// batch mates in the last bits only, because matrix products tile rows differently.
//
// Scalar is float for training and inference; double is instantiated for
// finite-difference gradient checks.
//
// Example:
//   TransformerConfig config;
//   config.vocab_size = vocab.size();
//   config.process = ProcessKind::kEdit;
//   JUMPFLOW_ASSIGN_OR_RETURN(Transformer model, Transformer::Create(config, /*seed=*/1));
//   Transformer::Workspace ws;
//   Transformer::Outputs out;
//   JUMPFLOW_RETURN_IF_ERROR(model.Forward(batch, &ws, &out));
//   // ... loss gives d_token (out.token_out.size()) and d_gap ...
//   std::vector<float> grad(model.NumParameters(), 0.0f);
//   JUMPFLOW_RETURN_IF_ERROR(model.Backward(d_token, d_gap, &ws, grad));
#ifndef JUMPFLOW_MODEL_TRANSFORMER_H_
#define JUMPFLOW_MODEL_TRANSFORMER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jumpflow/training_batch.h"
#include "sequences/sequence_batch.h"

namespace jumpflow {
namespace detail {

// AlignedAllocator hands out 64-byte aligned storage. The model keeps its
// parameters and activations in such storage so that vectorised reductions
// see the same alignment in every run (their summation order, hence the
// last bits of the result, depends on it).
template <typename T>
struct AlignedAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlignment{64};
  AlignedAllocator() = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U>&) {}  // NOLINT: allocator rebinding
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlignment)); }
  void deallocate(T* p, size_t) { ::operator delete(p, kAlignment); }
  template <typename U>
  bool operator==(const AlignedAllocator<U>&) const {
    return true;
  }
};

// AlignedVector is a std::vector in 64-byte aligned storage.
template <typename T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

}  // namespace detail

// TransformerConfig fixes the architecture. All sizes must be positive;
// `dim` must be divisible by `heads`; `time_features` must be even.
struct TransformerConfig {
  // Number of token ids, the five specials included (Vocabulary::size()).
  int32_t vocab_size = 0;
  // Width of the residual stream.
  int32_t dim = 64;
  // Number of attention + MLP blocks.
  int32_t layers = 2;
  // Attention heads per block; each has dim / heads channels.
  int32_t heads = 4;
  // The MLP's hidden width is mlp_ratio * dim.
  int32_t mlp_ratio = 4;
  // Longest sequence (in tokens, BOS/EOS not counted) the model accepts; the
  // position table has max_length + 2 rows.
  int32_t max_length = 64;
  // Number of sinusoidal time features (even).
  int32_t time_features = 32;
  // Which process's heads the model carries.
  ProcessKind process = ProcessKind::kEdit;
  // Edit only: one more gap column, the insertion-rate gate (HeadLayout::
  // insert_gate; jumpflow/model/model_rate.h says how it is used). Serialized
  // only when set, so configs written before it existed read back unchanged.
  bool insert_gate = false;
  // Edit only: causal (left-to-right) model. Position i attends to positions
  // <= i only, and gap j sees h_j alone (the state left of it), so the
  // outputs of gap j and of the tokens before it depend only on x[0, j):
  // one forward pass over x_1 gives the last-gap outputs of every prefix of
  // x_1 (jumpflow/processes/edit_flow.h, MakeEditFlowPrefixBatch). Serialized
  // only when set.
  bool causal = false;
  // Time enters at the heads only (file comment, "Time at the heads"): the
  // residual stream carries no time embedding, and each head row's input is
  // modulated by its own time, so gap rows may have times of their own
  // (Forward's gap_times). Serialized only when set.
  bool time_at_heads = false;

  // Validate returns InvalidArgument naming the first bad field.
  absl::Status Validate() const;
  // Serialize returns "key=value" lines that Parse() reads back.
  std::string Serialize() const;
  // Parse is the inverse of Serialize(); unknown keys and bad values are
  // errors naming them. The result is validated.
  static absl::StatusOr<TransformerConfig> Parse(absl::string_view text);

  friend bool operator==(const TransformerConfig&, const TransformerConfig&) = default;
};

// ProcessName returns "dfm", "edit" or "branching".
const char* ProcessName(ProcessKind process);
// ParseProcessName is the inverse of ProcessName().
absl::StatusOr<ProcessKind> ParseProcessName(absl::string_view name);

// HeadLayout names the output columns of a process (see the file comment).
// A column index of -1 means the process has no such output.
struct HeadLayout {
  int32_t token_columns = 0;
  int32_t gap_columns = 0;
  // First of vocab_size token logits in token_out (DFM posterior,
  // Edit substitution distribution, Branching anchor token).
  int32_t token_logits = -1;
  // Edit: raw total deletion / substitution rates (token_out columns).
  int32_t delete_rate = -1;
  int32_t substitute_rate = -1;
  // Branching: raw split rate and raw deletion logit (token_out columns).
  int32_t split_rate = -1;
  int32_t delete_logit = -1;
  // Edit: raw total insertion rate and first of vocab_size insertion logits
  // (gap_out columns).
  int32_t insert_rate = -1;
  int32_t insert_logits = -1;
  // Edit with TransformerConfig::insert_gate: raw insertion-rate gate, the
  // last gap_out column (after the [rate, logits] block).
  int32_t insert_gate = -1;
};

// MakeHeadLayout returns the column layout of `process` for a vocabulary of
// `vocab_size` ids (with the insertion gate column when `insert_gate`, Edit
// only).
HeadLayout MakeHeadLayout(ProcessKind process, int32_t vocab_size, bool insert_gate = false);

// ParameterGroup names one slice [offset, offset + size) of the flat
// parameter vector; size == rows * cols (rows == 1 for vectors). `decay` is
// true for weight matrices (AdamW decays them) and false for embeddings,
// biases and LayerNorm parameters.
struct ParameterGroup {
  std::string name;
  int64_t offset = 0;
  int64_t size = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  bool decay = false;
};

// TransformerParameterGroups lists the parameter slices of `config` in
// storage order (the config must be valid).
std::vector<ParameterGroup> TransformerParameterGroups(const TransformerConfig& config);

// BasicTransformer is the model with Scalar = float (Transformer) or double
// (gradient checks). It is copyable; Forward and Backward are const and may
// run concurrently on distinct workspaces.
template <typename Scalar>
class BasicTransformer {
 public:
  // Outputs holds the raw head outputs of one forward pass (see the file
  // comment for the layout); buffers are reused across calls.
  struct Outputs {
    int64_t num_tokens = 0;
    int64_t num_gaps = 0;
    int32_t token_columns = 0;
    int32_t gap_columns = 0;
    std::vector<Scalar> token_out;  // num_tokens * token_columns
    std::vector<Scalar> gap_out;    // num_gaps * gap_columns (empty if 0 columns)
  };

  // Workspace keeps the activations of the last Forward for Backward, and
  // scratch buffers that grow to the largest batch seen and are then reused
  // (no allocation per step once warm). Not thread-safe: one per caller.
  class Workspace {
   public:
    Workspace();
    ~Workspace();
    Workspace(Workspace&&) noexcept;
    Workspace& operator=(Workspace&&) noexcept;

   private:
    friend class BasicTransformer;
    struct Impl;
    std::unique_ptr<Impl> impl_;
  };

  // Create validates `config` and initialises the parameters from Philox
  // draws keyed by `seed` (stream (group index, kPurposeInit)), so the result
  // depends only on (config, seed):
  //   token / position embeddings ~ N(0, 0.02^2);
  //   time projection ~ N(0, 0.02^2 * 2 / time_features) (so its output has
  //     the embeddings' scale);
  //   attention QKV and MLP input weights ~ N(0, 1 / fan_in);
  //   attention output and MLP output weights ~ N(0, 1 / (fan_in * 2 layers))
  //     (residual-branch scaling as in GPT-2, Radford et al. 2019);
  //   head weights ~ N(0, 0.02^2) (outputs start near their biases);
  //   biases 0, LayerNorm gains 1 and shifts 0.
  static absl::StatusOr<BasicTransformer> Create(const TransformerConfig& config, uint64_t seed);

  // FromParameters builds a model from a flat parameter vector (e.g. a
  // checkpoint). Errors: invalid config, wrong vector size, a non-finite
  // parameter (named by group and index).
  static absl::StatusOr<BasicTransformer> FromParameters(const TransformerConfig& config,
                                                         std::vector<Scalar> parameters);

  // config is the architecture the model was built with.
  const TransformerConfig& config() const { return config_; }
  // layout names the output columns of the model's process.
  const HeadLayout& layout() const { return layout_; }
  // NumParameters is the length of the flat parameter vector.
  int64_t NumParameters() const { return static_cast<int64_t>(parameters_.size()); }
  // ParameterGroups names the slices of the flat parameter vector.
  const std::vector<ParameterGroup>& ParameterGroups() const { return groups_; }
  // parameters is the flat parameter vector, in ParameterGroups() order.
  std::span<const Scalar> parameters() const { return parameters_; }
  // mutable_parameters is the same vector, writable (for the optimizer).
  std::span<Scalar> mutable_parameters() { return parameters_; }

  // ForwardMode says what Forward keeps in its workspace: kTraining keeps
  // every layer's activations for Backward; kInference keeps none (the
  // layers share one activation block and no gradient scratch is laid out:
  // about 4x less memory at 4 layers, the same outputs bit for bit) and
  // Backward after it is an error.
  enum class ForwardMode { kTraining, kInference };

  // Forward runs the model on `batch` and writes the head outputs to `out`,
  // keeping the activations in `workspace` for Backward (kTraining). Errors
  // (InvalidArgument, naming the sequence): a token outside
  // [0, vocab_size), a sequence longer than max_length, a time that is not a
  // finite number in [0, 1]. An empty batch is fine (no outputs).
  // `gap_times` (empty, or one time per gap row of `batch`) gives gap rows
  // their own times; only a time_at_heads model accepts it (error otherwise,
  // and for a count other than num_gaps or a time outside [0, 1]).
  absl::Status Forward(const SequenceBatch& batch, Workspace* workspace, Outputs* out,
                       std::span<const double> gap_times = {},
                       ForwardMode mode = ForwardMode::kTraining) const;

  // Backward adds d(objective)/d(parameters) to `gradients` (size
  // NumParameters()), given d(objective)/d(token_out) (`d_token_out`, size
  // num_tokens * token_columns) and d(objective)/d(gap_out) (`d_gap_out`,
  // size num_gaps * gap_columns; may be empty when gap_columns is 0) of the
  // last Forward run with `workspace` on this model (parameters unchanged
  // since). Uses the workspace's scratch. Errors: no kTraining forward pass
  // recorded, wrong buffer sizes.
  absl::Status Backward(std::span<const Scalar> d_token_out, std::span<const Scalar> d_gap_out,
                        Workspace* workspace, std::span<Scalar> gradients) const;

 private:
  BasicTransformer() = default;

  TransformerConfig config_;
  HeadLayout layout_;
  std::vector<ParameterGroup> groups_;
  detail::AlignedVector<Scalar> parameters_;
};

// Transformer is the float32 model used for training and sampling.
using Transformer = BasicTransformer<float>;

extern template class BasicTransformer<float>;
extern template class BasicTransformer<double>;

}  // namespace jumpflow

#endif  // JUMPFLOW_MODEL_TRANSFORMER_H_
