// @brief CUDA backend of the fused parametrization + Bregman loss +
// gradient (kernels/loss.h): one warp per row for rows of up to
// kWarpRowMaxCols columns (eight rows per block); above that one block of
// kBlockThreads per row, with a grid-stride loop over the rows and only as
// many blocks as keep the rows in flight within the L2 (the three passes
// over a row then read it from DRAM once) and as are resident at once (one
// wave). Pass C's loads and the gradient stores are marked evict-first
// (loss_row.h: LoadLast, StoreOnce).
// The row arithmetic is kernels/detail/loss_row.h, shared with the host
// emulation the tests run. Row losses go to a device array reduced by one
// block in a fixed order (deterministic run to run); the mean's row count
// is computed on the device first, so device-resident masks work.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "kernels/cuda/cuda_api.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/detail/loss_row.h"

namespace jumpflow::kernels::cuda_internal {
namespace {

constexpr int kWarpRowMaxCols = 2048;
constexpr int kRowsPerWarpBlock = 8;
constexpr int kBlockThreads = 512;
constexpr int kReduceThreads = 512;

// WarpTeam: the 32 lanes of a warp share a row.
struct WarpTeam {
  __device__ int rank() const { return static_cast<int>(threadIdx.x & 31u); }
  __device__ int size() const { return 32; }
  __device__ float Max(float v) const { return WarpMax(v); }
  __device__ float SumF(float v) const { return WarpSum(v); }
  __device__ double SumD(double v) const { return WarpSum(v); }
  __device__ bool All(bool v) const { return __all_sync(kFullMask, v) != 0; }
  __device__ void Sync() const { __syncwarp(); }
};

// BlockTeam: the kBlockThreads threads of a block share a row; reductions go
// through shared memory (the caller provides 2 x kWarps doubles).
struct BlockTeam {
  static constexpr int kWarps = kBlockThreads / 32;
  double* scratch;  // shared, [kWarps]
  __device__ int rank() const { return static_cast<int>(threadIdx.x); }
  __device__ int size() const { return kBlockThreads; }
  template <typename T, typename Op>
  __device__ T Reduce(T v, Op op) const {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int o = 16; o >= 1; o /= 2) v = op(v, __shfl_xor_sync(kFullMask, v, o));
    __syncthreads();  // scratch may still be read by a previous reduction
    if (lane == 0) scratch[warp] = static_cast<double>(v);
    __syncthreads();
    T r = static_cast<T>(scratch[0]);
    for (int w = 1; w < kWarps; ++w) r = op(r, static_cast<T>(scratch[w]));
    return r;
  }
  __device__ float Max(float v) const {
    return Reduce(v, [](float a, float b) { return fmaxf(a, b); });
  }
  __device__ float SumF(float v) const {
    return Reduce(v, [](float a, float b) { return a + b; });
  }
  __device__ double SumD(double v) const {
    return Reduce(v, [](double a, double b) { return a + b; });
  }
  __device__ bool All(bool v) const { return __syncthreads_and(v ? 1 : 0) != 0; }
  __device__ void Sync() const { __syncthreads(); }
};

// DeviceResults are the call's scalar results, copied back in one go.
struct DeviceResults {
  double sum;
  int64_t active;                      // unmasked rows
  unsigned long long first_nonfinite;  // min row, all ones = none
};

// DeviceLossArgs is LossArgs<float> with device pointers plus the scratch.
struct DeviceLossArgs {
  LossArgs<float> a;
  const int64_t* active;                // [1] unmasked rows
  double* row_loss_scratch;             // [rows] weighted row losses
  unsigned long long* first_nonfinite;  // [1] min row, all ones = none
};

// PrepareRow fills the row inputs; false when the row is inactive (its
// gradient and row loss are zeroed here).
template <class Team>
__device__ bool PrepareRow(const Team& team, const DeviceLossArgs& d, int64_t r,
                           detail::LossRowIn* in, float* weight) {
  const LossArgs<float>& a = d.a;
  const int64_t v = a.targets_per_row;
  const int64_t cols = RawColumns(a.parametrization, v);
  float* grad_row = a.grad != nullptr ? a.grad + r * cols : nullptr;
  const float w = a.row_weights != nullptr ? a.row_weights[r] : 1.0f;
  if ((a.row_mask != nullptr && a.row_mask[r] == 0) || w == 0.0f) {
    if (grad_row != nullptr) {
      for (int64_t k = team.rank(); k < cols; k += team.size()) grad_row[k] = 0.0f;
    }
    if (team.rank() == 0) {
      d.row_loss_scratch[r] = 0.0;
      if (a.row_loss != nullptr) a.row_loss[r] = 0.0f;
    }
    return false;
  }
  const int64_t active = *d.active;
  const float reduction_scale =
      a.reduction == Reduction::kMean && active > 0 ? 1.0f / static_cast<float>(active) : 1.0f;
  in->param = a.parametrization;
  in->v = v;
  in->raw = a.raw + r * cols;
  in->dense = a.dense_targets != nullptr ? a.dense_targets + r * v : nullptr;
  if (a.dense_targets == nullptr) {
    const int64_t begin = a.sparse_row_offsets[r];
    in->sp_cols = a.sparse_cols + begin;
    in->sp_vals = a.sparse_values + begin;
    in->nnz = a.sparse_row_offsets[r + 1] - begin;
  } else {
    in->sp_cols = nullptr;
    in->sp_vals = nullptr;
    in->nnz = 0;
  }
  in->exclude = a.excluded_cols != nullptr ? a.excluded_cols[r] : -1;
  in->c = a.row_scales != nullptr ? a.row_scales[r] : 1.0f;
  in->log_c = a.row_scales != nullptr ? logf(in->c) : 0.0f;
  in->gw = w * reduction_scale;
  in->grad = grad_row;
  *weight = w;
  return true;
}

// FinishRow stores the row's loss (or zeroes a non-finite row).
template <class Team>
__device__ void FinishRow(const Team& team, const DeviceLossArgs& d, int64_t r,
                          const detail::LossRowIn& in, float weight,
                          const detail::LossRowOut& out) {
  const LossArgs<float>& a = d.a;
  const int64_t cols = RawColumns(a.parametrization, a.targets_per_row);
  if (!out.finite) {
    if (in.grad != nullptr) {
      for (int64_t k = team.rank(); k < cols; k += team.size()) in.grad[k] = 0.0f;
    }
    if (team.rank() == 0) {
      d.row_loss_scratch[r] = 0.0;
      if (a.row_loss != nullptr) a.row_loss[r] = 0.0f;
      AtomicMinRow(d.first_nonfinite, r);
    }
    return;
  }
  if (team.rank() == 0) {
    const double row_loss = static_cast<double>(weight) * out.loss;
    d.row_loss_scratch[r] = row_loss;
    if (a.row_loss != nullptr) a.row_loss[r] = static_cast<float>(row_loss);
  }
}

template <Divergence D, bool kDense>
__global__ void LossWarpKernel(DeviceLossArgs d) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerWarpBlock + (threadIdx.x >> 5);
  if (r >= d.a.rows) return;  // whole warps leave together
  const WarpTeam team;
  detail::LossRowIn in;
  float weight = 0.0f;
  if (!PrepareRow(team, d, r, &in, &weight)) return;
  const detail::LossRowOut out = detail::LossRow<WarpTeam, D, kDense>(team, in);
  FinishRow(team, d, r, in, weight, out);
}

