// @brief Benchmarks of the fused kernels (issue 7) at (B, L, V) = (64, 256,
// 32), (64, 256, 1024), (8, 256, 32768), CPU and CUDA backends, each next to
// a memory copy of the same bytes in the same binary.
//
// Bytes counted (bytes_per_second) are the kernel's memory traffic:
//   BM_SampleStep_*  logits read (rows x V x 4) + per row token read (4),
//                    jumped + new_token written (5); without the row_rate
//                    output, so rows that cannot jump are only read
//   BM_SampleStepScanAll_*  the same with the row_rate output (8 more bytes
//                    a row): every row scanned, the kernel's full work
//   BM_Gillespie_*   logits read + token read (4) + row rate written (8) per
//                    row (the per-sequence phase re-reads one row per
//                    sequence: not counted)
//   BM_FusedLoss_*   logits read + gradient written (2 x rows x V x 4),
//                    softmax + Poisson, one-hot sparse targets, current token
//                    excluded (the DFM loss)
//   BM_Copy_*        memcpy of the logits into a second buffer: read +
//                    write, 2 x rows x V x 4
//   BM_Read_Cpu      a vectorised sum over the logits with the kernels'
//                    software prefetch: rows x V x 4 (a read-only reference
//                    for the event kernels)
// The roofline fraction of a kernel is its bytes_per_second over
// BM_Copy_*'s at the same arguments (scripts/gpu_check.sh prints the
// ratios). The last CPU argument is the thread count (tbb::global_control;
// the copy splits into one contiguous chunk per thread).
//
// Event draws: logits N(0, 2), random current tokens, fire q = 0.05 per
// sequence (linear form), so ~5% of the rows jump and take the inverse-CDF
// walk.
//
// CUDA benchmarks (BM_*_Cuda) keep every array on the device, time whole
// calls (launch + the final stream synchronisation), and report the card's
// theoretical peak (memory clock x bus width x 2) as peak_bytes_per_second
// (scripts/gpu_check.sh divides). They SkipWithError without a CUDA build
// or a GPU.
//
// Example:
//   build/bench/kernels_bench --benchmark_filter='_Cpu' --benchmark_min_time=0.5
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/parallel_reduce.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "kernels/backend.h"
#include "kernels/gillespie.h"
#include "kernels/loss.h"
#include "kernels/sample_step.h"

