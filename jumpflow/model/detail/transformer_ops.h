// @brief Private Eigen building blocks of the reference transformer:
// row-wise LayerNorm, tanh-GELU, row softmax, column sums, each with its
// hand-written backward. Row-major [rows x cols] buffers throughout.
//
// Not part of the public API: included only by jumpflow/model/*.cc and the
// model tests (it includes Eigen).
//
// Example:
//   detail::LayerNormForward<float>(x, rows, d, gain, shift, xhat, rstd, y);
//   ...
//   detail::LayerNormBackward<float>(dy, xhat, rstd, rows, d, gain, dgain, dshift, dx,
//                                    /*accumulate=*/true);
#ifndef JUMPFLOW_MODEL_DETAIL_TRANSFORMER_OPS_H_
#define JUMPFLOW_MODEL_DETAIL_TRANSFORMER_OPS_H_

#include <Eigen/Core>
#include <cmath>
#include <cstdint>

namespace jumpflow {
namespace detail {

template <typename S>
using MatR = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename S>
using MapMat = Eigen::Map<MatR<S>>;
template <typename S>
using CMapMat = Eigen::Map<const MatR<S>>;
// Strided views: a column block of a wider row-major buffer.
template <typename S>
using MapMatS = Eigen::Map<MatR<S>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename S>
using CMapMatS = Eigen::Map<const MatR<S>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename S>
using RowVec = Eigen::Matrix<S, 1, Eigen::Dynamic>;
template <typename S>
using MapRow = Eigen::Map<RowVec<S>>;
template <typename S>
using CMapRow = Eigen::Map<const RowVec<S>>;
template <typename S>
using MapArr = Eigen::Map<Eigen::Array<S, Eigen::Dynamic, 1>>;
template <typename S>
using CMapArr = Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>>;

// kLayerNormEpsilon is added to the variance (Ba, Kiros, Hinton 2016).
inline constexpr double kLayerNormEpsilon = 1e-5;

// LayerNormForward normalises each row of x [rows x d]: xhat = (x - mean) *
// rstd with rstd = 1 / sqrt(var + eps) (biased variance), y = xhat * gain +
// shift. Writes xhat [rows x d], rstd [rows], y [rows x d].
template <typename S>
void LayerNormForward(const S* x, int64_t rows, int64_t d, const S* gain, const S* shift, S* xhat,
                      S* rstd, S* y) {
  const CMapRow<S> g(gain, d), b(shift, d);
  const S inv_d = S(1) / static_cast<S>(d);
  for (int64_t r = 0; r < rows; ++r) {
    const CMapRow<S> xr(x + r * d, d);
    MapRow<S> xh(xhat + r * d, d);
    const S mean = xr.sum() * inv_d;
    xh = xr.array() - mean;
    const S var = xh.squaredNorm() * inv_d;
    const S rs = S(1) / std::sqrt(var + static_cast<S>(kLayerNormEpsilon));
    xh *= rs;
    rstd[r] = rs;
    MapRow<S>(y + r * d, d) = xh.cwiseProduct(g) + b;
  }
}

// LayerNormBackward takes dy = dL/dy [rows x d] (overwritten with scratch),
// adds dL/dgain and dL/dshift to dgain, dshift [d], and writes (or, with
// `accumulate`, adds) dL/dx to dx [rows x d]:
//   dxhat = dy * gain;  dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
template <typename S>
void LayerNormBackward(S* dy, const S* xhat, const S* rstd, int64_t rows, int64_t d, const S* gain,
                       S* dgain, S* dshift, S* dx, bool accumulate) {
  const CMapRow<S> g(gain, d);
  MapRow<S> dg(dgain, d), db(dshift, d);
  const S inv_d = S(1) / static_cast<S>(d);
  for (int64_t r = 0; r < rows; ++r) {
    MapRow<S> dyr(dy + r * d, d);
    const CMapRow<S> xh(xhat + r * d, d);
    dg += dyr.cwiseProduct(xh);
    db += dyr;
    dyr = dyr.cwiseProduct(g);
    const S m1 = dyr.sum() * inv_d;
    const S m2 = dyr.dot(xh) * inv_d;
    MapRow<S> dxr(dx + r * d, d);
    if (accumulate) {
      dxr.array() += rstd[r] * ((dyr.array() - m1) - xh.array() * m2);
    } else {
      dxr.array() = rstd[r] * ((dyr.array() - m1) - xh.array() * m2);
    }
  }
}

// GELU, tanh form (Hendrycks & Gimpel 2016, "Gaussian Error Linear Units"):
//   gelu(u) = u/2 (1 + tanh(c (u + a u^3))), c = sqrt(2/pi), a = 0.044715.
inline constexpr double kGeluC = 0.7978845608028654;
inline constexpr double kGeluA = 0.044715;

// GeluForward writes g[i] = gelu(u[i]) for i < n.
template <typename S>
void GeluForward(const S* u, int64_t n, S* g) {
  const CMapArr<S> ua(u, n);
  const S c = static_cast<S>(kGeluC), a = static_cast<S>(kGeluA);
  MapArr<S>(g, n) = S(0.5) * ua * (S(1) + (c * (ua + a * ua * ua * ua)).tanh());
}

// GeluBackward multiplies dg[i] by gelu'(u[i]):
//   gelu'(u) = (1 + th)/2 + u/2 (1 - th^2) c (1 + 3 a u^2), th = tanh(c (u + a u^3)).
template <typename S>
void GeluBackward(const S* u, int64_t n, S* dg) {
  constexpr int64_t kBlock = 256;  // th lives on the stack, computed once
  const S c = static_cast<S>(kGeluC), a = static_cast<S>(kGeluA);
  for (int64_t i = 0; i < n; i += kBlock) {
    const int64_t len = n - i < kBlock ? n - i : kBlock;
    const CMapArr<S> ua(u + i, len);
    const Eigen::Array<S, Eigen::Dynamic, 1, 0, kBlock, 1> th =
        (c * (ua + a * ua * ua * ua)).tanh();
    MapArr<S>(dg + i, len) *=
        S(0.5) * (S(1) + th) + S(0.5) * ua * (S(1) - th * th) * c * (S(1) + S(3) * a * ua * ua);
  }
}

// SoftmaxRows replaces each row of p [rows x cols] by its softmax (max
// subtracted first, so no overflow).
template <typename S>
void SoftmaxRows(S* p, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    MapRow<S> pr(p + r * cols, cols);
    const S mx = pr.maxCoeff();
    pr = (pr.array() - mx).exp().matrix();
    pr /= pr.sum();
  }
}

// AddColumnSums adds the column sums of m [rows x cols] to out [cols], rows
// in order (deterministic).
template <typename S>
void AddColumnSums(const S* m, int64_t rows, int64_t cols, S* out) {
  MapRow<S> o(out, cols);
  for (int64_t r = 0; r < rows; ++r) o += CMapRow<S>(m + r * cols, cols);
}

}  // namespace detail
}  // namespace jumpflow

#endif  // JUMPFLOW_MODEL_DETAIL_TRANSFORMER_OPS_H_