// LossBlockKernel is held to 64 registers (2 blocks of 512 threads per
// multiprocessor; BlockGridSize counts on the resident blocks).
template <Divergence D, bool kDense>
__global__ void __launch_bounds__(kBlockThreads, 2) LossBlockKernel(DeviceLossArgs d) {
  __shared__ double scratch[BlockTeam::kWarps];
  const BlockTeam team{scratch};
  for (int64_t r = blockIdx.x; r < d.a.rows; r += gridDim.x) {
    detail::LossRowIn in;
    float weight = 0.0f;
    if (!PrepareRow(team, d, r, &in, &weight)) continue;  // uniform per block
    const detail::LossRowOut out = detail::LossRow<BlockTeam, D, kDense>(team, in);
    FinishRow(team, d, r, in, weight, out);
    team.Sync();  // the next row's reductions reuse scratch
  }
}

// BlockGridSize is the LossBlockKernel grid: as many blocks as keep their
// rows' raw outputs within 3/4 of the L2 (at least one block per
// multiprocessor), at most as many as are resident at once, at most one per
// row. A grid larger than the resident blocks runs in waves: the blocks of
// the last wave start when the first finish all their rows, and run with
// the machine part empty (V = 32768 on the H200: 360 blocks for 264 slots).
template <Divergence D, bool kDense>
std::string BlockGridSize(int64_t rows, int64_t cols, unsigned* grid) {
  int dev = 0, sms = 0, l2 = 0, per_sm = 0;
  JUMPFLOW_CUDA_TRY(cudaGetDevice(&dev));
  JUMPFLOW_CUDA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  JUMPFLOW_CUDA_TRY(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
  JUMPFLOW_CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
      &per_sm, LossBlockKernel<D, kDense>, kBlockThreads, 0));
  const int64_t row_bytes = cols * static_cast<int64_t>(sizeof(float));  // re-read: raw
  int64_t blocks = std::max<int64_t>(sms, int64_t{l2} * 3 / 4 / std::max<int64_t>(row_bytes, 1));
  blocks = std::min<int64_t>(blocks, int64_t{sms} * std::max(per_sm, 1));
  blocks = std::min(blocks, rows);
  *grid = static_cast<unsigned>(std::max<int64_t>(blocks, 1));
  return {};
}

