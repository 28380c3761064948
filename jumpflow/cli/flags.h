// @brief A small command-line flag parser for the jumpflow subcommands.
//
// Flags are declared per subcommand with a default and a help line; parsing
// accepts "--name value" and "--name=value" (and bare "--name" for booleans)
// and rejects unknown flags, missing values and malformed numbers with one
// line naming the flag.
//
// Example:
//   FlagSet flags("align", "Align word pairs and apply the edits.");
//   flags.Add("data", "/usr/share/dict/words", "one sequence per line");
//   flags.Add("num", "1000", "number of pairs");
//   JUMPFLOW_RETURN_IF_ERROR(flags.Parse(argc, argv));
//   JUMPFLOW_ASSIGN_OR_RETURN(int64_t num, flags.GetInt("num"));
#ifndef JUMPFLOW_CLI_FLAGS_H_
#define JUMPFLOW_CLI_FLAGS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace jumpflow::cli {

// FlagSet holds the declared flags of one subcommand and their values.
class FlagSet {
 public:
  FlagSet(std::string command, std::string summary)
      : command_(std::move(command)), summary_(std::move(summary)) {}

  // Add declares a valued flag.
  void Add(const std::string& name, const std::string& default_value, const std::string& help);
  // AddBool declares a boolean flag (default false; "--name" sets it).
  void AddBool(const std::string& name, const std::string& help);

  // Parse reads argv[first..argc). "--help" sets help_requested().
  absl::Status Parse(int argc, char** argv, int first = 2);

  bool help_requested() const { return help_; }
  // Help renders the usage text.
  std::string Help() const;

  // Was says whether the user gave the flag explicitly.
  bool Was(const std::string& name) const;
  std::string Get(const std::string& name) const;
  absl::StatusOr<int64_t> GetInt(const std::string& name, int64_t min_value = INT64_MIN) const;
  absl::StatusOr<double> GetDouble(const std::string& name) const;
  bool GetBool(const std::string& name) const;

 private:
  struct Flag {
    std::string value;
    std::string help;
    bool is_bool = false;
    bool set = false;
  };
  std::string command_, summary_;
  std::map<std::string, Flag> flags_;
  std::vector<std::string> order_;
  bool help_ = false;
};

// RunMain parses argv[first..argc) into `flags`; with --help it prints the
// help and returns 0, otherwise it calls `run`. A parse or run error prints
// one line "PROGRAM: message" on stderr and returns 1.
int RunMain(FlagSet& flags, int argc, char** argv, int first, const std::string& program,
            const std::function<absl::Status(const FlagSet&)>& run);

}  // namespace jumpflow::cli

#endif  // JUMPFLOW_CLI_FLAGS_H_
