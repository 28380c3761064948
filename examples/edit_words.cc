// @brief Example: align a misspelled word to its correction and print the
// edits that turn one into the other.
//
//   build/examples/edit_words speling spelling
#include <cstdio>

#include "sequences/alignment.h"
#include "sequences/edits.h"
#include "sequences/vocabulary.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: edit_words SOURCE TARGET\n");
    return 2;
  }
  auto vocab = jumpflow::Vocabulary::FromCharacters(std::string(argv[1]) + argv[2]);
  if (!vocab.ok()) {
    std::fprintf(stderr, "edit_words: %s\n", std::string(vocab.status().message()).c_str());
    return 1;
  }
  auto x0 = vocab->Encode(argv[1]);
  auto x1 = vocab->Encode(argv[2]);
  auto alignment = jumpflow::MinEditAlignment(*x0, *x1, {}, /*seed=*/1);
  if (!alignment.ok()) {
    std::fprintf(stderr, "edit_words: %s\n", std::string(alignment.status().message()).c_str());
    return 1;
  }
  std::printf("z0: %s\nz1: %s\n", vocab->Decode(alignment->z0).c_str(),
              vocab->Decode(alignment->z1).c_str());
  const auto edits = jumpflow::AlignmentToEdits(*alignment);
  for (const auto& e : edits) std::printf("%s ", jumpflow::ToString(e, &*vocab).c_str());
  auto y = jumpflow::ApplyEdits(*x0, edits);
  std::printf("\napplied: %s\n", vocab->Decode(*y).c_str());
  return 0;
}
