// @brief Minimum-edit (Levenshtein) and random alignments.
#include "sequences/alignment.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "kernels/philox.h"

namespace jumpflow {
namespace {

// Traceback moves, stored as a bit set per DP cell.
constexpr uint8_t kDiag = 1, kUp = 2, kLeft = 4;  // up: delete x0[i-1]; left: insert x1[j-1]

absl::Status CheckNoEps(std::span<const Token> x, const char* name) {
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] == Vocabulary::kEps) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, "[", i, "] is the eps token, which sequences may not contain"));
    }
  }
  return absl::OkStatus();
}

// Chooses one of the set bits of `moves`, reproducibly from (seed, i, j).
uint8_t PickMove(uint8_t moves, uint64_t seed, size_t i, size_t j) {
  const int count = ((moves & kDiag) != 0) + ((moves & kUp) != 0) + ((moves & kLeft) != 0);
  if (count == 1) return moves;
  const Philox4x32 r = PhiloxDraw(seed, kPurposeAlignment, static_cast<uint32_t>(i),
                                  static_cast<uint32_t>(j), 0);
  int pick = static_cast<int>(r.v[0] % static_cast<uint32_t>(count));
  for (uint8_t bit : {kDiag, kUp, kLeft}) {
    if ((moves & bit) != 0 && pick-- == 0) return bit;
  }
  return kDiag;  // unreachable
}

}  // namespace

absl::StatusOr<Alignment> MinEditAlignment(std::span<const Token> x0, std::span<const Token> x1,
                                           const AlignmentCosts& costs, uint64_t seed) {
  for (double c : {costs.insert, costs.del, costs.substitute}) {
    if (!std::isfinite(c) || c < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("alignment costs must be finite and >= 0, got insert=", costs.insert,
                       " delete=", costs.del, " substitute=", costs.substitute));
    }
  }
  if (auto s = CheckNoEps(x0, "x0"); !s.ok()) return s;
  if (auto s = CheckNoEps(x1, "x1"); !s.ok()) return s;
  const size_t n = x0.size(), m = x1.size();
  if ((n + 1) * (m + 1) > (size_t{1} << 28)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequences of lengths ", n, " and ", m, " are too long to align"));
  }
  // Ties are compared with a tolerance relative to the cost scale, so sums
  // of non-integer costs in different orders still count as ties.
  const double tol = 1e-9 * std::max({1.0, costs.insert, costs.del, costs.substitute});
  std::vector<uint8_t> moves((n + 1) * (m + 1));
  std::vector<double> prev(m + 1), cur(m + 1);
  for (size_t j = 0; j <= m; ++j) {
    prev[j] = static_cast<double>(j) * costs.insert;
    moves[j] = j == 0 ? 0 : kLeft;
  }
  for (size_t i = 1; i <= n; ++i) {
    uint8_t* row = moves.data() + i * (m + 1);
    cur[0] = static_cast<double>(i) * costs.del;
    row[0] = kUp;
    const Token a = x0[i - 1];
    for (size_t j = 1; j <= m; ++j) {
      const double diag = prev[j - 1] + (a == x1[j - 1] ? 0.0 : costs.substitute);
      const double up = prev[j] + costs.del;
      const double left = cur[j - 1] + costs.insert;
      const double best = std::min({diag, up, left});
      cur[j] = best;
      row[j] = static_cast<uint8_t>((diag <= best + tol ? kDiag : 0) |
                                    (up <= best + tol ? kUp : 0) |
                                    (left <= best + tol ? kLeft : 0));
    }
    std::swap(prev, cur);
  }
  Alignment al;
  al.z0.reserve(n + m);
  al.z1.reserve(n + m);
  size_t i = n, j = m;
  while (i > 0 || j > 0) {
    const uint8_t move = PickMove(moves[i * (m + 1) + j], seed, i, j);
    if (move == kDiag) {
      al.z0.push_back(x0[--i]);
      al.z1.push_back(x1[--j]);
    } else if (move == kUp) {
      al.z0.push_back(x0[--i]);
      al.z1.push_back(Vocabulary::kEps);
    } else {
      al.z0.push_back(Vocabulary::kEps);
      al.z1.push_back(x1[--j]);
    }
  }
  std::reverse(al.z0.begin(), al.z0.end());
  std::reverse(al.z1.begin(), al.z1.end());
  return al;
}

