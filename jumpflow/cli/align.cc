// @brief `jumpflow align`: corrupt words with random edits (or read pairs),
// align each pair with the minimum-edit or a random alignment, turn the
// alignment into edits and apply them, checking that x0 becomes x1.
#include <chrono>
#include <cstdio>
#include <map>

#include "absl/strings/str_cat.h"
#include "jumpflow/cli/commands.h"
#include "jumpflow/cli/flags.h"
#include "jumpflow/status_macros.h"
#include "kernels/philox.h"
#include "sequences/alignment.h"
#include "sequences/edits.h"
#include "sequences/file_util.h"

namespace jumpflow::cli {
namespace {

absl::Status Align(const FlagSet& flags) {
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t num, flags.GetInt("num", 1));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t max_edits, flags.GetInt("max-edits", 0));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t show, flags.GetInt("show", 0));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t seed, flags.GetInt("seed", 0));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t max_length, flags.GetInt("max-length", 1));
  const std::string method = flags.Get("alignment");
  if (method != "min-edit" && method != "random") {
    return absl::InvalidArgumentError(
        absl::StrCat("--alignment must be min-edit or random, got '", method, "'"));
  }
  if (flags.Was("out")) JUMPFLOW_RETURN_IF_ERROR(CheckWritable(flags.Get("out")));
  DatasetOptions options;
  options.max_length = max_length;
  options.skip_unknown = flags.Was("chars") || flags.Get("chars") == "abcdefghijklmnopqrstuvwxyz";
  options.deduplicate = true;

  std::vector<SequencePair> pairs;
  Vocabulary vocab = *Vocabulary::FromCharacters("a");
  if (flags.Was("pairs")) {
    JUMPFLOW_ASSIGN_OR_RETURN(vocab, flags.Get("chars").empty()
                                         ? Vocabulary::FromTextFile(flags.Get("pairs"))
                                         : Vocabulary::FromCharacters(flags.Get("chars")));
    options.min_length = 0;
    JUMPFLOW_ASSIGN_OR_RETURN(pairs, LoadPairs(flags.Get("pairs"), vocab, options));
  } else {
    JUMPFLOW_ASSIGN_OR_RETURN(Dataset data,
                              LoadTextData(flags.Get("data"), flags.Get("chars"), "", options));
    vocab = data.vocab();
    const std::vector<int64_t> order = ShuffledIndices(data.size(), static_cast<uint64_t>(seed), 1);
    PhiloxStream rng(static_cast<uint64_t>(seed), 0, kPurposeUser);
    for (int64_t k = 0; k < num; ++k) {
      auto x1 = data.sequence(order[static_cast<size_t>(k % data.size())]);
      const int count = 1 + static_cast<int>(rng.UniformInt(static_cast<uint32_t>(max_edits)));
      pairs.push_back({CorruptSequence(x1, max_edits == 0 ? 0 : count, vocab.size(), rng),
                       std::vector<Token>(x1.begin(), x1.end())});
    }
  }

  const auto start = std::chrono::steady_clock::now();
  std::map<double, int64_t> histogram;
  int64_t exact = 0, total_edits = 0;
  std::string out;
  for (size_t k = 0; k < pairs.size(); ++k) {
    const auto& [x0, x1] = pairs[k];
    const uint64_t pair_seed = static_cast<uint64_t>(seed) * 1000003u + k;
    JUMPFLOW_ASSIGN_OR_RETURN(Alignment al, method == "random"
                                                ? RandomAlignment(x0, x1, pair_seed)
                                                : MinEditAlignment(x0, x1, {}, pair_seed));
    const std::vector<Edit> edits = AlignmentToEdits(al);
    JUMPFLOW_ASSIGN_OR_RETURN(std::vector<Token> y, ApplyEdits(x0, edits));
    exact += (y == x1);
    total_edits += static_cast<int64_t>(edits.size());
    ++histogram[AlignmentCost(al, {})];
    std::string line = absl::StrCat(vocab.Decode(x0), "\t", vocab.Decode(x1), "\t");
    for (size_t e = 0; e < edits.size(); ++e) {
      absl::StrAppend(&line, e ? " " : "", ToString(edits[e], &vocab));
    }
    if (static_cast<int64_t>(k) < show) {
      std::printf("  %-14s -> %-14s  %s\n", vocab.Decode(x0).c_str(), vocab.Decode(x1).c_str(),
                  line.substr(line.rfind('\t') + 1).c_str());
    }
    absl::StrAppend(&out, line, "\n");
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (flags.Was("out")) JUMPFLOW_RETURN_IF_ERROR(WriteFileAtomically(flags.Get("out"), out));

  std::printf("aligned %zu pairs (%s alignment) in %.3f s (%.0f pairs/s)\n", pairs.size(),
              method.c_str(), seconds, static_cast<double>(pairs.size()) / seconds);
  std::printf("edits applied: %lld; pairs where applying the edits to x0 gave x1: %lld / %zu\n",
              static_cast<long long>(total_edits), static_cast<long long>(exact), pairs.size());
  std::printf("edit distance histogram:");
  for (const auto& [d, c] : histogram) std::printf("  %g:%lld", d, static_cast<long long>(c));
  std::printf("\n");
  if (exact != static_cast<int64_t>(pairs.size())) {
    return absl::InternalError("some edit lists did not reproduce their target");
  }
  return absl::OkStatus();
}

}  // namespace

int RunAlign(int argc, char** argv) {
  FlagSet flags("align",
                "Corrupt dictionary words with random edits (or read TAB-separated pairs),\n"
                "align each pair, and apply the alignment's edits to the source.");
  flags.Add("data", "/usr/share/dict/words", "one sequence per line");
  flags.Add("pairs", "", "TAB-separated source/target pairs instead of corrupted --data");
  flags.Add("chars", "abcdefghijklmnopqrstuvwxyz",
            "character vocabulary; lines with other characters are skipped ('' = from file)");
  flags.Add("num", "1000", "number of pairs drawn from --data");
  flags.Add("max-edits", "3", "each source gets 1..max-edits random edits");
  flags.Add("max-length", "12", "longest sequence kept");
  flags.Add("alignment", "min-edit", "min-edit or random");
  flags.Add("seed", "1", "random seed (pairs, corruption, tie-breaking)");
  flags.Add("show", "10", "print this many alignments");
  flags.Add("out", "", "write 'source TAB target TAB edits' lines here (atomically)");
  return RunMain(flags, argc, argv, 2, "jumpflow align", Align);
}

}  // namespace jumpflow::cli
