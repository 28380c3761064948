// @brief Checkpoint encoding, decoding and atomic file I/O (see checkpoint.h).
#include "jumpflow/model/checkpoint.h"

#include <bit>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "jumpflow/status_macros.h"
#include "sequences/file_util.h"

namespace jumpflow {
namespace {

constexpr char kMagic[8] = {'J', 'F', 'L', 'O', 'W', 'C', 'K', 'P'};
constexpr size_t kHeaderBytes = 32;

enum SectionTag : uint32_t {
  kTagModelConfig = 1,
  kTagVocabulary = 2,
  kTagSettings = 3,
  kTagParameters = 4,
  kTagOptimizer = 5,
};

// Writer appends little-endian values to a byte string.
class Writer {
 public:
  void U32(uint32_t x) {
    for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>((x >> (8 * i)) & 0xff));
  }
  void U64(uint64_t x) {
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>((x >> (8 * i)) & 0xff));
  }
  void Bytes(absl::string_view s) { out_.append(s.data(), s.size()); }
  void String(absl::string_view s) {
    U64(s.size());
    Bytes(s);
  }
  void Floats(const std::vector<float>& v) {
    if constexpr (std::endian::native == std::endian::little) {
      out_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
    } else {
      for (float f : v) U32(std::bit_cast<uint32_t>(f));
    }
  }
  std::string& str() { return out_; }

 private:
  std::string out_;
};

// Reader consumes little-endian values; every read is bounds-checked and
// failures name `what`.
class Reader {
 public:
  Reader(absl::string_view data, std::string prefix) : data_(data), prefix_(std::move(prefix)) {}

  absl::Status Need(uint64_t n, absl::string_view what) const {
    if (n > data_.size() - pos_) {
      return absl::DataLossError(absl::StrCat(prefix_, "corrupt: ", what, " needs ", n,
                                              " bytes but only ", data_.size() - pos_, " remain"));
    }
    return absl::OkStatus();
  }
  absl::StatusOr<uint32_t> U32(absl::string_view what) {
    JUMPFLOW_RETURN_IF_ERROR(Need(4, what));
    uint32_t x = 0;
    for (int i = 0; i < 4; ++i) x |= static_cast<uint32_t>(Byte(pos_ + i)) << (8 * i);
    pos_ += 4;
    return x;
  }
  absl::StatusOr<uint64_t> U64(absl::string_view what) {
    JUMPFLOW_RETURN_IF_ERROR(Need(8, what));
    uint64_t x = 0;
    for (int i = 0; i < 8; ++i) x |= static_cast<uint64_t>(Byte(pos_ + i)) << (8 * i);
    pos_ += 8;
    return x;
  }
  absl::StatusOr<absl::string_view> Bytes(uint64_t n, absl::string_view what) {
    JUMPFLOW_RETURN_IF_ERROR(Need(n, what));
    absl::string_view s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  absl::StatusOr<std::string> String(absl::string_view what) {
    JUMPFLOW_ASSIGN_OR_RETURN(uint64_t n, U64(what));
    JUMPFLOW_ASSIGN_OR_RETURN(absl::string_view s, Bytes(n, what));
    return std::string(s);
  }
  absl::StatusOr<std::vector<float>> Floats(uint64_t count, absl::string_view what) {
    if (count > (data_.size() - pos_) / sizeof(float)) {
      return absl::DataLossError(absl::StrCat(prefix_, "corrupt: ", what, " claims ", count,
                                              " floats but only ", data_.size() - pos_,
                                              " bytes remain"));
    }
    std::vector<float> v(count);
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(v.data(), data_.data() + pos_, count * sizeof(float));
      pos_ += count * sizeof(float);
    } else {
      for (uint64_t i = 0; i < count; ++i) {
        JUMPFLOW_ASSIGN_OR_RETURN(uint32_t bits, U32(what));
        v[i] = std::bit_cast<float>(bits);
      }
    }
    return v;
  }
  bool done() const { return pos_ == data_.size(); }

 private:
  uint8_t Byte(size_t i) const { return static_cast<uint8_t>(data_[i]); }

  absl::string_view data_;
  std::string prefix_;
  size_t pos_ = 0;
};

int64_t ExpectedParameterCount(const TransformerConfig& config) {
  const std::vector<ParameterGroup> groups = TransformerParameterGroups(config);
  return groups.back().offset + groups.back().size;
}

}  // namespace

uint64_t Fnv1a64(absl::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : bytes) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