// CountActiveKernel sets *active to the number of rows with mask != 0 (all
// rows without a mask). One block.
__global__ void CountActiveKernel(const uint8_t* mask, int64_t rows, int64_t* active) {
  __shared__ unsigned long long partial[kReduceThreads];
  unsigned long long n = 0;
  for (int64_t r = threadIdx.x; r < rows; r += kReduceThreads) {
    n += mask == nullptr || mask[r] != 0 ? 1 : 0;
  }
  partial[threadIdx.x] = n;
  __syncthreads();
  for (int s = kReduceThreads / 2; s >= 1; s /= 2) {
    if (static_cast<int>(threadIdx.x) < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) *active = static_cast<int64_t>(partial[0]);
}

// SumKernel sets *sum to the sum of x[0..n) in a fixed order: thread t adds
// x[t], x[t + T], ... in order, then a fixed tree. One block.
__global__ void SumKernel(const double* x, int64_t n, double* sum) {
  __shared__ double partial[kReduceThreads];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += kReduceThreads) s += x[i];
  partial[threadIdx.x] = s;
  __syncthreads();
  for (int w = kReduceThreads / 2; w >= 1; w /= 2) {
    if (static_cast<int>(threadIdx.x) < w) partial[threadIdx.x] += partial[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) *sum = partial[0];
}

template <Divergence D, bool kDense>
std::string LaunchRows(const DeviceLossArgs& d, int64_t cols, cudaStream_t stream) {
  if (cols <= kWarpRowMaxCols) {
    const int64_t blocks = (d.a.rows + kRowsPerWarpBlock - 1) / kRowsPerWarpBlock;
    LossWarpKernel<D, kDense>
        <<<static_cast<unsigned>(blocks), 32 * kRowsPerWarpBlock, 0, stream>>>(d);
    JUMPFLOW_CUDA_TRY_LAUNCH("LossWarpKernel");
  } else {
    unsigned grid = 0;
    JUMPFLOW_STAGE((BlockGridSize<D, kDense>(d.a.rows, cols, &grid)));
    LossBlockKernel<D, kDense><<<grid, kBlockThreads, 0, stream>>>(d);
    JUMPFLOW_CUDA_TRY_LAUNCH("LossBlockKernel");
  }
  return {};
}

template <bool kDense>
std::string LaunchForDivergence(const DeviceLossArgs& d, int64_t cols, cudaStream_t stream) {
  switch (d.a.divergence) {
    case Divergence::kPoisson:
      return LaunchRows<Divergence::kPoisson, kDense>(d, cols, stream);
    case Divergence::kBce:
      return LaunchRows<Divergence::kBce, kDense>(d, cols, stream);
    case Divergence::kMse:
      return LaunchRows<Divergence::kMse, kDense>(d, cols, stream);
    case Divergence::kGeneralizedKl:
      return LaunchRows<Divergence::kGeneralizedKl, kDense>(d, cols, stream);
  }
  return "unknown divergence";
}

}  // namespace

