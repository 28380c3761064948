// @brief Vocabulary implementation.
#include "sequences/vocabulary.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "jumpflow/status_macros.h"
#include "sequences/file_util.h"

namespace jumpflow {
namespace {

constexpr const char* kSpecialNames[Vocabulary::kNumSpecials] = {"<mask>", "<bos>", "<eos>",
                                                                 "<pad>", "<eps>"};

}  // namespace

namespace detail {
int Utf8Length(absl::string_view s) {
  if (s.empty()) return 0;
  const auto c = static_cast<unsigned char>(s[0]);
  int n = 0;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
  } else {
    return 0;
  }
  if (s.size() < static_cast<size_t>(n)) return 0;
  for (int i = 1; i < n; ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) return 0;
  }
  return n;
}
}  // namespace detail

Vocabulary::Vocabulary(std::vector<std::string> user_symbols, Kind kind) : kind_(kind) {
  symbols_.reserve(user_symbols.size() + kNumSpecials);
  for (const char* name : kSpecialNames) symbols_.emplace_back(name);
  for (auto& s : user_symbols) symbols_.push_back(std::move(s));
  ids_.reserve(symbols_.size());
  for (size_t i = 0; i < symbols_.size(); ++i) ids_[symbols_[i]] = static_cast<Token>(i);
}

absl::StatusOr<Vocabulary> Vocabulary::FromSymbols(std::vector<std::string> symbols, Kind kind) {
  if (symbols.empty()) return absl::InvalidArgumentError("vocabulary has no symbols");
  absl::flat_hash_map<std::string, size_t> seen;
  for (size_t i = 0; i < symbols.size(); ++i) {
    const std::string& s = symbols[i];
    if (s.empty()) return absl::InvalidArgumentError(absl::StrCat("symbol ", i, " is empty"));
    for (const char* name : kSpecialNames) {
      if (s == name) {
        return absl::InvalidArgumentError(
            absl::StrCat("symbol '", s, "' is reserved for a special token"));
      }
    }
    if (kind == Kind::kCharacter && detail::Utf8Length(s) != static_cast<int>(s.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat("character symbol '", s, "' is not exactly one UTF-8 code point"));
    }
    if (kind == Kind::kToken) {
      for (char c : s) {
        if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
          return absl::InvalidArgumentError(
              absl::StrCat("token symbol '", s, "' contains whitespace"));
        }
      }
    }
    auto [it, inserted] = seen.emplace(s, i);
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat("duplicate symbol '", s, "' at positions ", it->second, " and ", i));
    }
  }
  return Vocabulary(std::move(symbols), kind);
}

absl::StatusOr<Vocabulary> Vocabulary::FromCharacters(absl::string_view text) {
  std::vector<std::string> symbols;
  absl::flat_hash_map<std::string, bool> seen;
  for (size_t i = 0; i < text.size();) {
    const int n = detail::Utf8Length(text.substr(i));
    if (n == 0) {
      return absl::InvalidArgumentError(absl::StrCat("invalid UTF-8 at byte offset ", i));
    }
    std::string cp(text.substr(i, static_cast<size_t>(n)));
    i += static_cast<size_t>(n);
    if (cp == "\n" || cp == "\r") continue;
    if (seen.emplace(cp, true).second) symbols.push_back(std::move(cp));
  }
  if (symbols.empty()) return absl::InvalidArgumentError("text has no characters");
  // UTF-8 byte order equals code point order.
  std::sort(symbols.begin(), symbols.end());
  return Vocabulary(std::move(symbols), Kind::kCharacter);
}

absl::StatusOr<Vocabulary> Vocabulary::FromTextFile(const std::string& path) {
  JUMPFLOW_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  if (text.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": file is empty"));
  auto vocab = FromCharacters(text);
  if (!vocab.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", vocab.status().message()));
  }
  return vocab;
}

