// @brief The CUDA loss kernel's row code (kernels/detail/loss_row.h) run on
// the host with a serial team, against the CPU backend (FusedLossCpu,
// float) for every (parametrization, divergence, dense/sparse) combination,
// through the shared backend tolerance (tests/kernels/backend_compare.h).
// This checks the formulas the GPU runs on machines without a GPU; the
// CUDA kernel itself is compared in cuda_kernels_test.
#include <gtest/gtest.h>

#include <barrier>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kernels/detail/loss_row.h"
#include "kernels/loss.h"
#include "tests/kernels/backend_compare.h"
#include "tests/kernels/loss_problem.h"

namespace jumpflow::kernels {
namespace {

using testing::ExpectClose;
using testing::ExpectRowsClose;
using testing::LossProblem;
using testing::MakeLossProblem;

// ThreadTeam runs the row code on `size` host threads that meet at a
// std::barrier for every reduction and Sync(), as the threads of a GPU
// block do: a faithful emulation of the strided loops and the reductions.
struct TeamShared {
  explicit TeamShared(int n) : barrier(n), f(static_cast<size_t>(n)), d(static_cast<size_t>(n)) {}
  std::barrier<> barrier;
  std::vector<float> f;
  std::vector<double> d;
};

struct ThreadTeam {
  int r, n;
  TeamShared* sh;
  int rank() const { return r; }
  int size() const { return n; }
  template <typename T, typename Op>
  T Reduce(std::vector<T>& slots, T v, Op op) const {
    slots[static_cast<size_t>(r)] = v;
    sh->barrier.arrive_and_wait();
    T acc = slots[0];
    for (int i = 1; i < n; ++i) acc = op(acc, slots[static_cast<size_t>(i)]);
    sh->barrier.arrive_and_wait();  // slots reused by the next reduction
    return acc;
  }
  float Max(float v) const {
    return Reduce(sh->f, v, [](float a, float b) { return std::max(a, b); });
  }
  float SumF(float v) const { return Reduce(sh->f, v, std::plus<float>()); }
  double SumD(double v) const { return Reduce(sh->d, v, std::plus<double>()); }
  bool All(bool v) const {
    return Reduce(sh->f, v ? 1.0f : 0.0f, [](float a, float b) { return std::min(a, b); }) > 0.0f;
  }
  void Sync() const { sh->barrier.arrive_and_wait(); }
};

// RunRow runs the row code with a serial team (team_size 1) or on
// team_size threads; returns rank 0's result.
template <Divergence D, bool kDense>
detail::LossRowOut RunRow(int team_size, const detail::LossRowIn& in) {
  if (team_size == 1)
    return detail::LossRow<detail::SerialTeam, D, kDense>(detail::SerialTeam{}, in);
  TeamShared sh(team_size);
  std::vector<detail::LossRowOut> outs(static_cast<size_t>(team_size));
  std::vector<std::thread> threads;
  for (int t = 0; t < team_size; ++t) {
    threads.emplace_back([&, t] {
      outs[static_cast<size_t>(t)] =
          detail::LossRow<ThreadTeam, D, kDense>(ThreadTeam{t, team_size, &sh}, in);
    });
  }
  for (std::thread& th : threads) th.join();
  for (const detail::LossRowOut& o : outs) {
    EXPECT_EQ(o.finite, outs[0].finite);
    EXPECT_EQ(o.loss, outs[0].loss);  // every member gets the same reduced value
  }
  return outs[0];
}

// EmulateCudaLoss mirrors kernels/cuda/loss.cu (PrepareRow, LossRow,
// FinishRow, the active-row count and the final sum) with a serial team.
LossResult EmulateCudaLoss(const LossArgs<float>& a, int team_size = 1) {
  LossResult res;
  const int64_t v = a.targets_per_row, cols = RawColumns(a.parametrization, v);
  int64_t active = 0;
  for (int64_t r = 0; r < a.rows; ++r) active += a.row_mask == nullptr || a.row_mask[r] != 0;
  res.active_rows = active;
  const float scale =
      a.reduction == Reduction::kMean && active > 0 ? 1.0f / static_cast<float>(active) : 1.0f;
  for (int64_t r = 0; r < a.rows; ++r) {
    float* g = a.grad != nullptr ? a.grad + r * cols : nullptr;
    const float w = a.row_weights != nullptr ? a.row_weights[r] : 1.0f;
    if ((a.row_mask != nullptr && a.row_mask[r] == 0) || w == 0.0f) {
      for (int64_t k = 0; g != nullptr && k < cols; ++k) g[k] = 0.0f;
      if (a.row_loss != nullptr) a.row_loss[r] = 0.0f;
      continue;
    }
    detail::LossRowIn in;
    in.param = a.parametrization;
    in.v = v;
    in.raw = a.raw + r * cols;
    in.dense = a.dense_targets != nullptr ? a.dense_targets + r * v : nullptr;
    in.sp_cols = nullptr;
    in.sp_vals = nullptr;
    in.nnz = 0;
    if (a.dense_targets == nullptr) {
      in.sp_cols = a.sparse_cols + a.sparse_row_offsets[r];
      in.sp_vals = a.sparse_values + a.sparse_row_offsets[r];
      in.nnz = a.sparse_row_offsets[r + 1] - a.sparse_row_offsets[r];
    }
    in.exclude = a.excluded_cols != nullptr ? a.excluded_cols[r] : -1;
    in.c = a.row_scales != nullptr ? a.row_scales[r] : 1.0f;
    in.log_c = a.row_scales != nullptr ? logf(in.c) : 0.0f;
    in.gw = w * scale;
    in.grad = g;
    detail::LossRowOut out{};
    const bool dense = a.dense_targets != nullptr;
    switch (a.divergence) {
      case Divergence::kPoisson:
        out = dense ? RunRow<Divergence::kPoisson, true>(team_size, in)
                    : RunRow<Divergence::kPoisson, false>(team_size, in);
        break;
      case Divergence::kBce:
        out = dense ? RunRow<Divergence::kBce, true>(team_size, in)
                    : RunRow<Divergence::kBce, false>(team_size, in);
        break;
      case Divergence::kMse:
        out = dense ? RunRow<Divergence::kMse, true>(team_size, in)
                    : RunRow<Divergence::kMse, false>(team_size, in);
        break;
      case Divergence::kGeneralizedKl:
        out = dense ? RunRow<Divergence::kGeneralizedKl, true>(team_size, in)
                    : RunRow<Divergence::kGeneralizedKl, false>(team_size, in);
        break;
    }
    if (!out.finite) {
      for (int64_t k = 0; g != nullptr && k < cols; ++k) g[k] = 0.0f;
      if (a.row_loss != nullptr) a.row_loss[r] = 0.0f;
      if (res.first_nonfinite_row < 0) res.first_nonfinite_row = r;
      continue;
    }
    const double row_loss = static_cast<double>(w) * out.loss;
    if (a.row_loss != nullptr) a.row_loss[r] = static_cast<float>(row_loss);
    res.sum += row_loss;
  }
  res.mean = active > 0 ? res.sum / static_cast<double>(active) : 0.0;
  return res;
}

TEST(LossEmulationTest, SerialTeamRowCodeMatchesCpuBackend) {
  uint64_t seed = 1;
  for (int64_t v : {5, 37, 300, 2100}) {
    for (Parametrization p : testing::kAllLossParams) {
      for (Divergence d : testing::kAllLossDivs) {
        for (bool dense : {false, true}) {
          for (Reduction red : {Reduction::kSum, Reduction::kMean}) {
            const std::string label = "V " + std::to_string(v) + " " +
                                      testing::LossLabel(p, d, dense) +
                                      (red == Reduction::kMean ? " mean" : " sum");
            SCOPED_TRACE(label);
            LossProblem pr = MakeLossProblem(p, d, dense, v > 1000 ? 6 : 24, v, seed++);
            pr.reduction = red;
            std::vector<float> g_cpu(pr.raw.size()), g_emu(pr.raw.size(), 9.0f);
            std::vector<float> l_cpu(static_cast<size_t>(pr.rows)),
                l_emu(static_cast<size_t>(pr.rows), 9.0f);
            const LossResult cpu = FusedLossCpu(pr.Args(g_cpu.data(), l_cpu.data()));
            const LossResult emu = EmulateCudaLoss(pr.Args(g_emu.data(), l_emu.data()));
            ASSERT_EQ(cpu.first_nonfinite_row, -1);
            EXPECT_EQ(emu.first_nonfinite_row, -1);
            EXPECT_EQ(emu.active_rows, cpu.active_rows);
            ExpectClose(cpu.sum, emu.sum, 0.0, "sum");
            ExpectClose(cpu.mean, emu.mean, 0.0, "mean");
            ExpectRowsClose(l_cpu, l_emu, 1, "row_loss");
            ExpectRowsClose(g_cpu, g_emu, pr.cols, "grad", pr.GradScales());
          }
        }
      }
    }
  }
}

// The same row code on a team of 8 threads with barriers (strided loops,
// reductions, the Sync between the bulk and the target columns).
TEST(LossEmulationTest, ThreadTeamRowCodeMatchesCpuBackend) {
  uint64_t seed = 4000;
  for (int64_t v : {3, 37}) {
    for (Parametrization p : testing::kAllLossParams) {
      for (Divergence d : testing::kAllLossDivs) {
        for (bool dense : {false, true}) {
          SCOPED_TRACE("V " + std::to_string(v) + " " + testing::LossLabel(p, d, dense));
          LossProblem pr = MakeLossProblem(p, d, dense, 8, v, seed++);
          std::vector<float> g_cpu(pr.raw.size()), g_emu(pr.raw.size(), 9.0f);
          std::vector<float> l_cpu(static_cast<size_t>(pr.rows)),
              l_emu(static_cast<size_t>(pr.rows), 9.0f);
          const LossResult cpu = FusedLossCpu(pr.Args(g_cpu.data(), l_cpu.data()));
          const LossResult emu = EmulateCudaLoss(pr.Args(g_emu.data(), l_emu.data()), 8);
          ExpectClose(cpu.sum, emu.sum, 0.0, "sum");
          ExpectRowsClose(l_cpu, l_emu, 1, "row_loss");
          ExpectRowsClose(g_cpu, g_emu, pr.cols, "grad", pr.GradScales());
        }
      }
    }
  }
}

TEST(LossEmulationTest, NonFiniteRowsAreZeroedAndReported) {
  LossProblem pr =
      MakeLossProblem(Parametrization::kSoftmax, Divergence::kPoisson, false, 10, 20, 3);
  pr.raw[static_cast<size_t>(2 * pr.cols + 2)] = std::nanf("");  // row 2 is active
  std::vector<float> g(pr.raw.size(), 1.0f), l(static_cast<size_t>(pr.rows));
  const LossResult emu = EmulateCudaLoss(pr.Args(g.data(), l.data()));
  EXPECT_EQ(emu.first_nonfinite_row, 2);
  for (int64_t k = 0; k < pr.cols; ++k) EXPECT_EQ(g[static_cast<size_t>(2 * pr.cols + k)], 0.0f);
}

}  // namespace
}  // namespace jumpflow::kernels
