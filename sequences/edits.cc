// @brief Simultaneous edit application, single sequence and batched.
#include "sequences/edits.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "jumpflow/status_macros.h"
#include "tbb/blocked_range.h"
#include "tbb/parallel_for.h"

namespace jumpflow {
namespace {

// Order key of an edit in the output: gap j (2j) comes before position j
// (2j + 1).
inline int64_t SortKey(const Edit& e) {
  return e.kind == EditKind::kInsert ? 2 * int64_t{e.index} : 2 * int64_t{e.index} + 1;
}

// CheckIndices checks every edit against length n and the vocabulary size and
// returns the output length. Position conflicts are detected on the key-sorted list.
absl::StatusOr<int64_t> CheckIndices(std::span<const Edit> edits, int64_t n, int32_t vocab_size) {
  int64_t out = n;
  for (size_t k = 0; k < edits.size(); ++k) {
    const Edit& e = edits[k];
    const int64_t limit = e.kind == EditKind::kInsert ? n : n - 1;
    if (e.index < 0 || e.index > limit) {
      return absl::InvalidArgumentError(
          absl::StrCat("edit ", k, " ", ToString(e), " is out of range for a sequence of length ",
                       n));
    }
    if (e.kind != EditKind::kDelete && (e.token < 0 || e.token >= vocab_size)) {
      return absl::InvalidArgumentError(absl::StrCat("edit ", k, " ", ToString(e),
                                                     " has a token outside [0, ", vocab_size, ")"));
    }
    if (e.kind == EditKind::kInsert) ++out;
    if (e.kind == EditKind::kDelete) --out;
  }
  return out;
}

// Writes the edited sequence into `out` (size = output length). `sorted`
// holds the edits stably sorted by SortKey.
absl::Status WriteEdited(std::span<const Token> x, std::span<const Edit> sorted, Token* out) {
  const int64_t n = static_cast<int64_t>(x.size());
  size_t k = 0;
  int64_t w = 0;
  for (int64_t j = 0; j <= n; ++j) {
    while (k < sorted.size() && sorted[k].kind == EditKind::kInsert && sorted[k].index == j) {
      out[w++] = sorted[k++].token;
    }
    if (j == n) break;
    if (k < sorted.size() && sorted[k].kind != EditKind::kInsert && sorted[k].index == j) {
      const Edit& e = sorted[k++];
      if (k < sorted.size() && sorted[k].kind != EditKind::kInsert && sorted[k].index == j) {
        return absl::InvalidArgumentError(absl::StrCat("conflicting edits ", ToString(e), " and ",
                                                       ToString(sorted[k]), " at position ", j));
      }
      if (e.kind == EditKind::kSubstitute) out[w++] = e.token;
    } else {
      out[w++] = x[static_cast<size_t>(j)];
    }
  }
  return absl::OkStatus();
}

bool IsSorted(std::span<const Edit> edits) {
  for (size_t k = 1; k < edits.size(); ++k) {
    if (SortKey(edits[k]) < SortKey(edits[k - 1])) return false;
  }
  return true;
}

// ApplyInto applies edits to x, writing into `out`, which has the output
// length. `scratch` is reused for sorting when the edits are not in order.
absl::Status ApplyInto(std::span<const Token> x, std::span<const Edit> edits, Token* out,
                       std::vector<Edit>& scratch) {
  if (IsSorted(edits)) return WriteEdited(x, edits, out);
  scratch.assign(edits.begin(), edits.end());
  std::stable_sort(scratch.begin(), scratch.end(),
                   [](const Edit& a, const Edit& b) { return SortKey(a) < SortKey(b); });
  return WriteEdited(x, scratch, out);
}

}  // namespace

std::string ToString(const Edit& edit, const Vocabulary* vocab) {
  auto tok = [&](Token t) {
    return vocab != nullptr && vocab->Contains(t) ? vocab->Symbol(t) : absl::StrCat(t);
  };
  switch (edit.kind) {
    case EditKind::kInsert:
      return absl::StrCat("ins(", edit.index, ",", tok(edit.token), ")");
    case EditKind::kDelete:
      return absl::StrCat("del(", edit.index, ")");
    case EditKind::kSubstitute:
      return absl::StrCat("sub(", edit.index, ",", tok(edit.token), ")");
  }
  return "?";
}

absl::StatusOr<std::vector<Token>> ApplyEdits(std::span<const Token> x,
                                              std::span<const Edit> edits) {
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t out_len,
                            CheckIndices(edits, static_cast<int64_t>(x.size()),
                                         std::numeric_limits<int32_t>::max()));
  std::vector<Token> out(static_cast<size_t>(out_len));
  std::vector<Edit> scratch;
  JUMPFLOW_RETURN_IF_ERROR(ApplyInto(x, edits, out.data(), scratch));
  return out;
}

