// @brief The jumpflow command-line tool: dispatches to subcommands.
#include <cstdio>
#include <cstring>
#include <string>

#include "jumpflow/cli/commands.h"

namespace {

constexpr char kUsage[] =
    "usage: jumpflow COMMAND [flags]\n"
    "\n"
    "Discrete and jump-process flow models on sequences.\n"
    "\n"
    "commands:\n"
    "  align    corrupt words (or read pairs), align them and apply the edits\n"
    "  bench    accuracy against cost of the jump samplers on one model\n"
    "  sample   sample sequences with a jump sampler (Euler, tau-leap, adaptive, Gillespie)\n"
    "  train    train the reference transformer (DFM, Edit Flows, Branching Flows)\n"
    "\n"
    "Run 'jumpflow COMMAND --help' for the flags of a command.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  if (command == "align") return jumpflow::cli::RunAlign(argc, argv);
  if (command == "bench") return jumpflow::cli::RunBench(argc, argv);
  if (command == "sample") return jumpflow::cli::RunSample(argc, argv);
  if (command == "train") return jumpflow::cli::RunTrain(argc, argv);  // issue 8
  std::fprintf(stderr, "jumpflow: unknown command '%s' (see jumpflow --help)\n", command.c_str());
  return 2;
}
