// @brief Atomic file writing.
//
// Example:
//   JUMPFLOW_RETURN_IF_ERROR(CheckWritable("samples.txt"));  // before the work
//   JUMPFLOW_RETURN_IF_ERROR(WriteFileAtomically("samples.txt", text));
#ifndef JUMPFLOW_SEQUENCES_FILE_UTIL_H_
#define JUMPFLOW_SEQUENCES_FILE_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace jumpflow {

// WriteFileAtomically writes `contents` to a temporary file beside `path`,
// flushes it to disk and renames it over `path`, so readers see either the
// old file or the complete new one. Errors name the path.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

// CheckWritable returns OK when WriteFileAtomically(path, ...) could create
// its temporary file beside `path` now, and `path` is not a directory; it
// leaves nothing behind. Long jobs call it before they start, so that a
// wrong output path fails at once instead of after the work. Errors name
// the path.
absl::Status CheckWritable(const std::string& path);

// ReadFile returns the whole file at `path`, or an error naming it.
absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace jumpflow

#endif  // JUMPFLOW_SEQUENCES_FILE_UTIL_H_