std::string FusedLossCuda(const LossArgs<float>& args, bool host, LossResult* result) {
  *result = LossResult{};
  if (args.rows <= 0) return {};
  JUMPFLOW_STAGE(RetainPoolMemory());
  cudaStream_t stream = static_cast<cudaStream_t>(args.cuda_stream);
  const int64_t rows = args.rows, v = args.targets_per_row;
  const int64_t cols = RawColumns(args.parametrization, v);
  const size_t n_raw = static_cast<size_t>(rows * cols);
  const bool dense = args.dense_targets != nullptr;

  // Sparse entry count offsets[rows]: only host arrays are copied, so only
  // they need it (device arrays are used in place, no synchronisation).
  const int64_t nnz = !dense && host ? args.sparse_row_offsets[rows] : 0;
  Staged<float> raw(stream), dense_t(stream), sp_vals(stream), weights(stream), scales(stream);
  Staged<int64_t> sp_off(stream);
  Staged<int32_t> sp_cols(stream), excluded(stream);
  Staged<uint8_t> mask(stream);
  Staged<float> grad(stream), row_loss(stream);
  const size_t nr = static_cast<size_t>(rows);
  JUMPFLOW_STAGE(raw.Input(args.raw, n_raw, host));
  JUMPFLOW_STAGE(dense_t.Input(args.dense_targets, nr * static_cast<size_t>(v), host));
  JUMPFLOW_STAGE(sp_off.Input(args.sparse_row_offsets, nr + 1, host));
  JUMPFLOW_STAGE(sp_cols.Input(args.sparse_cols, static_cast<size_t>(nnz), host));
  JUMPFLOW_STAGE(sp_vals.Input(args.sparse_values, static_cast<size_t>(nnz), host));
  JUMPFLOW_STAGE(weights.Input(args.row_weights, nr, host));
  JUMPFLOW_STAGE(scales.Input(args.row_scales, nr, host));
  JUMPFLOW_STAGE(mask.Input(args.row_mask, nr, host));
  JUMPFLOW_STAGE(excluded.Input(args.excluded_cols, nr, host));
  JUMPFLOW_STAGE(grad.Output(args.grad, n_raw, host));
  JUMPFLOW_STAGE(row_loss.Output(args.row_loss, nr, host));

  DeviceBuffer<double> scratch(stream);
  DeviceBuffer<DeviceResults> results(stream);
  JUMPFLOW_CUDA_TRY(scratch.Allocate(nr));
  JUMPFLOW_CUDA_TRY(results.Allocate(1));
  DeviceResults* res = results.get();
  JUMPFLOW_CUDA_TRY(
      cudaMemsetAsync(&res->first_nonfinite, 0xff, sizeof(res->first_nonfinite), stream));

  DeviceLossArgs d;
  d.a = args;
  d.a.raw = raw.get();
  d.a.dense_targets = dense_t.get();
  d.a.sparse_row_offsets = sp_off.get();
  d.a.sparse_cols = sp_cols.get();
  d.a.sparse_values = sp_vals.get();
  d.a.row_weights = weights.get();
  d.a.row_scales = scales.get();
  d.a.row_mask = mask.get();
  d.a.excluded_cols = excluded.get();
  d.a.grad = grad.get();
  d.a.row_loss = row_loss.get();
  d.active = &res->active;
  d.row_loss_scratch = scratch.get();
  d.first_nonfinite = &res->first_nonfinite;

  CountActiveKernel<<<1, kReduceThreads, 0, stream>>>(d.a.row_mask, rows, &res->active);
  JUMPFLOW_CUDA_TRY_LAUNCH("CountActiveKernel");
  JUMPFLOW_STAGE(dense ? LaunchForDivergence<true>(d, cols, stream)
                       : LaunchForDivergence<false>(d, cols, stream));
  SumKernel<<<1, kReduceThreads, 0, stream>>>(scratch.get(), rows, &res->sum);
  JUMPFLOW_CUDA_TRY_LAUNCH("SumKernel");

  JUMPFLOW_STAGE(grad.CopyBack());
  JUMPFLOW_STAGE(row_loss.CopyBack());
  DeviceResults h{};
  JUMPFLOW_STAGE(CopyResultsBack(&h, res, sizeof(h), stream));
  result->sum = h.sum;
  result->active_rows = h.active;
  result->mean = h.active > 0 ? h.sum / static_cast<double>(h.active) : 0.0;
  result->first_nonfinite_row =
      h.first_nonfinite == ~0ull ? -1 : static_cast<int64_t>(h.first_nonfinite);
  return {};
}

}  // namespace jumpflow::kernels::cuda_internal
