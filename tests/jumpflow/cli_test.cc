// @brief `jumpflow bench`: the accuracy-against-cost table on the exact
// oracle of a small word list (CSV checked), and one-line errors for bad
// flags; how sample and bench load --data.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "jumpflow/cli/commands.h"
#include "jumpflow/cli/flags.h"
#include "jumpflow/cli/sampling.h"

namespace jumpflow::cli {
namespace {

std::string TempPath(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) / name).string();
}

// RunArgs runs `jumpflow COMMAND ARGS` through `run` (RunBench, ...),
// capturing stdout and stderr.
int RunArgs(int (*run)(int, char**), const char* command, std::vector<std::string> args,
            std::string* out, std::string* err) {
  args.insert(args.begin(), {"jumpflow", command});
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  ::testing::internal::CaptureStderr();
  ::testing::internal::CaptureStdout();
  const int rc = run(static_cast<int>(argv.size()), argv.data());
  *err = ::testing::internal::GetCapturedStderr();
  *out = ::testing::internal::GetCapturedStdout();
  return rc;
}

int RunBenchArgs(std::vector<std::string> args, std::string* out, std::string* err) {
  return RunArgs(RunBench, "bench", std::move(args), out, err);
}

std::string WordFile() {
  const std::string path = TempPath("bench_words.txt");
  std::ofstream f(path);
  for (const char* w : {"cat", "cart", "care", "dog", "dot", "door", "bird", "bear", "beard",
                        "horse", "house", "mouse", "moose", "goose", "geese", "cheese"}) {
    f << w << "\n";
  }
  return path;
}

TEST(BenchCliTest, OracleTableHasOneRowPerSettingAndExactGillespieStaysInTheData) {
  const std::string csv = TempPath("bench.csv");
  std::string out, err;
  ASSERT_EQ(
      RunBenchArgs({"--data", WordFile(), "--samplers", "euler,adaptive,gillespie", "--steps",
                    "2,64", "--tolerances", "0.1", "--num", "400", "--csv", csv, "--threads", "1"},
                   &out, &err),
      0)
      << err;
  EXPECT_NE(out.find("| euler | 2 steps |"), std::string::npos) << out;
  EXPECT_NE(out.find("| gillespie | exact |"), std::string::npos) << out;
  std::ifstream f(csv);
  std::string line;
  std::getline(f, line);
  EXPECT_EQ(line.rfind("sampler,setting,", 0), 0u) << line;
  std::map<std::string, double> in_data;  // "sampler/setting" -> in-data share
  int rows = 0;
  while (std::getline(f, line)) {
    const std::vector<std::string> c = absl::StrSplit(line, ',');
    ASSERT_EQ(c.size(), 10u) << line;
    double v = 0.0;
    ASSERT_TRUE(absl::SimpleAtod(c[7], &v)) << line;
    in_data[c[0] + "/" + c[1]] = v;
    ++rows;
  }
  EXPECT_EQ(rows, 4);
  // Exact sampling of the exact oracle never leaves the data.
  EXPECT_EQ(in_data["gillespie/exact"], 1.0);
  // Two Euler steps leave most samples outside the data; 64 steps few
  // (0.05 vs 0.91 for 300 words in bench/RESULTS.md): a wide margin.
  EXPECT_LT(in_data["euler/2 steps"] + 0.3, in_data["euler/64 steps"]);
}

TEST(BenchCliTest, BadFlagsGiveOneLineAndNonZeroExit) {
  const std::string data = WordFile();
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--data", data, "--steps", "0"},
        std::vector<std::string>{"--data", data, "--samplers", "leapfrog"},
        std::vector<std::string>{"--data", data, "--samplers", "adaptive", "--tolerances", "2"},
        std::vector<std::string>{"--data", data, "--grid", "log"},
        std::vector<std::string>{"--data", TempPath("missing.txt")},
        std::vector<std::string>{"--model", TempPath("missing.ckpt")}}) {
    std::string out, err;
    EXPECT_NE(RunBenchArgs(args, &out, &err), 0) << args.back();
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_EQ(err.rfind("jumpflow bench: ", 0), 0u) << err;
  }
}

// An output path that cannot be written (its directory is missing, or it
// is a directory) is a one-line error before any work: nothing is printed
// to stdout, and nothing is left behind.
TEST(OutputPathTest, UnwritableOutputsFailBeforeTheWork) {
  const std::string data = WordFile();
  const std::string missing = TempPath("no_such_dir") + "/out.txt";
  const std::string dir = ::testing::TempDir();
  struct Case {
    int (*run)(int, char**);
    const char* command;
    std::vector<std::string> args;
  };
  const std::vector<Case> cases = {
      {RunBench,
       "bench",
       {"--data", data, "--samplers", "euler", "--steps", "4", "--csv", missing}},
      {RunBench, "bench", {"--data", data, "--samplers", "euler", "--steps", "4", "--csv", dir}},
      {RunSample, "sample", {"--data", data, "--num", "20", "--out", missing}},
      {RunSample, "sample", {"--data", data, "--num", "20", "--out", dir}},
      {RunAlign, "align", {"--data", data, "--num", "20", "--out", missing}},
      {RunAlign, "align", {"--data", data, "--num", "20", "--out", dir}},
  };
  for (const Case& c : cases) {
    const std::string path = c.args.back();
    std::string out, err;
    EXPECT_NE(RunArgs(c.run, c.command, c.args, &out, &err), 0) << c.command << " " << path;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_NE(err.find(path + ": " + (path == dir ? "is a directory" : "cannot create")),
              std::string::npos)
        << err;
    EXPECT_EQ(out, "") << c.command << " " << path;
  }
  EXPECT_FALSE(std::filesystem::exists(TempPath("no_such_dir")));
}

// The --data of a checkpoint is the reference its samples are checked
// against: all of it unless --data-size is given (the oracle keeps the
// --data-size subset, default 1000, to stay fast).
TEST(SampleDataTest, ReferenceDataIsWholeUnlessDataSizeIsGiven) {
  const std::string path = TempPath("many_words.txt");
  {
    std::ofstream f(path);
    for (int i = 0; i < 1500; ++i) {
      std::string w;
      for (int n = i + 1; n > 0; n /= 26) w.push_back(static_cast<char>('a' + n % 26));
      f << w << "\n";
    }
  }
  auto load = [&](std::vector<std::string> args, DataUse use) {
    args.insert(args.begin(), {"jumpflow", "sample", "--data", path});
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    FlagSet flags("sample", "test");
    AddModelFlags(&flags);
    EXPECT_TRUE(flags.Parse(static_cast<int>(argv.size()), argv.data()).ok());
    absl::StatusOr<Dataset> data = LoadSampleData(flags, use);
    EXPECT_TRUE(data.ok()) << data.status();
    return data.ok() ? data->size() : -1;
  };
  EXPECT_EQ(load({}, DataUse::kReference), 1500);
  EXPECT_EQ(load({}, DataUse::kOracle), 1000);
  EXPECT_EQ(load({"--data-size", "200"}, DataUse::kReference), 200);
  EXPECT_EQ(load({"--data-size", "0"}, DataUse::kOracle), 1500);
}

}  // namespace
}  // namespace jumpflow::cli