absl::StatusOr<Alignment> RandomAlignment(std::span<const Token> x0, std::span<const Token> x1,
                                          uint64_t seed) {
  if (auto s = CheckNoEps(x0, "x0"); !s.ok()) return s;
  if (auto s = CheckNoEps(x1, "x1"); !s.ok()) return s;
  PhiloxStream rng(seed, kPurposeAlignment, 0xFFFFFFFFu);
  Alignment al;
  size_t i = 0, j = 0;
  const size_t n = x0.size(), m = x1.size();
  while (i < n || j < m) {
    uint8_t options[3];
    uint32_t count = 0;
    if (i < n && j < m) options[count++] = kDiag;
    if (i < n) options[count++] = kUp;
    if (j < m) options[count++] = kLeft;
    const uint8_t move = options[rng.UniformInt(count)];
    al.z0.push_back(move == kLeft ? Vocabulary::kEps : x0[i++]);
    al.z1.push_back(move == kUp ? Vocabulary::kEps : x1[j++]);
  }
  return al;
}

double AlignmentCost(const Alignment& alignment, const AlignmentCosts& costs) {
  double total = 0;
  for (size_t k = 0; k < alignment.z0.size(); ++k) {
    const Token a = alignment.z0[k], b = alignment.z1[k];
    if (a == Vocabulary::kEps) {
      total += costs.insert;
    } else if (b == Vocabulary::kEps) {
      total += costs.del;
    } else if (a != b) {
      total += costs.substitute;
    }
  }
  return total;
}

absl::Status ValidateAlignment(const Alignment& alignment, std::span<const Token> x0,
                               std::span<const Token> x1) {
  if (alignment.z0.size() != alignment.z1.size()) {
    return absl::InvalidArgumentError(absl::StrCat("alignment rows differ in length: ",
                                                   alignment.z0.size(), " vs ",
                                                   alignment.z1.size()));
  }
  for (size_t k = 0; k < alignment.z0.size(); ++k) {
    if (alignment.z0[k] == Vocabulary::kEps && alignment.z1[k] == Vocabulary::kEps) {
      return absl::InvalidArgumentError(absl::StrCat("alignment column ", k, " is eps in both"));
    }
  }
  if (!std::ranges::equal(Strip(alignment.z0), x0) || !std::ranges::equal(Strip(alignment.z1), x1)) {
    return absl::InvalidArgumentError("alignment rows do not reduce to the aligned sequences");
  }
  return absl::OkStatus();
}

std::vector<Edit> AlignmentToEdits(const Alignment& alignment) {
  std::vector<Edit> edits;
  int32_t pos = 0;  // index in x0 of the next non-eps z0 token
  for (size_t k = 0; k < alignment.z0.size(); ++k) {
    const Token a = alignment.z0[k], b = alignment.z1[k];
    if (a == Vocabulary::kEps) {
      edits.push_back(Edit::Insert(pos, b));
      continue;
    }
    if (b == Vocabulary::kEps) {
      edits.push_back(Edit::Delete(pos));
    } else if (a != b) {
      edits.push_back(Edit::Substitute(pos, b));
    }
    ++pos;
  }
  return edits;
}

std::vector<Token> Strip(std::span<const Token> z) {
  std::vector<Token> out;
  out.reserve(z.size());
  for (Token t : z) {
    if (t != Vocabulary::kEps) out.push_back(t);
  }
  return out;
}

}  // namespace jumpflow
