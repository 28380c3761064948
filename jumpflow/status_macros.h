// @brief Status helper macros shared by every jumpflow module.
//
// The Debian abseil predates absl/status/status_macros.h, so jumpflow carries
// its own two macros.
//
// Example:
//   absl::StatusOr<int> Parse(absl::string_view s);
//   absl::Status Use(absl::string_view s) {
//     JUMPFLOW_ASSIGN_OR_RETURN(int value, Parse(s));
//     JUMPFLOW_RETURN_IF_ERROR(Check(value));
//     return absl::OkStatus();
//   }
#ifndef JUMPFLOW_STATUS_MACROS_H_
#define JUMPFLOW_STATUS_MACROS_H_

#include "absl/strings/string_view.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

// JUMPFLOW_RETURN_IF_ERROR evaluates `expr` (an absl::Status) once and returns
// it from the enclosing function when it is not OK.
#define JUMPFLOW_RETURN_IF_ERROR(expr)                    \
  do {                                                    \
    ::absl::Status jumpflow_status_ = (expr);             \
    if (!jumpflow_status_.ok()) return jumpflow_status_;  \
  } while (0)

#define JUMPFLOW_STATUS_CONCAT_INNER_(a, b) a##b
#define JUMPFLOW_STATUS_CONCAT_(a, b) JUMPFLOW_STATUS_CONCAT_INNER_(a, b)

// JUMPFLOW_ASSIGN_OR_RETURN(lhs, expr) evaluates `expr` (an absl::StatusOr<T>)
// and either moves its value into `lhs` (which may be a declaration) or
// returns its status.
#define JUMPFLOW_ASSIGN_OR_RETURN(lhs, expr) \
  JUMPFLOW_ASSIGN_OR_RETURN_IMPL_(           \
      JUMPFLOW_STATUS_CONCAT_(jumpflow_statusor_, __LINE__), lhs, expr)

#define JUMPFLOW_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                    \
  if (!statusor.ok()) return std::move(statusor).status();   \
  lhs = std::move(statusor).value()

#endif  // JUMPFLOW_STATUS_MACROS_H_
