// @brief The jumpflow subcommands; each returns the process exit code.
//
// Every command prints one line naming the problem and returns non-zero on
// bad flags or files; `jumpflow CMD --help` documents its flags.
#ifndef JUMPFLOW_CLI_COMMANDS_H_
#define JUMPFLOW_CLI_COMMANDS_H_

#include <string>

#include "absl/status/statusor.h"
#include "jumpflow/rate_model.h"
#include "jumpflow/samplers/sampler.h"
#include "kernels/backend.h"
#include "sequences/dataset.h"
#include "sequences/vocabulary.h"

namespace jumpflow::cli {

// RunAlign: `jumpflow align` — corrupt words (or read pairs), align, apply.
int RunAlign(int argc, char** argv);

// RunSample: `jumpflow sample` — sample sequences from a rate model (issue 6).
int RunSample(int argc, char** argv);

// RunTrain: `jumpflow train` — train the reference transformer (issue 8).
int RunTrain(int argc, char** argv);

// RunBench: `jumpflow bench` — accuracy against cost of the jump samplers.
int RunBench(int argc, char** argv);

// LoadTextData loads the --data file with the --chars / --vocab choices
// shared by the commands: a character vocabulary given by `chars` (or taken
// from the file when empty) or a token vocabulary file `vocab_path`.
absl::StatusOr<Dataset> LoadTextData(const std::string& path, const std::string& chars,
                                     const std::string& vocab_path, const DatasetOptions& options);

// ParseDevice reads a --device value (cpu | cuda) shared by the commands:
// one line naming the flag for an unknown device, and for cuda when this
// build has no CUDA backend or no GPU is present (never a silent fallback).
absl::StatusOr<kernels::Backend> ParseDevice(const std::string& value);

// CheckFusedDevice is the one-line error of --device cuda for a model and
// sampler without the fused event kernels (HasFusedEvents), the only path
// that runs on the GPU; OK for --device cpu. `model_flag` is the --model
// value, for the message.
absl::Status CheckFusedDevice(kernels::Backend device, const RateModel& model, SamplerKind kind,
                              const std::string& model_flag);

}  // namespace jumpflow::cli

#endif  // JUMPFLOW_CLI_COMMANDS_H_