#if defined(JUMPFLOW_HAVE_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace jumpflow {
namespace {

using kernels::Parametrization;

// Problem is one batch of B sequences of L rows over V tokens.
struct Problem {
  int64_t b = 0, l = 0, v = 0, rows = 0;
  std::vector<float> raw, grad, tvals, weights;
  std::vector<int64_t> offsets, row_offsets;
  std::vector<int32_t> tokens, tcols, new_token, position, event_token;
  std::vector<uint8_t> jumped;
  std::vector<double> fire, row_rate, total;
};

Problem MakeProblem(int64_t b, int64_t l, int64_t v) {
  Problem p;
  p.b = b;
  p.l = l;
  p.v = v;
  p.rows = b * l;
  const size_t n = static_cast<size_t>(p.rows * v);
  p.raw.resize(n);
  p.grad.assign(n, 0.0f);
  std::mt19937_64 rng(42);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (float& x : p.raw) x = normal(rng);
  for (int64_t s = 0; s <= b; ++s) p.offsets.push_back(s * l);
  for (int64_t r = 0; r < p.rows; ++r) {
    const int32_t target = static_cast<int32_t>(rng() % static_cast<uint64_t>(v));
    int32_t current = static_cast<int32_t>(rng() % static_cast<uint64_t>(v));
    if (current == target && v > 1) current = (current + 1) % static_cast<int32_t>(v);
    p.tokens.push_back(current);
    p.tcols.push_back(target);
    p.tvals.push_back(1.0f);
    p.weights.push_back(0.5f + 0.001f * static_cast<float>(r % 100));
    p.row_offsets.push_back(r);
  }
  p.row_offsets.push_back(p.rows);
  p.fire.assign(static_cast<size_t>(b), 0.05);
  p.jumped.resize(static_cast<size_t>(p.rows));
  p.new_token.resize(static_cast<size_t>(p.rows));
  p.row_rate.resize(static_cast<size_t>(p.rows));
  p.total.resize(static_cast<size_t>(b));
  p.position.resize(static_cast<size_t>(b));
  p.event_token.resize(static_cast<size_t>(b));
  return p;
}

kernels::SampleStepArgs StepArgs(Problem& p) {
  kernels::SampleStepArgs a;
  a.rows = p.rows;
  a.vocab = p.v;
  a.num_sequences = p.b;
  a.raw = p.raw.data();
  a.offsets = p.offsets.data();
  a.tokens = p.tokens.data();
  a.fire = p.fire.data();
  a.seed = 7;
  a.jumped = p.jumped.data();
  a.new_token = p.new_token.data();
  return a;
}

kernels::SampleStepArgs StepArgsWithRates(Problem& p) {
  kernels::SampleStepArgs a = StepArgs(p);
  a.row_rate = p.row_rate.data();
  return a;
}

kernels::GillespieArgs GArgs(Problem& p) {
  kernels::GillespieArgs g;
  g.rows = p.rows;
  g.vocab = p.v;
  g.num_sequences = p.b;
  g.raw = p.raw.data();
  g.offsets = p.offsets.data();
  g.tokens = p.tokens.data();
  g.seed = 7;
  g.row_rate = p.row_rate.data();
  g.total = p.total.data();
  g.event_position = p.position.data();
  g.event_token = p.event_token.data();
  return g;
}

kernels::LossArgs<float> LossArgsFor(Problem& p) {
  kernels::LossArgs<float> a;
  a.rows = p.rows;
  a.targets_per_row = p.v;
  a.raw = p.raw.data();
  a.grad = p.grad.data();
  a.sparse_row_offsets = p.row_offsets.data();
  a.sparse_cols = p.tcols.data();
  a.sparse_values = p.tvals.data();
  a.excluded_cols = p.tokens.data();
  a.row_weights = p.weights.data();
  return a;
}

int64_t LogitBytes(const Problem& p) { return p.rows * p.v * static_cast<int64_t>(sizeof(float)); }

void Report(benchmark::State& state, const Problem& p, int64_t bytes) {
  state.SetBytesProcessed(state.iterations() * bytes);
  state.SetItemsProcessed(state.iterations() * p.rows);
}

// --- CPU -----------------------------------------------------------------------

// Args: B, L, V, threads.
Problem CpuProblem(benchmark::State& state) {
  return MakeProblem(state.range(0), state.range(1), state.range(2));
}

// TimeCpu times `kernel` on the arguments make_args(problem) with the
// benchmark's thread count; bytes = logit_copies x logits + row_bytes a row.
template <typename MakeArgs, typename Kernel>
void TimeCpu(benchmark::State& state, MakeArgs make_args, Kernel kernel, int64_t logit_copies,
             int64_t row_bytes) {
  tbb::global_control threads(tbb::global_control::max_allowed_parallelism,
                              static_cast<size_t>(state.range(3)));
  Problem p = CpuProblem(state);
  const auto args = make_args(p);
  for (auto _ : state) {
    auto r = kernel(args);
    benchmark::DoNotOptimize(r);
    benchmark::ClobberMemory();
  }
  Report(state, p, logit_copies * LogitBytes(p) + row_bytes * p.rows);
}

void BM_SampleStep_Cpu(benchmark::State& state) {
  TimeCpu(state, StepArgs, kernels::SampleStepCpu, 1, 9);
}

void BM_SampleStepScanAll_Cpu(benchmark::State& state) {
  TimeCpu(state, StepArgsWithRates, kernels::SampleStepCpu, 1, 17);
}

void BM_Gillespie_Cpu(benchmark::State& state) {
  TimeCpu(state, GArgs, kernels::GillespieCpu, 1, 12);
}

void BM_FusedLoss_Cpu(benchmark::State& state) {
  TimeCpu(
      state, LossArgsFor,
      [](const kernels::LossArgs<float>& a) { return kernels::FusedLossCpu(a); }, 2, 0);
}

void BM_Copy_Cpu(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(3));
  tbb::global_control control(tbb::global_control::max_allowed_parallelism,
                              static_cast<size_t>(threads));
  Problem p = CpuProblem(state);
  const size_t n = p.raw.size();
  for (auto _ : state) {
    if (threads == 1) {
      std::memcpy(p.grad.data(), p.raw.data(), n * sizeof(float));
    } else {
      tbb::parallel_for(0, threads, [&](int i) {
        const size_t begin = n * static_cast<size_t>(i) / static_cast<size_t>(threads);
        const size_t end = n * static_cast<size_t>(i + 1) / static_cast<size_t>(threads);
        std::memcpy(p.grad.data() + begin, p.raw.data() + begin, (end - begin) * sizeof(float));
      });
    }
    benchmark::ClobberMemory();
  }
  Report(state, p, 2 * LogitBytes(p));
}

// SumChunk sums x[0..n) as 64 independent lanes (four 16-float vectors when
// vectorised), prefetching 4 KiB ahead as the event kernels do, so the read
// reference is not held back by one chain of dependent adds or by waiting
// on each cache line.
float SumChunk(const float* x, size_t n) {
  constexpr size_t kLanes = 64, kAhead = 1024;  // floats
  float acc[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (size_t l = 0; l < kLanes; l += 16) __builtin_prefetch(x + i + kAhead + l, 0, 3);
    for (size_t l = 0; l < kLanes; ++l) acc[l] += x[i + l];
  }
  float s = 0.0f;
  for (; i < n; ++i) s += x[i];
  for (float a : acc) s += a;
  return s;
}