absl::Status ValidateCheckpoint(const Checkpoint& ckpt) {
  JUMPFLOW_RETURN_IF_ERROR(ckpt.model_config.Validate());
  if (ckpt.model_config.vocab_size != ckpt.vocab.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("model config vocab_size ", ckpt.model_config.vocab_size,
                     " differs from the vocabulary's size ", ckpt.vocab.size()));
  }
  const int64_t want = ExpectedParameterCount(ckpt.model_config);
  if (static_cast<int64_t>(ckpt.parameters.size()) != want) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint has ", ckpt.parameters.size(),
                                                   " parameters, the model config needs ", want));
  }
  if (ckpt.has_optimizer_state) {
    if (static_cast<int64_t>(ckpt.first_moment.size()) != want ||
        static_cast<int64_t>(ckpt.second_moment.size()) != want) {
      return absl::InvalidArgumentError(
          absl::StrCat("optimizer moments have ", ckpt.first_moment.size(), " and ",
                       ckpt.second_moment.size(), " entries, the model has ", want));
    }
    if (ckpt.optimizer_step < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("negative optimizer step ", ckpt.optimizer_step));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> EncodeCheckpoint(const Checkpoint& ckpt) {
  JUMPFLOW_RETURN_IF_ERROR(ValidateCheckpoint(ckpt));
  Writer payload;
  auto section = [&payload](uint32_t tag, const std::string& body) {
    payload.U32(tag);
    payload.U64(body.size());
    payload.Bytes(body);
  };
  section(kTagModelConfig, ckpt.model_config.Serialize());
  section(kTagVocabulary, ckpt.vocab.Serialize());
  {
    Writer w;
    w.U64(ckpt.settings.size());
    for (const auto& [key, value] : ckpt.settings) {
      w.String(key);
      w.String(value);
    }
    section(kTagSettings, w.str());
  }
  {
    Writer w;
    w.U64(ckpt.parameters.size());
    w.Floats(ckpt.parameters);
    section(kTagParameters, w.str());
  }
  if (ckpt.has_optimizer_state) {
    Writer w;
    w.U64(static_cast<uint64_t>(ckpt.optimizer_step));
    w.U64(ckpt.first_moment.size());
    w.Floats(ckpt.first_moment);
    w.Floats(ckpt.second_moment);
    section(kTagOptimizer, w.str());
  }
  Writer file;
  file.Bytes(absl::string_view(kMagic, sizeof(kMagic)));
  file.U32(kCheckpointVersion);
  file.U32(0);
  file.U64(payload.str().size());
  file.U64(Fnv1a64(payload.str()));
  file.Bytes(payload.str());
  return std::move(file.str());
}

absl::StatusOr<Checkpoint> DecodeCheckpoint(absl::string_view bytes, absl::string_view name) {
  const std::string prefix = absl::StrCat("checkpoint '", name, "': ");
  if (bytes.size() < kHeaderBytes) {
    return absl::DataLossError(absl::StrCat(prefix, "truncated: ", bytes.size(),
                                            " bytes, shorter than the ", kHeaderBytes,
                                            "-byte header"));
  }
  if (std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError(absl::StrCat(prefix, "not a jumpflow checkpoint (bad magic)"));
  }
  Reader header(bytes.substr(sizeof(kMagic), kHeaderBytes - sizeof(kMagic)), prefix);
  JUMPFLOW_ASSIGN_OR_RETURN(const uint32_t version, header.U32("version"));
  JUMPFLOW_ASSIGN_OR_RETURN(const uint32_t reserved, header.U32("reserved"));
  JUMPFLOW_ASSIGN_OR_RETURN(const uint64_t payload_size, header.U64("payload size"));
  JUMPFLOW_ASSIGN_OR_RETURN(const uint64_t stored_sum, header.U64("checksum"));
  if (version != kCheckpointVersion) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "unsupported format version ", version,
                                                   " (this build reads version ",
                                                   kCheckpointVersion, ")"));
  }
  if (reserved != 0) {
    return absl::DataLossError(
        absl::StrCat(prefix, "corrupt header (reserved field ", reserved, ")"));
  }
  const uint64_t have = bytes.size() - kHeaderBytes;
  if (have < payload_size) {
    return absl::DataLossError(absl::StrCat(prefix, "truncated: the header promises ", payload_size,
                                            " payload bytes, the file has ", have));
  }
  if (have > payload_size) {
    return absl::DataLossError(absl::StrCat(prefix, "corrupt: ", have - payload_size,
                                            " unexpected bytes after the ", payload_size,
                                            "-byte payload"));
  }
  const absl::string_view payload = bytes.substr(kHeaderBytes);
  const uint64_t sum = Fnv1a64(payload);
  if (sum != stored_sum) {
    return absl::DataLossError(
        absl::StrCat(prefix, "checksum mismatch (stored ", absl::Hex(stored_sum, absl::kZeroPad16),
                     ", computed ", absl::Hex(sum, absl::kZeroPad16), "): the file is corrupt"));
  }

  Checkpoint ckpt;
  bool seen[6] = {false, false, false, false, false, false};
  Reader r(payload, prefix);
  while (!r.done()) {
    JUMPFLOW_ASSIGN_OR_RETURN(const uint32_t tag, r.U32("section tag"));
    JUMPFLOW_ASSIGN_OR_RETURN(const uint64_t length, r.U64("section length"));
    JUMPFLOW_ASSIGN_OR_RETURN(const absl::string_view body,
                              r.Bytes(length, absl::StrCat("section ", tag)));
    if (tag < kTagModelConfig || tag > kTagOptimizer) continue;  // a later version's section
    if (seen[tag]) {
      return absl::DataLossError(absl::StrCat(prefix, "corrupt: section ", tag, " repeated"));
    }
    seen[tag] = true;
    auto wrap = [&prefix](const absl::Status& s, absl::string_view what) {
      return absl::DataLossError(absl::StrCat(prefix, "bad ", what, ": ", s.message()));
    };
    Reader sr(body, prefix);
    switch (tag) {
      case kTagModelConfig: {
        absl::StatusOr<TransformerConfig> c = TransformerConfig::Parse(body);
        if (!c.ok()) return wrap(c.status(), "model config");
        ckpt.model_config = *c;
        break;
      }
      case kTagVocabulary: {
        absl::StatusOr<Vocabulary> v = Vocabulary::Parse(body);
        if (!v.ok()) return wrap(v.status(), "vocabulary");
        ckpt.vocab = *std::move(v);
        break;
      }
      case kTagSettings: {
        JUMPFLOW_ASSIGN_OR_RETURN(const uint64_t count, sr.U64("settings count"));
        for (uint64_t i = 0; i < count; ++i) {
          JUMPFLOW_ASSIGN_OR_RETURN(std::string key, sr.String("settings key"));
          JUMPFLOW_ASSIGN_OR_RETURN(std::string value, sr.String("settings value"));
          ckpt.settings[std::move(key)] = std::move(value);
        }
        break;
      }
      case kTagParameters: {
        JUMPFLOW_ASSIGN_OR_RETURN(const uint64_t count, sr.U64("parameter count"));
        JUMPFLOW_ASSIGN_OR_RETURN(ckpt.parameters, sr.Floats(count, "parameters"));
        break;
      }
      case kTagOptimizer: {
        JUMPFLOW_ASSIGN_OR_RETURN(const uint64_t step, sr.U64("optimizer step"));
        JUMPFLOW_ASSIGN_OR_RETURN(const uint64_t count, sr.U64("optimizer size"));
        ckpt.has_optimizer_state = true;
        ckpt.optimizer_step = static_cast<int64_t>(step);
        JUMPFLOW_ASSIGN_OR_RETURN(ckpt.first_moment, sr.Floats(count, "first moment"));
        JUMPFLOW_ASSIGN_OR_RETURN(ckpt.second_moment, sr.Floats(count, "second moment"));
        break;
      }
    }
    if (!sr.done() && tag != kTagModelConfig && tag != kTagVocabulary) {
      return absl::DataLossError(
          absl::StrCat(prefix, "corrupt: section ", tag, " has trailing bytes"));
    }
  }
  const char* names[] = {"", "model config", "vocabulary", "settings", "parameters"};
  for (uint32_t tag = kTagModelConfig; tag <= kTagParameters; ++tag) {
    if (!seen[tag]) {
      return absl::DataLossError(absl::StrCat(prefix, "missing section '", names[tag], "'"));
    }
  }
  if (absl::Status s = ValidateCheckpoint(ckpt); !s.ok()) {
    return absl::DataLossError(absl::StrCat(prefix, "inconsistent: ", s.message()));
  }
  return ckpt;
}

absl::Status SaveCheckpoint(const std::string& path, const Checkpoint& checkpoint) {
  absl::StatusOr<std::string> bytes = EncodeCheckpoint(checkpoint);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint '", path, "': ", bytes.status().message()));
  }
  return WriteFileAtomically(path, *bytes);
}

absl::StatusOr<Checkpoint> LoadCheckpoint(const std::string& path) {
  JUMPFLOW_ASSIGN_OR_RETURN(const std::string bytes, ReadFile(path));
  return DecodeCheckpoint(bytes, path);
}

}  // namespace jumpflow