absl::StatusOr<SequenceBatch> ApplyEditsBatch(const SequenceBatch& batch,
                                              std::span<const Edit> edits,
                                              std::span<const int64_t> edit_offsets,
                                              int32_t vocab_size) {
  const int64_t num = batch.num_sequences();
  if (static_cast<int64_t>(edit_offsets.size()) != num + 1 || edit_offsets[0] != 0 ||
      edit_offsets[static_cast<size_t>(num)] != static_cast<int64_t>(edits.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "edit_offsets must have ", num + 1, " entries from 0 to ", edits.size(), ", got ",
        edit_offsets.size(), " entries"));
  }
  for (int64_t b = 0; b < num; ++b) {
    if (edit_offsets[b + 1] < edit_offsets[b]) {
      return absl::InvalidArgumentError(absl::StrCat("edit_offsets decrease at sequence ", b));
    }
  }
  auto edits_of = [&](int64_t b) {
    return edits.subspan(static_cast<size_t>(edit_offsets[b]),
                         static_cast<size_t>(edit_offsets[b + 1] - edit_offsets[b]));
  };

  // Pass 1: output lengths. Pass 2: write at prefix-summed offsets. The error
  // reported is the one of the lowest failing sequence, whatever the threads.
  std::vector<int64_t> offsets(static_cast<size_t>(num) + 1, 0);
  std::atomic<int64_t> first_bad{std::numeric_limits<int64_t>::max()};
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, num, 256), [&](const auto& range) {
    for (int64_t b = range.begin(); b != range.end(); ++b) {
      auto len = CheckIndices(edits_of(b), batch.length(b), vocab_size);
      if (len.ok()) {
        offsets[static_cast<size_t>(b) + 1] = *len;
      } else {
        int64_t cur = first_bad.load();
        while (b < cur && !first_bad.compare_exchange_weak(cur, b)) {
        }
      }
    }
  });
  auto sequence_error = [&](int64_t b, const absl::Status& s) {
    return absl::InvalidArgumentError(absl::StrCat("sequence ", b, ": ", s.message()));
  };
  if (first_bad.load() != std::numeric_limits<int64_t>::max()) {
    const int64_t b = first_bad.load();
    return sequence_error(b, CheckIndices(edits_of(b), batch.length(b), vocab_size).status());
  }
  std::partial_sum(offsets.begin(), offsets.end(), offsets.begin());
  std::vector<Token> tokens(static_cast<size_t>(offsets.back()));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, num, 256), [&](const auto& range) {
    std::vector<Edit> scratch;
    for (int64_t b = range.begin(); b != range.end(); ++b) {
      absl::Status s = ApplyInto(batch.sequence(b), edits_of(b),
                                 tokens.data() + offsets[static_cast<size_t>(b)], scratch);
      if (!s.ok()) {
        int64_t cur = first_bad.load();
        while (b < cur && !first_bad.compare_exchange_weak(cur, b)) {
        }
      }
    }
  });
  if (first_bad.load() != std::numeric_limits<int64_t>::max()) {
    const int64_t b = first_bad.load();
    std::vector<Token> tmp(static_cast<size_t>(offsets[b + 1] - offsets[b]));
    std::vector<Edit> scratch;
    return sequence_error(b, ApplyInto(batch.sequence(b), edits_of(b), tmp.data(), scratch));
  }
  std::vector<double> times(batch.times().begin(), batch.times().end());
  return SequenceBatch::FromParts(std::move(tokens), std::move(offsets), std::move(times),
                                  vocab_size);
}

std::vector<Token> CorruptSequence(std::span<const Token> x, int count, int32_t vocab_size,
                                   PhiloxStream& rng) {
  std::vector<Token> y(x.begin(), x.end());
  const auto num_user = static_cast<uint32_t>(vocab_size - Vocabulary::kNumSpecials);
  for (int k = 0; k < count; ++k) {
    const Token tok = Vocabulary::kNumSpecials + static_cast<Token>(rng.UniformInt(num_user));
    const uint32_t kind = y.size() <= 1 ? 0 : rng.UniformInt(3);
    if (kind == 0) {
      y.insert(y.begin() + rng.UniformInt(static_cast<uint32_t>(y.size() + 1)), tok);
    } else if (kind == 1) {
      y.erase(y.begin() + rng.UniformInt(static_cast<uint32_t>(y.size())));
    } else {
      y[rng.UniformInt(static_cast<uint32_t>(y.size()))] = tok;
    }
  }
  return y;
}

}  // namespace jumpflow
