// @brief Number formatting shared by the spec strings of schedulers and time
// distributions (private).
#ifndef JUMPFLOW_DETAIL_FORMAT_H_
#define JUMPFLOW_DETAIL_FORMAT_H_

#include <cstdio>
#include <string>

#include "absl/strings/numbers.h"

namespace jumpflow::detail {

// FormatShortest prints the shortest decimal that parses back to `x`, so
// Name() specs round-trip exactly.
inline std::string FormatShortest(double x) {
  char buffer[40];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof(buffer), "%.*g", precision, x);
    double back = 0;
    if (absl::SimpleAtod(buffer, &back) && back == x) break;
  }
  return buffer;
}

}  // namespace jumpflow::detail

#endif  // JUMPFLOW_DETAIL_FORMAT_H_
