// @brief CUDA backend of the fused event kernels (kernels/sample_step.h,
// kernels/gillespie.h): one warp per row runs the canonical chunked online
// scan of kernels/detail/event_math.h (thread j = lane j, eight elements of
// each 256-element chunk, the next chunk loaded while the current one is
// reduced), every lane finishes the row with the same scalar code as the
// CPU backend, and a jumping row's token is chosen by the whole warp (one
// segment sum per thread). Gillespie adds one warp per sequence for the
// segmented sum and the event choice.
//
// Compiled with --fmad=false (kernels/CMakeLists.txt): together with the
// explicit FMAs of detail::ExpEvF this makes every result bit-identical to
// the CPU backend.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "kernels/cuda/cuda_api.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/detail/event_math.h"

namespace jumpflow::kernels::cuda_internal {
namespace {

using detail::kChunk;
using detail::kLanes;
using detail::kPerLane;
using detail::RowScan;

constexpr int kWarpsPerBlock = 8;

// WarpScanRow runs the canonical scan of z[0..v) (excluded x) with the
// calling warp and leaves the result in *scan (shared memory, one per warp)
// for every lane to read after the __syncwarp at its end.
//
// kDepth is how many chunks each warp keeps in flight: the chunks go
// through a ring of kDepth register buffers (indices fixed at compile time
// by the unrolled inner loop), and a buffer is refilled with the chunk
// kDepth ahead as soon as it has been reduced. On the H200 (ncu, kernel
// alone) one chunk ahead had left the scans waiting on memory latency: at
// V = 32768 depth 4 took SampleStep from 124 to 98 us and the Gillespie row
// kernel from 122 to 93 us (depth 2: 104 / 104 us, depth 8: 105 / 99 us);
// at V = 1024 (4 chunks a row) depth 2 was best (SampleStep 40 us; depth 4
// costs registers, 118 instead of 64, and occupancy: 54 us).
//
// after_fetch() runs once the first chunks' loads are issued: work that
// needs its own memory round trips (the sequence search of SampleStep)
// overlaps with them. It returns whether the row needs its scan (the same
// on every lane); when false, the row is only read and checked for inf and
// NaN (scan->finite; the lane sums stay 0, zmax -inf).
template <int kDepth, class AfterFetch>
__device__ void WarpScanRow(const float* z, int64_t v, int32_t x, RowScan* scan,
                            AfterFetch&& after_fetch) {
  const int lane = static_cast<int>(threadIdx.x & 31u);
  bool fin = true;
  float buf[kDepth][kPerLane];
#pragma unroll
  for (int d = 0; d < kDepth; ++d) {
    if (int64_t{d} * kChunk < v) detail::LaneChunkFetch(z, v, int64_t{d} * kChunk, lane, buf[d]);
  }
  const bool full = after_fetch();
  float s = 0.0f, m = detail::NegInfF();
  for (int64_t base = 0; base < v; base += kDepth * kChunk) {
#pragma unroll
    for (int d = 0; d < kDepth; ++d) {
      const int64_t chunk = base + int64_t{d} * kChunk;
      if (chunk >= v) break;  // the same for the whole warp
      const float lane_max = detail::LaneChunkMax(buf[d], v, chunk, lane, &fin);
      if (full) {
        const float cmax = WarpMax(lane_max);
        if (cmax > m) {
          s = detail::MulF(s, detail::ChunkRescale(m, cmax));
          m = cmax;
        }
        detail::LaneChunkAccumulate(buf[d], v, chunk, lane, x, m, &s);
      }
      const int64_t ahead = chunk + int64_t{kDepth} * kChunk;
      if (ahead < v) detail::LaneChunkFetch(z, v, ahead, lane, buf[d]);
    }
  }
  const bool all_finite = __all_sync(kFullMask, fin) != 0;
  scan->lane[lane] = s;
  if (lane == 0) {
    scan->zmax = m;
    scan->finite = all_finite;
  }
  __syncwarp();
}

template <int kDepth>
__device__ void WarpScanRow(const float* z, int64_t v, int32_t x, RowScan* scan) {
  WarpScanRow<kDepth>(z, v, x, scan, [] { return true; });
}

// kDeepScanMinVocab: rows of at least this many logits (16 chunks) are
// scanned with depth 4, shorter ones with depth 2 (see WarpScanRow).
constexpr int64_t kDeepScanMinVocab = 4096;

// WarpLaneTotal is detail::LaneTotal of the 32 lane sums, lane j holding
// s[j], computed by the warp with the same tree (t[j] = s[j] + s[j + 16],
// then t[j] += t[j + w] for w = 8, 4, 2, 1) as shuffles; every lane gets
// the total. The same doubles added in the same pairs: the same bits.
__device__ double WarpLaneTotal(float s) {
  double t = static_cast<double>(s);
#pragma unroll
  for (int w = kLanes / 2; w >= 1; w /= 2) t = t + __shfl_down_sync(kFullMask, t, w);
  return __shfl_sync(kFullMask, t, 0);
}

// RowFinite is true when the scanned row's logits (scan.finite) and its
// rate column, if any, hold no inf or NaN.
__device__ bool RowFinite(Parametrization p, const float* raw_row, const RowScan& scan) {
  return scan.finite && (!HasRateColumn(p) || detail::IsFiniteF(raw_row[0]));
}

// RowRateOf finishes a scanned row from its lane total (WarpLaneTotal; on
// any lane: every lane gets the same values); false when not finite.
__device__ bool RowRateOf(Parametrization p, const float* raw_row, int64_t v, int32_t x, float c,
                          const RowScan& scan, double total, double* rate, double* s_excl) {
  *rate = 0.0;
  *s_excl = 0.0;
  if (!RowFinite(p, raw_row, scan)) return false;
  *s_excl = total;
  *rate = detail::RowRateFromTotal(p, raw_row, v, x, c, scan.zmax, total);
  return true;
}

// WarpSelect is the per-warp shared scratch of WarpSelectToken.
struct WarpSelect {
  double seg[detail::kSegments];
  float e[kLanes];
};

// SegmentSumBatched is detail::SegmentSum (the same additions in the same
// order) with the loads issued kSegmentBatch at a time instead of one per
// element (a segment's elements are 32 floats apart, 32 of them at V =
// 32768). On the H200 batches of 16 took ~1 us off the Gillespie select
// kernel and SampleStep at V = 32768 (~3%); 4 keeps the depth-2 SampleStep
// kernel within 48 registers without spills.
constexpr int kSegmentBatch = 4;

__device__ double SegmentSumBatched(const float* z, int64_t v, int32_t x, float zmax, int lane,
                                    int seg) {
  const int64_t len = detail::SegmentLength(v), n = detail::LaneLength(v, lane);
  const int64_t end = (seg + 1) * len < n ? (seg + 1) * len : n;
  double s = 0.0;
  for (int64_t i0 = seg * len; i0 < end; i0 += kSegmentBatch) {
    float zb[kSegmentBatch];
#pragma unroll
    for (int j = 0; j < kSegmentBatch; ++j) {
      const int64_t i = i0 + j;
      zb[j] = i < end ? z[lane + static_cast<int64_t>(kLanes) * i] : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < kSegmentBatch; ++j) {
      const int64_t i = i0 + j;
      const int64_t k = lane + static_cast<int64_t>(kLanes) * i;
      if (i < end && k != x) s += static_cast<double>(detail::ExpEvF(zb[j] - zmax));
    }
  }
  return s;
}

// WarpSelectToken is detail::SelectToken run by the whole warp (every lane
// gets the token): thread j computes segment sum j of the chosen lane, every
// lane walks the 32 sums (the same doubles in the same order, so the same
// choice), then the chosen segment's elements are loaded 32 at a time and
// walked from shared memory. Bit-identical to the CPU's sequential walk.
__device__ int32_t WarpSelectToken(const float* z, int64_t v, int32_t x, const RowScan& scan,
                                   double s_excl, double u, WarpSelect* ws) {
  const int me = static_cast<int>(threadIdx.x & 31u);
  double rem = 0.0;
  const int lane = detail::SelectLane(scan.lane, s_excl, u, &rem);
  if (lane < 0) return -1;
  ws->seg[me] = SegmentSumBatched(z, v, x, scan.zmax, lane, me);
  __syncwarp();
  const int seg = detail::PickSegment(ws->seg, &rem);
  __syncwarp();
  if (seg < 0) return detail::LastInLane(v, x, lane);
  const int64_t len = detail::SegmentLength(v), n = detail::LaneLength(v, lane);
  const int64_t end = (seg + 1) * len < n ? (seg + 1) * len : n;
  int32_t last = -1;
  for (int64_t base = seg * len; base < end; base += kLanes) {
    const int64_t i = base + me;
    const int64_t k = lane + static_cast<int64_t>(kLanes) * i;
    ws->e[me] = i < end && k != x ? detail::ExpEvF(z[k] - scan.zmax) : 0.0f;
    __syncwarp();
    const int count = end - base < kLanes ? static_cast<int>(end - base) : kLanes;
    for (int j = 0; j < count; ++j) {
      const int64_t kj = lane + static_cast<int64_t>(kLanes) * (base + j);
      if (kj == x) continue;
      const double e = static_cast<double>(ws->e[j]);
      last = static_cast<int32_t>(kj);
      if (rem < e) return last;  // every lane returns here together
      rem -= e;
    }
    __syncwarp();
  }
  return last;
}

// WarpSequenceOf is the sequence of row r: the last b in [0, n) with
// offsets[b] <= r (offsets nondecreasing, offsets[0] = 0 <= r). The warp
// probes 32 evenly spaced offsets per round and keeps the span between the
// last probe <= r and the next: ceil(log32(n)) dependent loads (2 for up to
// 1024 sequences) instead of a binary search's log2(n).
__device__ int64_t WarpSequenceOf(const int64_t* offsets, int64_t n, int64_t r) {
  const int lane = static_cast<int>(threadIdx.x & 31u);
  int64_t lo = 0, hi = n;  // the answer is in [lo, hi)
  while (hi - lo > 1) {
    const int64_t step = (hi - lo + kLanes - 1) / kLanes;
    const int64_t probe = lo + lane * step;
    const unsigned ok = __ballot_sync(kFullMask, probe < hi && offsets[probe] <= r);
    // The lanes with offsets[probe] <= r are a prefix (lane 0 always, as
    // offsets[lo] <= r); a malformed offsets array still stays in range.
    const int last = ok != 0 ? 31 - __clz(static_cast<int>(ok)) : 0;
    lo += last * step;
    hi = lo + step < hi ? lo + step : hi;
  }
  return lo;
}

struct Counters {
  unsigned long long events;
  unsigned long long first_nonfinite;  // all ones = none
};

// SampleStepKernel: one warp per row. The depth-2 kernel (short rows, many
// of them) is compiled for 5 resident blocks per multiprocessor, i.e. at
// most 48 registers a thread, and occupancy matters there: on the H200 at
// V = 1024 the scan ran 35% slower at 118 registers than at 64, and 38.2 ->
// 35.5 us from 64 to 48 (after the lane total became a shuffle tree, which
// needs no spills at 48; before it, 48 spilled and ran slower). The depth-4
// kernel (long rows, few of them) is held to 80 (3 blocks).
// JUMPFLOW_SAMPLE_STEP_BLOCKS overrides the depth-2 block count for an A/B
// build on a GPU (e.g. 4: 64 registers; since the bound test, ptxas reports
// 24 bytes of spill at 48): CUDA_FLAGS=-DJUMPFLOW_SAMPLE_STEP_BLOCKS=4
// scripts/gpu_pack.sh.
#ifndef JUMPFLOW_SAMPLE_STEP_BLOCKS
#define JUMPFLOW_SAMPLE_STEP_BLOCKS 5
#endif
template <int kDepth>
__global__ void __launch_bounds__(32 * kWarpsPerBlock,
                                  kDepth == 2 ? JUMPFLOW_SAMPLE_STEP_BLOCKS : 3)
    SampleStepKernel(SampleStepArgs a, Counters* counters) {
  __shared__ RowScan scans[kWarpsPerBlock];
  __shared__ WarpSelect selects[kWarpsPerBlock];
  const int warp = static_cast<int>(threadIdx.x >> 5);
  const int lane = static_cast<int>(threadIdx.x & 31u);
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
  if (r >= a.rows) return;  // whole warp
  const int64_t v = a.vocab;
  const int64_t cols = RawColumns(a.parametrization, v);
  const float* raw_row = a.raw + r * cols;
  const float* z = raw_row + (HasRateColumn(a.parametrization) ? 1 : 0);
  const int32_t x = a.tokens != nullptr ? a.tokens[r] : -1;
  const float c = a.row_scales != nullptr ? a.row_scales[r] : 1.0f;
  RowScan* scan = &scans[warp];
  // The row's sequence and what the draw needs of it do not depend on the
  // row's logits: looked up while the scan's first loads are in flight.
  // Without the row_rate output, a row that cannot jump (its jump uniform
  // is >= detail::JumpBoundOf, as on the CPU) is only checked for inf / NaN.
  // Only b is kept through the scan (the sequence's values are loaded again
  // after it). ptxas (sm_90): the depth-2 kernel now spills 24 bytes at its
  // 48 registers (none before the bound test); not yet timed on a GPU.
  const bool exponential = a.jump == JumpProbability::kExponential;
  int64_t b = 0;
  bool can_jump = true;
  WarpScanRow<kDepth>(z, v, x, scan, [&] {
    b = WarpSequenceOf(a.offsets, a.num_sequences, r);
    if (a.row_rate != nullptr) return true;
    const double u_jump =
        detail::SequenceUniforms(a, b, static_cast<uint32_t>(r - a.offsets[b])).first;
    const float z_rate = HasRateColumn(a.parametrization) ? raw_row[0] : 0.0f;
    can_jump =
        !(u_jump >= detail::JumpBoundOf(a.parametrization, exponential, z_rate, c, a.fire[b]));
    return can_jump;
  });
  if (!can_jump) {
    if (lane != 0) return;
    if (!RowFinite(a.parametrization, raw_row, *scan)) AtomicMinRow(&counters->first_nonfinite, r);
    a.jumped[r] = 0;
    a.new_token[r] = x;
    return;
  }
  // Every lane finishes the row (the same scalar code on the same shared
  // scan, so the same values) and joins the token choice.
  double rate = 0.0, s_excl = 0.0;
  uint8_t jumped = 0;
  int32_t token = x;
  const double total = WarpLaneTotal(scan->lane[lane]);
  if (!RowRateOf(a.parametrization, raw_row, v, x, c, *scan, total, &rate, &s_excl)) {
    if (lane == 0) AtomicMinRow(&counters->first_nonfinite, r);
  } else {
    const double p = detail::JumpProbabilityOf(exponential, rate, a.fire[b]);
    const detail::EventUniforms u =
        p > 0.0 ? detail::SequenceUniforms(a, b, static_cast<uint32_t>(r - a.offsets[b]))
                : detail::EventUniforms{};
    if (p > 0.0 && u.first < p) {
      const int32_t t = WarpSelectToken(z, v, x, *scan, s_excl, u.second, &selects[warp]);
      if (t >= 0) {
        jumped = 1;
        token = t;
        if (lane == 0) atomicAdd(&counters->events, 1ull);
      }
    }
  }
  if (lane != 0) return;
  a.jumped[r] = jumped;
  a.new_token[r] = token;
  if (a.row_rate != nullptr) a.row_rate[r] = rate;
}

// kStoreScanMinVocab: from this row width on, the Gillespie rows kernel
// stores each row's scan (136 bytes, under 4% of the row) so the
// per-sequence kernel need not scan the chosen row again with one warp
// (a latency-bound walk over the whole row). Below it rescanning is cheaper.
constexpr int64_t kStoreScanMinVocab = 1024;

template <int kDepth>
__global__ void GillespieRowsKernel(GillespieArgs a, Counters* counters, RowScan* stored) {
  __shared__ RowScan scans[kWarpsPerBlock];
  const int warp = static_cast<int>(threadIdx.x >> 5);
  const int lane = static_cast<int>(threadIdx.x & 31u);
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
  if (r >= a.rows) return;
  const int64_t v = a.vocab;
  const int64_t cols = RawColumns(a.parametrization, v);
  const float* raw_row = a.raw + r * cols;
  const int32_t x = a.tokens != nullptr ? a.tokens[r] : -1;
  RowScan* scan = &scans[warp];
  WarpScanRow<kDepth>(raw_row + (HasRateColumn(a.parametrization) ? 1 : 0), v, x, scan);
  if (stored != nullptr) {
    stored[r].lane[lane] = scan->lane[lane];
    if (lane == 0) {
      stored[r].zmax = scan->zmax;
      stored[r].finite = scan->finite;
    }
  }
  const double total = WarpLaneTotal(scan->lane[lane]);
  if (lane != 0) return;
  const float c = a.row_scales != nullptr ? a.row_scales[r] : 1.0f;
  double rate = 0.0, s_excl = 0.0;
  if (!RowRateOf(a.parametrization, raw_row, v, x, c, *scan, total, &rate, &s_excl)) {
    AtomicMinRow(&counters->first_nonfinite, r);
  }
  a.row_rate[r] = rate;
}

// kStagePerLane: the Gillespie select kernel stages kLanes x kStagePerLane
// row rates at a time (on the H200 8 instead of 1 took it from 29.9 to
// 26.8 us at V = 1024 and from 37.7 to 33.1 us at V = 32768).
constexpr int kStagePerLane = 8;

template <int kDepth>
__global__ void GillespieSelectKernel(GillespieArgs a, Counters* counters, const RowScan* stored) {
  constexpr int kStage = kLanes * kStagePerLane;
  __shared__ RowScan scans[kWarpsPerBlock];
  __shared__ WarpSelect selects[kWarpsPerBlock];
  __shared__ double staged[kWarpsPerBlock][kStage];
  const int warp = static_cast<int>(threadIdx.x >> 5);
  const int lane = static_cast<int>(threadIdx.x & 31u);
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
  if (b >= a.num_sequences) return;
  const int64_t begin = a.offsets[b], end = a.offsets[b + 1];
  double* sh = staged[warp];
  // The sequence's row rates pass through shared memory kStage at a time
  // (each lane issues its kStagePerLane loads together: one memory latency
  // per stage); every lane then runs the same sequential double sum and
  // detail::SelectRow walk over them, so every lane gets the CPU's bits.
  // A sequence of at most kStage rows is staged once for both walks.
  int64_t staged_base = -1;
  auto stage = [&](int64_t base) {
    const int n = end - base < kStage ? static_cast<int>(end - base) : kStage;
    if (base == staged_base) return n;
    staged_base = base;
    double vals[kStagePerLane];
#pragma unroll
    for (int j = 0; j < kStagePerLane; ++j) {
      const int64_t i = base + j * kLanes + lane;
      vals[j] = i < end ? a.row_rate[i] : 0.0;
    }
    __syncwarp();
#pragma unroll
    for (int j = 0; j < kStagePerLane; ++j) sh[j * kLanes + lane] = vals[j];
    __syncwarp();
    return n;
  };
  double sum = 0.0;
  for (int64_t base = begin; base < end; base += kStage) {
    const int n = stage(base);
    for (int j = 0; j < n; ++j) sum += sh[j];
  }
  if (lane == 0) {
    a.total[b] = sum;
    a.event_position[b] = -1;
    a.event_token[b] = -1;
  }
  if (!(sum > 0.0)) return;  // whole warp
  const detail::EventUniforms u = detail::SequenceUniforms(a, b, 0);
  const double u_token = u.second;
  // detail::SelectRow over the staged rates.
  const double target = detail::MulD(u.first, sum);
  double acc = 0.0;
  int64_t row = -1;
  bool found = false;
  for (int64_t base = begin; base < end && !found; base += kStage) {
    const int n = stage(base);
    for (int j = 0; j < n; ++j) {
      const double m = sh[j];
      if (!(m > 0.0)) continue;
      row = base - begin + j;
      if (target < acc + m) {
        found = true;
        break;
      }
      acc += m;
    }
  }
  if (row < 0) return;  // whole warp
  const int64_t r = begin + row;
  const int64_t v = a.vocab;
  const int64_t cols = RawColumns(a.parametrization, v);
  const float* raw_row = a.raw + r * cols;
  const float* z = raw_row + (HasRateColumn(a.parametrization) ? 1 : 0);
  const int32_t x = a.tokens != nullptr ? a.tokens[r] : -1;
  RowScan* scan = &scans[warp];
  if (stored != nullptr) {
    scan->lane[lane] = stored[r].lane[lane];
    if (lane == 0) {
      scan->zmax = stored[r].zmax;
      scan->finite = stored[r].finite;
    }
    __syncwarp();
  } else {
    WarpScanRow<kDepth>(z, v, x, scan);
  }
  const float c = a.row_scales != nullptr ? a.row_scales[r] : 1.0f;
  double rate = 0.0, s_excl = 0.0;
  RowRateOf(a.parametrization, raw_row, v, x, c, *scan, WarpLaneTotal(scan->lane[lane]), &rate,
            &s_excl);
  const int32_t t = WarpSelectToken(z, v, x, *scan, s_excl, u_token, &selects[warp]);
  if (t < 0 || lane != 0) return;
  a.event_position[b] = static_cast<int32_t>(row);
  a.event_token[b] = t;
  atomicAdd(&counters->events, 1ull);
}

unsigned BlocksFor(int64_t n) {
  return static_cast<unsigned>((n + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

// InitCounters sets events = 0 and first_nonfinite = all ones (memsets:
// no host-to-device copy from pageable memory).
std::string InitCounters(Counters* d, cudaStream_t stream) {
  JUMPFLOW_CUDA_TRY(cudaMemsetAsync(&d->events, 0, sizeof(d->events), stream));
  JUMPFLOW_CUDA_TRY(cudaMemsetAsync(&d->first_nonfinite, 0xff, sizeof(d->first_nonfinite), stream));
  return {};
}

}  // namespace

bool IsDevicePointer(const void* p) {
  if (p == nullptr) return false;
  cudaPointerAttributes attr;
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();  // clear: no driver / no device means "host"
    return false;
  }
  return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
}

std::string SampleStepCuda(const SampleStepArgs& args, bool host, SampleStepResult* result) {
  *result = SampleStepResult{};
  if (args.rows <= 0) return {};
  JUMPFLOW_STAGE(RetainPoolMemory());
  cudaStream_t stream = static_cast<cudaStream_t>(args.cuda_stream);
  const size_t nr = static_cast<size_t>(args.rows);
  const size_t nb = static_cast<size_t>(args.num_sequences);
  const size_t n_raw = nr * static_cast<size_t>(RawColumns(args.parametrization, args.vocab));
  Staged<float> raw(stream), scales(stream);
  Staged<int64_t> offsets(stream);
  Staged<int32_t> tokens(stream), new_token(stream);
  Staged<double> fire(stream), row_rate(stream);
  Staged<uint32_t> ids(stream), steps(stream);
  Staged<uint8_t> jumped(stream);
  JUMPFLOW_STAGE(raw.Input(args.raw, n_raw, host));
  JUMPFLOW_STAGE(offsets.Input(args.offsets, nb + 1, host));
  JUMPFLOW_STAGE(tokens.Input(args.tokens, nr, host));
  JUMPFLOW_STAGE(scales.Input(args.row_scales, nr, host));
  JUMPFLOW_STAGE(fire.Input(args.fire, nb, host));
  JUMPFLOW_STAGE(ids.Input(args.sequence_ids, nb, host));
  JUMPFLOW_STAGE(steps.Input(args.steps, nb, host));
  JUMPFLOW_STAGE(jumped.Output(args.jumped, nr, host));
  JUMPFLOW_STAGE(new_token.Output(args.new_token, nr, host));
  JUMPFLOW_STAGE(row_rate.Output(args.row_rate, nr, host));
  DeviceBuffer<Counters> counters(stream);
  JUMPFLOW_CUDA_TRY(counters.Allocate(1));
  JUMPFLOW_STAGE(InitCounters(counters.get(), stream));

  SampleStepArgs d = args;
  d.raw = raw.get();
  d.offsets = offsets.get();
  d.tokens = tokens.get();
  d.row_scales = scales.get();
  d.fire = fire.get();
  d.sequence_ids = ids.get();
  d.steps = steps.get();
  d.jumped = jumped.get();
  d.new_token = new_token.get();
  d.row_rate = row_rate.get();
  const unsigned grid = BlocksFor(args.rows), threads = 32 * kWarpsPerBlock;
  if (args.vocab >= kDeepScanMinVocab) {
    SampleStepKernel<4><<<grid, threads, 0, stream>>>(d, counters.get());
  } else {
    SampleStepKernel<2><<<grid, threads, 0, stream>>>(d, counters.get());
  }
  JUMPFLOW_CUDA_TRY_LAUNCH("SampleStepKernel");
  JUMPFLOW_STAGE(jumped.CopyBack());
  JUMPFLOW_STAGE(new_token.CopyBack());
  JUMPFLOW_STAGE(row_rate.CopyBack());
  Counters h{};
  JUMPFLOW_STAGE(CopyResultsBack(&h, counters.get(), sizeof(h), stream));
  result->jumps = static_cast<int64_t>(h.events);
  result->first_nonfinite_row =
      h.first_nonfinite == ~0ull ? -1 : static_cast<int64_t>(h.first_nonfinite);
  return {};
}

std::string GillespieCuda(const GillespieArgs& args, bool host, GillespieResult* result) {
  *result = GillespieResult{};
  if (args.num_sequences <= 0) return {};
  JUMPFLOW_STAGE(RetainPoolMemory());
  cudaStream_t stream = static_cast<cudaStream_t>(args.cuda_stream);
  const size_t nr = static_cast<size_t>(args.rows);
  const size_t nb = static_cast<size_t>(args.num_sequences);
  const size_t n_raw = nr * static_cast<size_t>(RawColumns(args.parametrization, args.vocab));
  Staged<float> raw(stream), scales(stream);
  Staged<int64_t> offsets(stream);
  Staged<int32_t> tokens(stream), position(stream), token(stream);
  Staged<double> row_rate(stream), total(stream);
  Staged<uint32_t> ids(stream), steps(stream);
  JUMPFLOW_STAGE(raw.Input(args.raw, n_raw, host));
  JUMPFLOW_STAGE(offsets.Input(args.offsets, nb + 1, host));
  JUMPFLOW_STAGE(tokens.Input(args.tokens, nr, host));
  JUMPFLOW_STAGE(scales.Input(args.row_scales, nr, host));
  JUMPFLOW_STAGE(ids.Input(args.sequence_ids, nb, host));
  JUMPFLOW_STAGE(steps.Input(args.steps, nb, host));
  JUMPFLOW_STAGE(row_rate.Output(args.row_rate, nr, host));
  JUMPFLOW_STAGE(total.Output(args.total, nb, host));
  JUMPFLOW_STAGE(position.Output(args.event_position, nb, host));
  JUMPFLOW_STAGE(token.Output(args.event_token, nb, host));
  DeviceBuffer<RowScan> scans(stream);  // stored row scans (wide rows only)
  DeviceBuffer<Counters> counters(stream);
  JUMPFLOW_CUDA_TRY(counters.Allocate(1));
  JUMPFLOW_STAGE(InitCounters(counters.get(), stream));

  GillespieArgs d = args;
  d.raw = raw.get();
  d.offsets = offsets.get();
  d.tokens = tokens.get();
  d.row_scales = scales.get();
  d.sequence_ids = ids.get();
  d.steps = steps.get();
  d.row_rate = row_rate.get();
  d.total = total.get();
  d.event_position = position.get();
  d.event_token = token.get();
  if (args.rows > 0) {
    if (args.vocab >= kStoreScanMinVocab) {
      JUMPFLOW_CUDA_TRY(scans.Allocate(nr));
    }
    const unsigned grid = BlocksFor(args.rows), threads = 32 * kWarpsPerBlock;
    if (args.vocab >= kDeepScanMinVocab) {
      GillespieRowsKernel<4><<<grid, threads, 0, stream>>>(d, counters.get(), scans.get());
    } else {
      GillespieRowsKernel<2><<<grid, threads, 0, stream>>>(d, counters.get(), scans.get());
    }
    JUMPFLOW_CUDA_TRY_LAUNCH("GillespieRowsKernel");
  }
  // The select kernel scans a chosen row only when the rows kernel did not
  // store the scans, i.e. for rows shorter than kStoreScanMinVocab.
  GillespieSelectKernel<2><<<BlocksFor(args.num_sequences), 32 * kWarpsPerBlock, 0, stream>>>(
      d, counters.get(), scans.get());
  JUMPFLOW_CUDA_TRY_LAUNCH("GillespieSelectKernel");
  JUMPFLOW_STAGE(row_rate.CopyBack());
  JUMPFLOW_STAGE(total.CopyBack());
  JUMPFLOW_STAGE(position.CopyBack());
  JUMPFLOW_STAGE(token.CopyBack());
  Counters h{};
  JUMPFLOW_STAGE(CopyResultsBack(&h, counters.get(), sizeof(h), stream));
  result->events = static_cast<int64_t>(h.events);
  result->first_nonfinite_row =
      h.first_nonfinite == ~0ull ? -1 : static_cast<int64_t>(h.first_nonfinite);
  return {};
}

}  // namespace jumpflow::kernels::cuda_internal