void BM_Read_Cpu(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(3));
  tbb::global_control control(tbb::global_control::max_allowed_parallelism,
                              static_cast<size_t>(threads));
  Problem p = CpuProblem(state);
  const size_t n = p.raw.size();
  for (auto _ : state) {
    float s = 0.0f;
    if (threads == 1) {
      s = SumChunk(p.raw.data(), n);
    } else {
      std::vector<float> part(static_cast<size_t>(threads));
      tbb::parallel_for(0, threads, [&](int i) {
        const size_t begin = n * static_cast<size_t>(i) / static_cast<size_t>(threads);
        const size_t end = n * static_cast<size_t>(i + 1) / static_cast<size_t>(threads);
        part[static_cast<size_t>(i)] = SumChunk(p.raw.data() + begin, end - begin);
      });
      for (float x : part) s += x;
    }
    benchmark::DoNotOptimize(s);
  }
  Report(state, p, LogitBytes(p));
}

void CpuShapes(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2}) {
    b->Args({64, 256, 32, threads});
    b->Args({64, 256, 1024, threads});
    b->Args({8, 256, 32768, threads});
  }
  b->ArgNames({"B", "L", "V", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_Copy_Cpu)->Apply(CpuShapes);
BENCHMARK(BM_Read_Cpu)->Apply(CpuShapes);
BENCHMARK(BM_SampleStep_Cpu)->Apply(CpuShapes);
BENCHMARK(BM_SampleStepScanAll_Cpu)->Apply(CpuShapes);
BENCHMARK(BM_Gillespie_Cpu)->Apply(CpuShapes);
BENCHMARK(BM_FusedLoss_Cpu)->Apply(CpuShapes);

// --- CUDA ----------------------------------------------------------------------

// CudaReady returns false (and skips the benchmark) without a CUDA build or
// a GPU.
bool CudaReady(benchmark::State& state) {
  // Every CUDA run carries the same counters (the CSV reporter needs them).
  state.counters["peak_bytes_per_second"] = 0.0;
  if (!kernels::CudaCompiled()) {
    state.SkipWithError("the CUDA backend was not compiled into this build");
    return false;
  }
  if (kernels::CudaDeviceCount() == 0) {
    state.SkipWithError("no CUDA device present");
    return false;
  }
  return true;
}

#if defined(JUMPFLOW_HAVE_CUDA)
// Dev is a device copy of a host vector (or uninitialised, same size).
template <typename T>
struct Dev {
  T* ptr = nullptr;
  Dev(const std::vector<T>& h, bool copy) {
    cudaMalloc(reinterpret_cast<void**>(&ptr), std::max<size_t>(1, h.size()) * sizeof(T));
    if (copy && !h.empty()) cudaMemcpy(ptr, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice);
  }
  ~Dev() { cudaFree(ptr); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
};

// DeviceProblem holds every array of a Problem on the device.
struct DeviceProblem {
  explicit DeviceProblem(const Problem& p)
      : raw(p.raw, true),
        grad(p.grad, false),
        tvals(p.tvals, true),
        weights(p.weights, true),
        offsets(p.offsets, true),
        row_offsets(p.row_offsets, true),
        tokens(p.tokens, true),
        tcols(p.tcols, true),
        new_token(p.new_token, false),
        position(p.position, false),
        event_token(p.event_token, false),
        jumped(p.jumped, false),
        fire(p.fire, true),
        row_rate(p.row_rate, false),
        total(p.total, false) {}
  Dev<float> raw, grad, tvals, weights;
  Dev<int64_t> offsets, row_offsets;
  Dev<int32_t> tokens, tcols, new_token, position, event_token;
  Dev<uint8_t> jumped;
  Dev<double> fire, row_rate, total;
};

// PeakBytesPerSecond is memory clock (kHz) x 2 (DDR) x bus width (bytes).
double PeakBytesPerSecond() {
  int dev = 0, clock_khz = 0, bus_bits = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, dev);
  cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, dev);
  return 2.0 * clock_khz * 1e3 * (bus_bits / 8.0);
}

// TimeCalls runs call() once per iteration; a failed call ends the benchmark
// with its message (returns false).
template <typename Call>
bool TimeCalls(benchmark::State& state, Call call) {
  for (auto _ : state) {
    const auto r = call();
    if (!r.ok()) {
      state.SkipWithError(std::string(r.status().message()).c_str());
      return false;
    }
  }
  return true;
}

