// @brief The one tolerance rule for comparing kernel backends (CUDA vs CPU,
// and the host emulation of the CUDA row code vs the CPU backend):
// integers (events, tokens, flags, counts) and event-kernel rates must be
// bitwise equal; floating-point results of the loss kernel agree to
// kRelTol = 1e-5 relative, |a - b| <= kRelTol * max(|a|, |b|, scale), where
// `scale` is the magnitude the value was formed from (a gradient entry is a
// difference of terms of its row's size and may cancel to ~0: its scale is
// the row's largest |gradient| entry or its weight; see ExpectRowsClose).
//
// Example:
//   ExpectSameBits(cpu_tokens, gpu_tokens, "new_token");
//   ExpectClose(cpu_loss.sum, gpu_loss.sum, 0.0, "sum");
#ifndef JUMPFLOW_TESTS_KERNELS_BACKEND_COMPARE_H_
#define JUMPFLOW_TESTS_KERNELS_BACKEND_COMPARE_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace jumpflow::kernels::testing {

// kRelTol is the float agreement of the loss kernel across backends.
constexpr double kRelTol = 1e-5;

// ExpectSameBits checks two arrays element by element for identical bits
// (integers, or doubles that must be bitwise equal); reports the first few
// differences and their count.
template <typename T>
void ExpectSameBits(const std::vector<T>& expected, const std::vector<T>& actual,
                    const std::string& what) {
  ASSERT_EQ(expected.size(), actual.size()) << what;
  int64_t bad = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    if (std::memcmp(&expected[i], &actual[i], sizeof(T)) != 0) {
      if (++bad <= 5) {
        ADD_FAILURE() << what << "[" << i << "]: expected " << +expected[i] << ", got "
                      << +actual[i];
      }
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << expected.size() << " differ";
}

// IsClose is the float rule of the file comment.
inline bool IsClose(double a, double b, double scale) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::fabs(a - b) <= kRelTol * std::max({std::fabs(a), std::fabs(b), scale});
}

// ExpectClose checks one value.
inline void ExpectClose(double expected, double actual, double scale, const std::string& what) {
  EXPECT_TRUE(IsClose(expected, actual, scale))
      << what << ": expected " << expected << ", got " << actual << " (scale " << scale << ")";
}

// ExpectRowsClose checks a [rows x cols] array row by row; each row's scale
// is the larger of its largest |expected| entry and row_scales[r] (when
// given: the size of the terms the row's entries were formed from).
template <typename T>
void ExpectRowsClose(const std::vector<T>& expected, const std::vector<T>& actual, int64_t cols,
                     const std::string& what, const std::vector<double>& row_scales = {}) {
  ASSERT_EQ(expected.size(), actual.size()) << what;
  int64_t bad = 0;
  const int64_t rows = cols > 0 ? static_cast<int64_t>(expected.size()) / cols : 0;
  for (int64_t r = 0; r < rows; ++r) {
    double scale = row_scales.empty() ? 0.0 : row_scales[static_cast<size_t>(r)];
    for (int64_t k = 0; k < cols; ++k) {
      scale = std::max(scale, std::fabs(static_cast<double>(expected[r * cols + k])));
    }
    for (int64_t k = 0; k < cols; ++k) {
      const size_t i = static_cast<size_t>(r * cols + k);
      if (!IsClose(expected[i], actual[i], scale) && ++bad <= 5) {
        ADD_FAILURE() << what << "[" << r << ", " << k << "]: expected " << expected[i] << ", got "
                      << actual[i] << " (row scale " << scale << ")";
      }
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " entries differ";
}

}  // namespace jumpflow::kernels::testing

#endif  // JUMPFLOW_TESTS_KERNELS_BACKEND_COMPARE_H_
