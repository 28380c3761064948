// @brief Atomic file writing.
//
// Example:
//   JUMPFLOW_RETURN_IF_ERROR(WriteFileAtomically("samples.txt", text));
#ifndef JUMPFLOW_SEQUENCES_FILE_UTIL_H_
#define JUMPFLOW_SEQUENCES_FILE_UTIL_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace jumpflow {

// WriteFileAtomically writes `contents` to a temporary file beside `path`,
// flushes it to disk and renames it over `path`, so readers see either the
// old file or the complete new one. Errors name the path.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

// ReadFile returns the whole file at `path`, or an error naming it.
absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace jumpflow

#endif  // JUMPFLOW_SEQUENCES_FILE_UTIL_H_
