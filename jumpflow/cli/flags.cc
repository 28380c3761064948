// @brief FlagSet implementation.
#include "jumpflow/cli/flags.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace jumpflow::cli {

void FlagSet::Add(const std::string& name, const std::string& default_value,
                  const std::string& help) {
  flags_[name] = Flag{default_value, help, false, false};
  order_.push_back(name);
}

void FlagSet::AddBool(const std::string& name, const std::string& help) {
  flags_[name] = Flag{"false", help, true, false};
  order_.push_back(name);
}

absl::Status FlagSet::Parse(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help_ = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument '", arg, "' (flags start with --)"));
    }
    std::string name = arg.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    auto it = flags_.find(name);
    if (it == flags_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name,
                                                     " (see jumpflow ", command_, " --help)"));
    }
    Flag& flag = it->second;
    if (flag.is_bool) {
      if (has_value && value != "true" && value != "false") {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " takes true or false, got '", value, "'"));
      }
      flag.value = has_value ? value : "true";
    } else if (has_value) {
      flag.value = value;
    } else {
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
      flag.value = argv[++i];
    }
    flag.set = true;
  }
  return absl::OkStatus();
}

std::string FlagSet::Help() const {
  std::string out = absl::StrCat("usage: jumpflow ", command_, " [flags]\n\n", summary_, "\n\n");
  for (const auto& name : order_) {
    const Flag& f = flags_.at(name);
    std::string left = absl::StrCat("  --", name, f.is_bool ? "" : " VALUE");
    if (left.size() < 26) left.resize(26, ' ');
    absl::StrAppend(&out, left, " ", f.help);
    if (!f.is_bool && !f.value.empty()) absl::StrAppend(&out, " (default: ", f.value, ")");
    absl::StrAppend(&out, "\n");
  }
  return out;
}

bool FlagSet::Was(const std::string& name) const { return flags_.at(name).set; }
std::string FlagSet::Get(const std::string& name) const { return flags_.at(name).value; }
bool FlagSet::GetBool(const std::string& name) const { return flags_.at(name).value == "true"; }

absl::StatusOr<int64_t> FlagSet::GetInt(const std::string& name, int64_t min_value) const {
  int64_t v = 0;
  const std::string& text = flags_.at(name).value;
  if (!absl::SimpleAtoi(text, &v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " expects an integer, got '", text, "'"));
  }
  if (v < min_value) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " must be >= ", min_value, ", got ", v));
  }
  return v;
}

absl::StatusOr<double> FlagSet::GetDouble(const std::string& name) const {
  double v = 0;
  const std::string& text = flags_.at(name).value;
  if (!absl::SimpleAtod(text, &v) || !std::isfinite(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " expects a finite number, got '", text, "'"));
  }
  return v;
}

int RunMain(FlagSet& flags, int argc, char** argv, int first, const std::string& program,
            const std::function<absl::Status(const FlagSet&)>& run) {
  absl::Status status = flags.Parse(argc, argv, first);
  if (status.ok() && flags.help_requested()) {
    std::printf("%s", flags.Help().c_str());
    return 0;
  }
  if (status.ok()) status = run(flags);
  if (status.ok()) return 0;
  std::fprintf(stderr, "%s: %s\n", program.c_str(), std::string(status.message()).c_str());
  return 1;
}

}  // namespace jumpflow::cli
