// @brief Model checkpoints: a versioned, checksummed binary file holding the
// model config, vocabulary, training settings, parameters and (optionally)
// the AdamW state for resuming.
//
// File layout, version 1 (all integers little-endian):
//   bytes  0..7   magic "JFLOWCKP"
//   bytes  8..11  u32 format version (kCheckpointVersion)
//   bytes 12..15  u32 reserved (0)
//   bytes 16..23  u64 payload size P
//   bytes 24..31  u64 FNV-1a 64 checksum of the payload
//   bytes 32..    payload: sections, each u32 tag, u64 length, bytes:
//     1 model config   TransformerConfig::Serialize() text
//     2 vocabulary     Vocabulary::Serialize() text
//     3 settings       u64 count, then per entry u64 len, key, u64 len, value
//     4 parameters     u64 count, count float32
//     5 optimizer      i64 step, u64 count, count float32 m, count float32 v (optional)
// Sections 1-4 appear exactly once; unknown tags are skipped, so later
// versions can add sections. Files are written atomically (temporary file,
// fsync, rename). Loading checks, in order: header length, magic, version,
// payload length (truncated / trailing bytes), checksum, then every section;
// each failure is a DataLoss (or InvalidArgument for a bad version) error
// naming the file and the problem.
//
// Example:
//   Checkpoint ckpt;
//   ckpt.model_config = model.config();
//   ckpt.vocab = vocab;
//   ckpt.settings["process"] = "edit";
//   ckpt.parameters.assign(model.parameters().begin(), model.parameters().end());
//   JUMPFLOW_RETURN_IF_ERROR(SaveCheckpoint("words.ckpt", ckpt));
//   JUMPFLOW_ASSIGN_OR_RETURN(Checkpoint back, LoadCheckpoint("words.ckpt"));
//   JUMPFLOW_ASSIGN_OR_RETURN(Transformer restored,
//                             Transformer::FromParameters(back.model_config, back.parameters));
#ifndef JUMPFLOW_MODEL_CHECKPOINT_H_
#define JUMPFLOW_MODEL_CHECKPOINT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jumpflow/model/transformer.h"
#include "sequences/vocabulary.h"

namespace jumpflow {

// kCheckpointVersion is the format version this build writes and reads.
inline constexpr uint32_t kCheckpointVersion = 1;

// Checkpoint is everything needed to sample from or resume training a model.
struct Checkpoint {
  TransformerConfig model_config;
  // The vocabulary the model's token ids refer to (a placeholder until set;
  // model_config.vocab_size must equal vocab.size()).
  Vocabulary vocab = *Vocabulary::FromSymbols({"?"}, Vocabulary::Kind::kCharacter);
  // Free-form training settings (flags, step counters), sorted by key.
  std::map<std::string, std::string> settings;
  // Flat model parameters (Transformer::parameters()).
  std::vector<float> parameters;
  // AdamW state; written only when has_optimizer_state.
  bool has_optimizer_state = false;
  int64_t optimizer_step = 0;
  std::vector<float> first_moment;
  std::vector<float> second_moment;
};

// Fnv1a64 is the 64-bit FNV-1a hash of `bytes` (Fowler, Noll, Vo; offset
// basis 0xcbf29ce484222325, prime 0x100000001b3).
uint64_t Fnv1a64(absl::string_view bytes);

// EncodeCheckpoint returns the file contents for `checkpoint`. Errors: the
// checkpoint is inconsistent (see ValidateCheckpoint).
absl::StatusOr<std::string> EncodeCheckpoint(const Checkpoint& checkpoint);

// DecodeCheckpoint parses file contents; `name` (usually the path) prefixes
// every error message.
absl::StatusOr<Checkpoint> DecodeCheckpoint(absl::string_view bytes, absl::string_view name);

// ValidateCheckpoint checks consistency: a valid model config whose
// vocab_size equals vocab.size(), parameters of the size the config needs,
// and optimizer moments of that size too (when present).
absl::Status ValidateCheckpoint(const Checkpoint& checkpoint);

// SaveCheckpoint encodes `checkpoint` and writes it to `path` atomically.
absl::Status SaveCheckpoint(const std::string& path, const Checkpoint& checkpoint);

// LoadCheckpoint reads and decodes the checkpoint at `path`; errors name the
// path and what is wrong (missing, truncated, corrupt, wrong version).
absl::StatusOr<Checkpoint> LoadCheckpoint(const std::string& path);

}  // namespace jumpflow

#endif  // JUMPFLOW_MODEL_CHECKPOINT_H_