absl::StatusOr<Vocabulary> Vocabulary::FromTokenFile(const std::string& path) {
  JUMPFLOW_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  std::vector<std::string> symbols;
  absl::flat_hash_map<std::string, size_t> seen;
  size_t line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    auto [it, inserted] = seen.emplace(std::string(line), line_no);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": duplicate symbol '",
                                                     line, "' (first on line ", it->second, ")"));
    }
    symbols.emplace_back(line);
  }
  if (symbols.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no symbols"));
  auto vocab = FromSymbols(std::move(symbols), Kind::kToken);
  if (!vocab.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", vocab.status().message()));
  }
  return vocab;
}

std::string Vocabulary::Serialize() const {
  std::string out = kind_ == Kind::kCharacter ? "character\n" : "token\n";
  for (size_t i = kNumSpecials; i < symbols_.size(); ++i) {
    // Newline symbols cannot exist (excluded above), so one per line is safe.
    absl::StrAppend(&out, symbols_[i], "\n");
  }
  return out;
}

absl::StatusOr<Vocabulary> Vocabulary::Parse(absl::string_view serialized) {
  std::vector<std::string> lines = absl::StrSplit(serialized, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  if (lines.empty()) return absl::InvalidArgumentError("serialized vocabulary is empty");
  Kind kind;
  if (lines[0] == "character") {
    kind = Kind::kCharacter;
  } else if (lines[0] == "token") {
    kind = Kind::kToken;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("serialized vocabulary has unknown kind '", lines[0], "'"));
  }
  lines.erase(lines.begin());
  return FromSymbols(std::move(lines), kind);
}

absl::StatusOr<Token> Vocabulary::Id(absl::string_view symbol) const {
  auto it = ids_.find(symbol);
  if (it == ids_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown symbol '", symbol, "'"));
  }
  return it->second;
}

std::string QuoteText(absl::string_view text, size_t max_bytes) {
  size_t n = std::min(text.size(), max_bytes);
  // Cut before a UTF-8 continuation byte (at most 3 back): a code point cut
  // in two would come out escaped.
  for (int back = 0;
       back < 3 && n > 0 && n < text.size() && (static_cast<unsigned char>(text[n]) & 0xc0) == 0x80;
       ++back) {
    --n;
  }
  std::string out = "'";
  for (size_t i = 0; i < n;) {
    const size_t len = static_cast<size_t>(detail::Utf8Length(text.substr(i, n - i)));
    if (len == 0) {  // not valid UTF-8: this byte as \xNN
      absl::StrAppend(&out, "\\x", absl::Hex(static_cast<unsigned char>(text[i]), absl::kZeroPad2));
      ++i;
    } else {  // a code point: escaped if it is a control character
      absl::StrAppend(&out, absl::Utf8SafeCHexEscape(text.substr(i, len)));
      i += len;
    }
  }
  return absl::StrCat(out, "'", n < text.size() ? "..." : "");
}

absl::StatusOr<std::vector<Token>> Vocabulary::Encode(absl::string_view text) const {
  std::vector<Token> ids;
  if (kind_ == Kind::kCharacter) {
    ids.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      const int n = detail::Utf8Length(text.substr(i));
      if (n == 0) {
        return absl::InvalidArgumentError(absl::StrCat("invalid UTF-8 at byte offset ", i));
      }
      const absl::string_view cp = text.substr(i, static_cast<size_t>(n));
      auto it = ids_.find(cp);
      if (it == ids_.end() || it->second < kNumSpecials) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown symbol ", QuoteText(cp), " at byte offset ", i));
      }
      ids.push_back(it->second);
      i += static_cast<size_t>(n);
    }
    return ids;
  }
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && absl::ascii_isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i == text.size()) break;
    size_t j = i;
    while (j < text.size() && !absl::ascii_isspace(static_cast<unsigned char>(text[j]))) ++j;
    const absl::string_view word = text.substr(i, j - i);
    auto it = ids_.find(word);
    if (it == ids_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown symbol ", QuoteText(word), " at byte offset ", i));
    }
    ids.push_back(it->second);
    i = j;
  }
  return ids;
}

std::string Vocabulary::Decode(std::span<const Token> ids) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (kind_ == Kind::kToken && i > 0) out.push_back(' ');
    out += Contains(ids[i]) ? symbols_[static_cast<size_t>(ids[i])] : std::string("<?>");
  }
  return out;
}

}  // namespace jumpflow
