// @brief Benchmarks of the fused parametrization + Bregman loss + gradient
// (kernels/loss.h, CPU backend) at (B, L, V) = (64, 256, 32),
// (64, 256, 1024), (8, 256, 32768) with sparse one-hot (DFM) targets, next
// to a plain memory copy of the same bytes in the same binary.
//
// Bytes counted for both: the logits read plus the gradient written,
// 2 x rows x cols x 4 (a copy of the logits into the gradient buffer moves
// exactly these bytes). The ratio BM_FusedLoss_Cpu / BM_Copy_Cpu of the
// bytes_per_second columns at equal arguments is the roofline fraction
// (target >= 0.5). The last argument is the thread count (tbb::global_control);
// the copy runs on as many threads, each copying a contiguous chunk.
// BM_ExpFloor_Cpu is the compute floor next to that memory ceiling: one
// vector exp (the loss kernel's ExpEv16) per logit and a sum, nothing else,
// with its bytes counted like the loss's; any softmax loss+gradient does at
// least this work, so ExpFloor / Copy bounds the loss's ratio from above.
// BM_SoftmaxFloor_Cpu (V = 32) adds the row maxima and sums and the write of
// the gradient: the tighter bound for short rows.
//
// Example:
//   build/bench/losses_bench --benchmark_filter='BM_(FusedLoss|Copy)_Cpu'
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "kernels/cpu/detail/vec16.h"
#include "kernels/loss.h"

