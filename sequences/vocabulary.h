// @brief Vocabulary: symbols <-> token ids, with fixed reserved specials.
//
// Every vocabulary starts with five reserved specials at fixed ids
// (kMask = 0, kBos = 1, kEos = 2, kPad = 3, kEps = 4); user symbols follow
// from id kNumSpecials on, in the order given (or sorted, for character sets).
// A character vocabulary treats each UTF-8 code point as one symbol; a token
// vocabulary treats whitespace-separated words as symbols.
//
// Example:
//   JUMPFLOW_ASSIGN_OR_RETURN(Vocabulary vocab,
//                             Vocabulary::FromCharacters("abcdefghijklmnopqrstuvwxyz"));
//   JUMPFLOW_ASSIGN_OR_RETURN(std::vector<int32_t> ids, vocab.Encode("hello"));
//   std::string back = vocab.Decode(ids);  // "hello"
#ifndef JUMPFLOW_SEQUENCES_VOCABULARY_H_
#define JUMPFLOW_SEQUENCES_VOCABULARY_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace jumpflow {

// Token ids are int32 everywhere in jumpflow.
using Token = int32_t;

// Vocabulary maps symbols to dense ids [0, size()). Immutable once built;
// cheap to copy relative to the data it encodes.
class Vocabulary {
 public:
  // Reserved special ids, identical in every vocabulary.
  static constexpr Token kMask = 0;
  static constexpr Token kBos = 1;
  static constexpr Token kEos = 2;
  static constexpr Token kPad = 3;
  static constexpr Token kEps = 4;
  static constexpr Token kNumSpecials = 5;

  // Kind says how Encode() splits text into symbols.
  enum class Kind : uint8_t { kCharacter = 0, kToken = 1 };

  // FromCharacters builds a character vocabulary from the distinct UTF-8 code
  // points of `text` (newlines and carriage returns excluded), sorted by
  // code point. Fails on invalid UTF-8 or when no symbol remains.
  static absl::StatusOr<Vocabulary> FromCharacters(absl::string_view text);

  // FromTextFile is FromCharacters over the contents of the file at `path`.
  static absl::StatusOr<Vocabulary> FromTextFile(const std::string& path);

  // FromSymbols builds a vocabulary of the given symbols in order. `kind`
  // fixes how Encode() splits text. Fails on duplicates, empty symbols,
  // symbols that collide with the specials' names, or (for kCharacter)
  // symbols that are not exactly one code point.
  static absl::StatusOr<Vocabulary> FromSymbols(std::vector<std::string> symbols, Kind kind);

  // FromTokenFile builds a token vocabulary from a file listing one symbol
  // per line (blank lines are skipped; duplicates are an error naming the
  // line).
  static absl::StatusOr<Vocabulary> FromTokenFile(const std::string& path);

  // Parse is the inverse of Serialize().
  static absl::StatusOr<Vocabulary> Parse(absl::string_view serialized);

  // Serialize returns a text form (kind line, then one symbol per line) that
  // Parse() turns back into an equal vocabulary.
  std::string Serialize() const;

  // size is the number of ids, specials included.
  int32_t size() const { return static_cast<int32_t>(symbols_.size()); }
  Kind kind() const { return kind_; }

  // Symbol returns the symbol of `id` (specials print as "<mask>", "<bos>",
  // "<eos>", "<pad>", "<eps>"). `id` must be in [0, size()).
  const std::string& Symbol(Token id) const { return symbols_[static_cast<size_t>(id)]; }

  // Id returns the id of `symbol` (special names included), or NotFound.
  absl::StatusOr<Token> Id(absl::string_view symbol) const;

  // Contains says whether `id` is a valid id of this vocabulary.
  bool Contains(Token id) const { return id >= 0 && id < size(); }

  // Encode splits `text` into symbols (code points, or whitespace-separated
  // words for kToken) and maps each to its id. An unknown symbol is an
  // InvalidArgument error naming the symbol and its byte offset.
  absl::StatusOr<std::vector<Token>> Encode(absl::string_view text) const;

  // Decode maps ids back to text: concatenated for kCharacter, joined by one
  // space for kToken. Ids outside the vocabulary print as "<?>".
  std::string Decode(std::span<const Token> ids) const;

  friend bool operator==(const Vocabulary& a, const Vocabulary& b) {
    return a.kind_ == b.kind_ && a.symbols_ == b.symbols_;
  }

 private:
  Vocabulary(std::vector<std::string> user_symbols, Kind kind);

  Kind kind_ = Kind::kCharacter;
  std::vector<std::string> symbols_;  // indexed by id, specials first
  absl::flat_hash_map<std::string, Token> ids_;
};

// QuoteText returns text in single quotes for an error message: control
// characters and bytes that are not valid UTF-8 as C hex escapes, cut after
// max_bytes bytes of input (then "..." follows the closing quote), so a
// binary file never reaches the terminal raw.
std::string QuoteText(absl::string_view text, size_t max_bytes = 40);

namespace detail {
// Utf8Length returns the byte length of the code point starting at `s[0]`,
// or 0 when `s` does not start with a valid UTF-8 sequence.
int Utf8Length(absl::string_view s);
}  // namespace detail

}  // namespace jumpflow

#endif  // JUMPFLOW_SEQUENCES_VOCABULARY_H_