void ReportCuda(benchmark::State& state, const Problem& p, int64_t bytes) {
  Report(state, p, bytes);
  state.counters["peak_bytes_per_second"] = PeakBytesPerSecond();
}
#endif

// TimeSampleStepCuda times SampleStep on device arrays, with the row_rate
// output when `rates`. Args: B, L, V.
void TimeSampleStepCuda(benchmark::State& state, bool rates) {
  if (!CudaReady(state)) return;
#if defined(JUMPFLOW_HAVE_CUDA)
  Problem p = MakeProblem(state.range(0), state.range(1), state.range(2));
  DeviceProblem d(p);
  kernels::SampleStepArgs a = StepArgs(p);
  a.raw = d.raw.ptr;
  a.offsets = d.offsets.ptr;
  a.tokens = d.tokens.ptr;
  a.fire = d.fire.ptr;
  a.jumped = d.jumped.ptr;
  a.new_token = d.new_token.ptr;
  if (rates) a.row_rate = d.row_rate.ptr;
  if (!TimeCalls(state, [&] { return kernels::SampleStep(a); })) return;
  ReportCuda(state, p, LogitBytes(p) + (rates ? 17 : 9) * p.rows);
#else
  (void)rates;
#endif
}

void BM_SampleStep_Cuda(benchmark::State& state) { TimeSampleStepCuda(state, false); }
void BM_SampleStepScanAll_Cuda(benchmark::State& state) { TimeSampleStepCuda(state, true); }

void BM_Gillespie_Cuda(benchmark::State& state) {
  if (!CudaReady(state)) return;
#if defined(JUMPFLOW_HAVE_CUDA)
  Problem p = MakeProblem(state.range(0), state.range(1), state.range(2));
  DeviceProblem d(p);
  kernels::GillespieArgs g = GArgs(p);
  g.raw = d.raw.ptr;
  g.offsets = d.offsets.ptr;
  g.tokens = d.tokens.ptr;
  g.row_rate = d.row_rate.ptr;
  g.total = d.total.ptr;
  g.event_position = d.position.ptr;
  g.event_token = d.event_token.ptr;
  if (!TimeCalls(state, [&] { return kernels::Gillespie(g); })) return;
  ReportCuda(state, p, LogitBytes(p) + 12 * p.rows);
#endif
}

void BM_FusedLoss_Cuda(benchmark::State& state) {
  if (!CudaReady(state)) return;
#if defined(JUMPFLOW_HAVE_CUDA)
  Problem p = MakeProblem(state.range(0), state.range(1), state.range(2));
  DeviceProblem d(p);
  kernels::LossArgs<float> a = LossArgsFor(p);
  a.raw = d.raw.ptr;
  a.grad = d.grad.ptr;
  a.sparse_row_offsets = d.row_offsets.ptr;
  a.sparse_cols = d.tcols.ptr;
  a.sparse_values = d.tvals.ptr;
  a.excluded_cols = d.tokens.ptr;
  a.row_weights = d.weights.ptr;
  if (!TimeCalls(state, [&] { return kernels::FusedLoss(a); })) return;
  ReportCuda(state, p, 2 * LogitBytes(p));
#endif
}

void BM_Copy_Cuda(benchmark::State& state) {
  if (!CudaReady(state)) return;
#if defined(JUMPFLOW_HAVE_CUDA)
  Problem p = MakeProblem(state.range(0), state.range(1), state.range(2));
  DeviceProblem d(p);
  for (auto _ : state) {
    // Device-to-device cudaMemcpy does not wait for the copy: synchronise,
    // as the kernels' calls do.
    if (cudaMemcpy(d.grad.ptr, d.raw.ptr, static_cast<size_t>(LogitBytes(p)),
                   cudaMemcpyDeviceToDevice) != cudaSuccess ||
        cudaDeviceSynchronize() != cudaSuccess) {
      state.SkipWithError("cudaMemcpy failed");
      return;
    }
  }
  ReportCuda(state, p, 2 * LogitBytes(p));
#endif
}

void CudaShapes(benchmark::internal::Benchmark* b) {
  b->Args({64, 256, 32});
  b->Args({64, 256, 1024});
  b->Args({8, 256, 32768});
  b->ArgNames({"B", "L", "V"})->UseRealTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_Copy_Cuda)->Apply(CudaShapes);
BENCHMARK(BM_SampleStep_Cuda)->Apply(CudaShapes);
BENCHMARK(BM_SampleStepScanAll_Cuda)->Apply(CudaShapes);
BENCHMARK(BM_Gillespie_Cuda)->Apply(CudaShapes);
BENCHMARK(BM_FusedLoss_Cuda)->Apply(CudaShapes);

}  // namespace
}  // namespace jumpflow

BENCHMARK_MAIN();