namespace jumpflow {
namespace {

using kernels::Divergence;
using kernels::LossArgs;
using kernels::Parametrization;

// Problem is one DFM-like batch: logits, one-hot sparse targets (the clean
// token), excluded column (the current token, different from the target).
struct Problem {
  int64_t rows = 0, v = 0, cols = 0;
  std::vector<float> raw, grad;
  std::vector<int64_t> offsets;
  std::vector<int32_t> tcols, excluded;
  std::vector<float> tvals, weights;
};

Problem MakeProblem(int64_t rows, int64_t v, Parametrization p) {
  Problem pr;
  pr.rows = rows;
  pr.v = v;
  pr.cols = kernels::RawColumns(p, v);
  pr.raw.resize(static_cast<size_t>(rows * pr.cols));
  pr.grad.assign(pr.raw.size(), 0.0f);
  std::mt19937_64 rng(42);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (auto& x : pr.raw) x = normal(rng);
  pr.offsets.resize(static_cast<size_t>(rows + 1));
  pr.excluded.resize(static_cast<size_t>(rows));
  pr.weights.resize(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    pr.offsets[static_cast<size_t>(r)] = r;
    const int32_t target = static_cast<int32_t>(rng() % static_cast<uint64_t>(v));
    int32_t current = static_cast<int32_t>(rng() % static_cast<uint64_t>(v));
    if (current == target) current = (current + 1) % static_cast<int32_t>(v);
    pr.tcols.push_back(target);
    pr.tvals.push_back(1.0f);
    pr.excluded[static_cast<size_t>(r)] = v > 1 ? current : -1;
    pr.weights[static_cast<size_t>(r)] = 0.5f + 0.001f * static_cast<float>(r % 100);
  }
  pr.offsets[static_cast<size_t>(rows)] = rows;
  return pr;
}

LossArgs<float> ArgsFor(Problem& pr, Parametrization p, Divergence d) {
  LossArgs<float> a;
  a.parametrization = p;
  a.divergence = d;
  a.rows = pr.rows;
  a.targets_per_row = pr.v;
  a.raw = pr.raw.data();
  a.grad = pr.grad.data();
  a.sparse_row_offsets = pr.offsets.data();
  a.sparse_cols = pr.tcols.data();
  a.sparse_values = pr.tvals.data();
  a.excluded_cols = pr.excluded.data();
  a.row_weights = pr.weights.data();
  return a;
}

void SetBytes(benchmark::State& state, const Problem& pr) {
  const int64_t bytes = 2 * pr.rows * pr.cols * static_cast<int64_t>(sizeof(float));
  state.SetBytesProcessed(state.iterations() * bytes);
  state.SetItemsProcessed(state.iterations() * pr.rows);
}

// Args: B, L, V, threads.
void RunLoss(benchmark::State& state, Parametrization p, Divergence d) {
  tbb::global_control threads(tbb::global_control::max_allowed_parallelism,
                              static_cast<size_t>(state.range(3)));
  Problem pr = MakeProblem(state.range(0) * state.range(1), state.range(2), p);
  const LossArgs<float> args = ArgsFor(pr, p, d);
  for (auto _ : state) {
    kernels::LossResult res = kernels::FusedLossCpu(args);
    benchmark::DoNotOptimize(res);
    benchmark::ClobberMemory();
  }
  SetBytes(state, pr);
}

// BM_FusedLoss_Cpu: softmax + Poisson-Bregman over y != x_t (the DFM loss).
void BM_FusedLoss_Cpu(benchmark::State& state) {
  RunLoss(state, Parametrization::kSoftmax, Divergence::kPoisson);
}

// BM_FusedLossRateSoftmax_Cpu: total rate x softmax (Edit Flows insertion
// and substitution heads), Poisson-Bregman.
void BM_FusedLossRateSoftmax_Cpu(benchmark::State& state) {
  RunLoss(state, Parametrization::kSoftplusRateSoftmax, Divergence::kPoisson);
}

// BM_FusedLossSoftmaxBce_Cpu: softmax + BCE (needs a per-column pass with a
// division and a log: the slowest softmax combination).
void BM_FusedLossSoftmaxBce_Cpu(benchmark::State& state) {
  RunLoss(state, Parametrization::kSoftmax, Divergence::kBce);
}

// BM_Copy_Cpu: memcpy of the logits into the gradient buffer, the same bytes,
// split into one contiguous chunk per thread.
void BM_Copy_Cpu(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(3));
  tbb::global_control control(tbb::global_control::max_allowed_parallelism,
                              static_cast<size_t>(threads));
  Problem pr =
      MakeProblem(state.range(0) * state.range(1), state.range(2), Parametrization::kSoftmax);
  const size_t n = pr.raw.size();
  for (auto _ : state) {
    if (threads == 1) {
      std::memcpy(pr.grad.data(), pr.raw.data(), n * sizeof(float));
    } else {
      tbb::parallel_for(0, threads, [&](int i) {
        const size_t begin = n * static_cast<size_t>(i) / static_cast<size_t>(threads);
        const size_t end = n * static_cast<size_t>(i + 1) / static_cast<size_t>(threads);
        std::memcpy(pr.grad.data() + begin, pr.raw.data() + begin, (end - begin) * sizeof(float));
      });
    }
    benchmark::ClobberMemory();
  }
  SetBytes(state, pr);
}

// BM_ExpFloor_Cpu: sum of ExpEv16 over the logits (see the file comment),
// one contiguous chunk per thread.
void BM_ExpFloor_Cpu(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(3));
  tbb::global_control control(tbb::global_control::max_allowed_parallelism,
                              static_cast<size_t>(threads));
  Problem pr =
      MakeProblem(state.range(0) * state.range(1), state.range(2), Parametrization::kSoftmax);
  const size_t n = pr.raw.size() / kernels::detail::kWidth * kernels::detail::kWidth;
  std::vector<float> partial(static_cast<size_t>(threads));
  for (auto _ : state) {
    tbb::parallel_for(0, threads, [&](int i) {
      const size_t begin = n * static_cast<size_t>(i) / static_cast<size_t>(threads) / 16 * 16;
      const size_t end = n * static_cast<size_t>(i + 1) / static_cast<size_t>(threads) / 16 * 16;
      kernels::detail::F16 acc{};
      for (size_t k = begin; k < end; k += kernels::detail::kWidth) {
        acc += kernels::detail::ExpEv16(kernels::detail::Load16(pr.raw.data() + k));
      }
      float t = 0.0f;
      for (int j = 0; j < kernels::detail::kWidth; ++j) t += acc[j];
      partial[static_cast<size_t>(i)] = t;
    });
    benchmark::DoNotOptimize(partial.data());
    benchmark::ClobberMemory();
  }
  SetBytes(state, pr);
}

