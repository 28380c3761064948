// @brief CUDA backend vs CPU backend on random inputs, through the shared
// tolerance rule (tests/kernels/backend_compare.h): event kernels bitwise
// (flags, tokens, positions, and the double rates/totals too), the fused
// loss to 1e-5 relative; host-pointer and device-pointer entry points and
// the pointer-based dispatch. Every test skips without a GPU (ctest label
// `cuda`).
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/gillespie.h"
#include "kernels/loss.h"
#include "kernels/sample_step.h"
#include "tests/kernels/backend_compare.h"
#include "tests/kernels/event_problem.h"
#include "tests/kernels/loss_problem.h"

#if defined(JUMPFLOW_HAVE_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace jumpflow::kernels {
namespace {

using testing::Batch;
using testing::ExpectClose;
using testing::ExpectRowsClose;
using testing::ExpectSameBits;
using testing::GArgs;
using testing::GillespieOut;
using testing::MakeBatch;
using testing::StepArgs;
using testing::StepOut;

#define JUMPFLOW_SKIP_WITHOUT_GPU()                                       \
  do {                                                                    \
    if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device present"; \
  } while (0)

constexpr Parametrization kEventParams[] = {Parametrization::kSoftmax,
                                            Parametrization::kLogRateSoftmax,
                                            Parametrization::kSoftplusRateSoftmax};

// With and without the row_rate output (without it, rows that cannot jump
// are only read and checked for inf / NaN, on both backends); one NaN in
// a row that the fire of its sequence (0 in the second half of the batch)
// rules out.
TEST(CudaEventsTest, SampleStepMatchesCpuBitwise) {
  JUMPFLOW_SKIP_WITHOUT_GPU();
  uint64_t seed = 1;
  for (int64_t v : {5, 32, 300, 1024, 5000}) {
    for (Parametrization p : kEventParams) {
      for (JumpProbability jump : {JumpProbability::kLinear, JumpProbability::kExponential}) {
        for (const bool rates : {true, false}) {
          SCOPED_TRACE("V " + std::to_string(v) + " param " + std::to_string(static_cast<int>(p)) +
                       (rates ? "" : " without rates"));
          Batch bt = MakeBatch(p, 41, v > 1000 ? 20 : 60, v, seed++, 2.0);
          const int64_t half = bt.sequences() / 2;
          for (int64_t b = half; b < bt.sequences(); ++b) bt.fire[b] = 0.0;
          if (bt.rows() > bt.offsets[half]) {
            bt.raw[static_cast<size_t>(bt.offsets[half] * bt.cols + bt.cols - 1)] =
                std::numeric_limits<float>::quiet_NaN();
          }
          StepOut cpu, gpu;
          SampleStepArgs ca = StepArgs(bt, &cpu, 99, true, true, jump);
          SampleStepArgs ga = StepArgs(bt, &gpu, 99, true, true, jump);
          if (!rates) ca.row_rate = ga.row_rate = nullptr;
          cpu.result = SampleStepCpu(ca);
          const absl::StatusOr<SampleStepResult> r = SampleStep(Backend::kCuda, ga);
          ASSERT_TRUE(r.ok()) << r.status();
          EXPECT_EQ(r->jumps, cpu.result.jumps);
          EXPECT_EQ(r->first_nonfinite_row, cpu.result.first_nonfinite_row);
          ExpectSameBits(cpu.jumped, gpu.jumped, "jumped");
          ExpectSameBits(cpu.token, gpu.token, "new_token");
          ExpectSameBits(cpu.rate, gpu.rate, "row_rate");
        }
      }
    }
  }
}

// ExpectSampleStepMatches runs SampleStep (linear jump probabilities, seed)
// on the CPU and on CUDA: bitwise the same outputs, more than min_jumps
// jumps.
void ExpectSampleStepMatches(const Batch& bt, uint64_t seed, int64_t min_jumps) {
  StepOut cpu, gpu;
  cpu.result = SampleStepCpu(StepArgs(bt, &cpu, seed, true, true, JumpProbability::kLinear));
  const absl::StatusOr<SampleStepResult> r =
      SampleStep(Backend::kCuda, StepArgs(bt, &gpu, seed, true, true, JumpProbability::kLinear));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(cpu.result.jumps, min_jumps);
  EXPECT_EQ(r->jumps, cpu.result.jumps);
  ExpectSameBits(cpu.jumped, gpu.jumped, "jumped");
  ExpectSameBits(cpu.token, gpu.token, "new_token");
  ExpectSameBits(cpu.rate, gpu.rate, "row_rate");
}

// Over 1024 sequences (three rounds of the warp's 32-way sequence search),
// about one in seven empty.
TEST(CudaEventsTest, SampleStepManySequencesMatchesCpuBitwise) {
  JUMPFLOW_SKIP_WITHOUT_GPU();
  ExpectSampleStepMatches(MakeBatch(Parametrization::kSoftmax, 1500, 4, 40, 7, 0.5), 11, 100);
}

// Nearly every row jumps, so nearly every warp also runs the token choice.
TEST(CudaEventsTest, SampleStepMostRowsJumpingMatchesCpuBitwise) {
  JUMPFLOW_SKIP_WITHOUT_GPU();
  ExpectSampleStepMatches(MakeBatch(Parametrization::kSoftmax, 300, 60, 64, 13, 1000.0), 3, 5000);
}

TEST(CudaEventsTest, GillespieMatchesCpuBitwise) {
  JUMPFLOW_SKIP_WITHOUT_GPU();
  uint64_t seed = 50;
  for (int64_t v : {7, 300, 2048, 5000}) {
    for (Parametrization p : kEventParams) {
      const Batch bt = MakeBatch(p, 57, 70, v, seed++);
      GillespieOut cpu, gpu;
      cpu.result = GillespieCpu(GArgs(bt, &cpu, 5));
      const absl::StatusOr<GillespieResult> r = Gillespie(Backend::kCuda, GArgs(bt, &gpu, 5));
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->events, cpu.result.events);
      ExpectSameBits(cpu.row_rate, gpu.row_rate, "row_rate");
      ExpectSameBits(cpu.total, gpu.total, "total");
      ExpectSameBits(cpu.position, gpu.position, "event_position");
      ExpectSameBits(cpu.token, gpu.token, "event_token");
    }
  }
}

TEST(CudaLossTest, FusedLossMatchesCpuForEveryCombination) {
  JUMPFLOW_SKIP_WITHOUT_GPU();
  uint64_t seed = 7;
  for (int64_t v : {5, 300, 3000}) {  // 3000 > 2048 columns: one block per row
    for (Parametrization p : testing::kAllLossParams) {
      for (Divergence d : testing::kAllLossDivs) {
        for (bool dense : {false, true}) {
          for (Reduction red : {Reduction::kSum, Reduction::kMean}) {
            SCOPED_TRACE("V " + std::to_string(v) + " " + testing::LossLabel(p, d, dense));
            testing::LossProblem pr = testing::MakeLossProblem(p, d, dense, 30, v, seed++);
            pr.reduction = red;
            std::vector<float> g_cpu(pr.raw.size()), g_gpu(pr.raw.size(), 9.0f);
            std::vector<float> l_cpu(static_cast<size_t>(pr.rows)),
                l_gpu(static_cast<size_t>(pr.rows), 9.0f);
            const LossResult cpu = FusedLossCpu(pr.Args(g_cpu.data(), l_cpu.data()));
            const absl::StatusOr<LossResult> gpu =
                FusedLoss(Backend::kCuda, pr.Args(g_gpu.data(), l_gpu.data()));
            ASSERT_TRUE(gpu.ok()) << gpu.status();
            EXPECT_EQ(gpu->active_rows, cpu.active_rows);
            EXPECT_EQ(gpu->first_nonfinite_row, cpu.first_nonfinite_row);
            ExpectClose(cpu.sum, gpu->sum, 0.0, "sum");
            ExpectClose(cpu.mean, gpu->mean, 0.0, "mean");
            ExpectRowsClose(l_cpu, l_gpu, 1, "row_loss");
            ExpectRowsClose(g_cpu, g_gpu, pr.cols, "grad", pr.GradScales());
          }
        }
      }
    }
  }
}

#if defined(JUMPFLOW_HAVE_CUDA)
// DeviceCopy is a device array filled from a host vector.
template <typename T>
class DeviceCopy {
 public:
  explicit DeviceCopy(const std::vector<T>& host) : n_(host.size()) {
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&ptr_), std::max<size_t>(1, n_) * sizeof(T)),
              cudaSuccess);
    if (n_ > 0) {
      EXPECT_EQ(cudaMemcpy(ptr_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
    }
  }
  ~DeviceCopy() { cudaFree(ptr_); }
  T* get() const { return ptr_; }
  std::vector<T> ToHost() const {
    std::vector<T> h(n_);
    if (n_ > 0) {
      EXPECT_EQ(cudaMemcpy(h.data(), ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    }
    return h;
  }

 private:
  size_t n_;
  T* ptr_ = nullptr;
};

TEST(CudaDispatchTest, DevicePointersDispatchToCudaInPlace) {
  JUMPFLOW_SKIP_WITHOUT_GPU();
  const Batch bt = MakeBatch(Parametrization::kSoftmax, 30, 50, 700, 3, 1.0);
  StepOut cpu;
  cpu.result = SampleStepCpu(StepArgs(bt, &cpu, 12));
  DeviceCopy<float> raw(bt.raw), scales(bt.scales);
  DeviceCopy<int64_t> offsets(bt.offsets);
  DeviceCopy<int32_t> tokens(bt.tokens), new_token(std::vector<int32_t>(bt.tokens.size()));
  DeviceCopy<double> fire(bt.fire), rate(std::vector<double>(bt.tokens.size()));
  DeviceCopy<uint32_t> ids(bt.ids), steps(bt.steps);
  DeviceCopy<uint8_t> jumped(std::vector<uint8_t>(bt.tokens.size()));
  StepOut unused;
  SampleStepArgs a = StepArgs(bt, &unused, 12);
  a.raw = raw.get();
  a.offsets = offsets.get();
  a.tokens = tokens.get();
  a.row_scales = scales.get();
  a.fire = fire.get();
  a.sequence_ids = ids.get();
  a.steps = steps.get();
  a.jumped = jumped.get();
  a.new_token = new_token.get();
  a.row_rate = rate.get();
  EXPECT_EQ(PointerBackend(a.raw), Backend::kCuda);
  const absl::StatusOr<SampleStepResult> r = SampleStep(a);  // dispatches on the pointers
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->jumps, cpu.result.jumps);
  ExpectSameBits(cpu.jumped, jumped.ToHost(), "jumped");
  ExpectSameBits(cpu.token, new_token.ToHost(), "new_token");
  ExpectSameBits(cpu.rate, rate.ToHost(), "row_rate");
  // Mixed memory is an error naming the field; the CPU backend refuses
  // device memory.
  std::vector<int32_t> host_tokens = bt.tokens;
  a.tokens = host_tokens.data();
  EXPECT_EQ(SampleStep(a).status().code(), absl::StatusCode::kInvalidArgument);
  a.tokens = tokens.get();
  EXPECT_EQ(SampleStep(Backend::kCpu, a).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CudaDispatchTest, FusedLossOnDevicePointers) {
  JUMPFLOW_SKIP_WITHOUT_GPU();
  testing::LossProblem pr =
      testing::MakeLossProblem(Parametrization::kSoftmax, Divergence::kPoisson, false, 64, 1024, 4);
  std::vector<float> g_cpu(pr.raw.size()), l_cpu(static_cast<size_t>(pr.rows));
  const LossResult cpu = FusedLossCpu(pr.Args(g_cpu.data(), l_cpu.data()));
  DeviceCopy<float> raw(pr.raw), vals(pr.sparse_values), w(pr.weights), c(pr.scales);
  DeviceCopy<int64_t> off(pr.offsets);
  DeviceCopy<int32_t> cols(pr.sparse_cols), ex(pr.excluded);
  DeviceCopy<uint8_t> mask(pr.mask);
  DeviceCopy<float> grad(std::vector<float>(pr.raw.size())), rl(std::vector<float>(l_cpu.size()));
  LossArgs<float> a = pr.Args(nullptr, nullptr);
  a.raw = raw.get();
  a.sparse_row_offsets = off.get();
  a.sparse_cols = cols.get();
  a.sparse_values = vals.get();
  a.row_weights = w.get();
  a.row_scales = c.get();
  a.row_mask = mask.get();
  a.excluded_cols = ex.get();
  a.grad = grad.get();
  a.row_loss = rl.get();
  const absl::StatusOr<LossResult> gpu = FusedLoss(a);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  ExpectClose(cpu.sum, gpu->sum, 0.0, "sum");
  ExpectRowsClose(g_cpu, grad.ToHost(), pr.cols, "grad", pr.GradScales());
  ExpectRowsClose(l_cpu, rl.ToHost(), 1, "row_loss");
}
#endif  // JUMPFLOW_HAVE_CUDA

}  // namespace
}  // namespace jumpflow::kernels