// BM_SoftmaxFloor_Cpu: the least work of any softmax loss + gradient, for
// rows of at most 32 logits (V = 32 only): per block of 16 rows, the row
// maxima and sums by ReduceRows16 (kernels/cpu/detail/vec16.h), one ExpEv16
// per logit, and the normalised exponentials written to the gradient buffer
// (no targets, no loss). The fused loss's V = 32 path does this plus its
// per-row loss terms, so Floor / Copy bounds its ratio from above more
// tightly than BM_ExpFloor_Cpu, which writes nothing.
// (GCC 12 reports the AVX-512 intrinsics' undefined pass-through operands
// where ExpEv16 is inlined here: the false positive of GCC PR 105593.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
void BM_SoftmaxFloor_Cpu(benchmark::State& state) {
  using kernels::detail::F16;
  using kernels::detail::Load16;
  constexpr int kW = kernels::detail::kWidth;
  const int threads = static_cast<int>(state.range(3));
  if (state.range(2) != 2 * kW) {
    state.SkipWithError("V = 32 only");
    return;
  }
  tbb::global_control control(tbb::global_control::max_allowed_parallelism,
                              static_cast<size_t>(threads));
  Problem pr =
      MakeProblem(state.range(0) * state.range(1), state.range(2), Parametrization::kSoftmax);
  const int64_t blocks = pr.rows / kW;
  auto run_block = [&](int64_t b) {
    const float* raw = pr.raw.data() + b * kW * 2 * kW;
    float* grad = pr.grad.data() + b * kW * 2 * kW;
    F16 part[kW];
    for (int i = 0; i < kW; ++i) {
      const F16 x = Load16(raw + 2 * kW * i), y = Load16(raw + 2 * kW * i + kW);
      part[i] = x > y ? x : y;
    }
    alignas(64) float mx[kW], inv[kW];
    const F16 m = kernels::detail::ReduceRows16(part, [](F16 x, F16 y) { return x > y ? x : y; });
    std::memcpy(mx, &m, sizeof(m));
    alignas(64) float e[kW * 2 * kW];
    for (int i = 0; i < kW; ++i) {
      const F16 x = kernels::detail::ExpEv16(Load16(raw + 2 * kW * i) - mx[i]);
      const F16 y = kernels::detail::ExpEv16(Load16(raw + 2 * kW * i + kW) - mx[i]);
      std::memcpy(e + 2 * kW * i, &x, sizeof(x));
      std::memcpy(e + 2 * kW * i + kW, &y, sizeof(y));
      part[i] = x + y;
    }
    const F16 s = 1.0f / kernels::detail::ReduceRows16(part, [](F16 x, F16 y) { return x + y; });
    std::memcpy(inv, &s, sizeof(s));
    for (int i = 0; i < kW; ++i) {
      const F16 x = Load16(e + 2 * kW * i) * inv[i], y = Load16(e + 2 * kW * i + kW) * inv[i];
      std::memcpy(grad + 2 * kW * i, &x, sizeof(x));
      std::memcpy(grad + 2 * kW * i + kW, &y, sizeof(y));
    }
  };
  for (auto _ : state) {
    tbb::parallel_for(0, threads, [&](int i) {
      const int64_t begin = blocks * i / threads, end = blocks * (i + 1) / threads;
      for (int64_t b = begin; b < end; ++b) run_block(b);
    });
    benchmark::ClobberMemory();
  }
  SetBytes(state, pr);
}
#pragma GCC diagnostic pop

void SmallShapes(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2}) b->Args({64, 256, 32, threads});
  b->ArgNames({"B", "L", "V", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
}

void Shapes(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2}) {
    b->Args({64, 256, 32, threads});
    b->Args({64, 256, 1024, threads});
    b->Args({8, 256, 32768, threads});
  }
  b->ArgNames({"B", "L", "V", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_Copy_Cpu)->Apply(Shapes);
BENCHMARK(BM_ExpFloor_Cpu)->Apply(Shapes);
BENCHMARK(BM_SoftmaxFloor_Cpu)->Apply(SmallShapes);
BENCHMARK(BM_FusedLoss_Cpu)->Apply(Shapes);
BENCHMARK(BM_FusedLossRateSoftmax_Cpu)->Apply(Shapes);
BENCHMARK(BM_FusedLossSoftmaxBce_Cpu)->Apply(Shapes);

}  // namespace
}  // namespace jumpflow

BENCHMARK_MAIN();
