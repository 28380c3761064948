// @brief Small CUDA helpers of the CUDA backend: checked calls that turn a
// failure into a message string (cuda_api.h convention), stream-ordered
// device buffers, host<->device staging of argument arrays, and warp
// reductions.
//
// Example:
//   std::string err;
//   DeviceBuffer<float> d(stream);
//   JUMPFLOW_CUDA_TRY(d.Allocate(n));
//   JUMPFLOW_CUDA_TRY(cudaMemcpyAsync(d.get(), host, n * sizeof(float),
//                                     cudaMemcpyHostToDevice, stream));
#ifndef JUMPFLOW_KERNELS_CUDA_CUDA_UTIL_CUH_
#define JUMPFLOW_KERNELS_CUDA_CUDA_UTIL_CUH_

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace jumpflow::kernels::cuda_internal {

// CudaMessage formats a failed call for the error string.
inline std::string CudaMessage(cudaError_t e, const char* what) {
  return std::string("CUDA error in ") + what + ": " + cudaGetErrorName(e) + " (" +
         cudaGetErrorString(e) + ")";
}

// JUMPFLOW_CUDA_TRY(call) returns the error message from the enclosing
// function (which returns std::string) when `call` fails.
#define JUMPFLOW_CUDA_TRY(call)                                                          \
  do {                                                                                   \
    const cudaError_t jumpflow_cuda_err_ = (call);                                       \
    if (jumpflow_cuda_err_ != cudaSuccess) {                                             \
      return ::jumpflow::kernels::cuda_internal::CudaMessage(jumpflow_cuda_err_, #call); \
    }                                                                                    \
  } while (0)

// JUMPFLOW_CUDA_TRY_LAUNCH() checks the launch just made (configuration
// errors; execution errors surface at the next synchronisation).
#define JUMPFLOW_CUDA_TRY_LAUNCH(name)                                                            \
  do {                                                                                            \
    const cudaError_t jumpflow_cuda_err_ = cudaGetLastError();                                    \
    if (jumpflow_cuda_err_ != cudaSuccess) {                                                      \
      return ::jumpflow::kernels::cuda_internal::CudaMessage(jumpflow_cuda_err_, "launch " name); \
    }                                                                                             \
  } while (0)

// RetainPoolMemory sets the current device's default memory pool (the one
// cudaMallocAsync draws from) to keep freed memory for reuse instead of
// returning it to the driver at every synchronisation (release threshold 0,
// CUDA's default), so the per-call scratch and staging allocations below
// are served from the pool. Once per device and process (device.cu); the
// entry points call it before they allocate.
std::string RetainPoolMemory();

// CopyResultsBack copies `bytes` (at most kMaxResultBytes) of small results
// from device memory `src` to host memory `dst` on `stream` and
// synchronises the stream. The copy goes through a page-locked buffer of
// the calling thread (device.cu): a copy straight into pageable memory is
// staged by the driver and costs more than the copy itself.
constexpr size_t kMaxResultBytes = 256;
std::string CopyResultsBack(void* dst, const void* src, size_t bytes, cudaStream_t stream);

// DeviceBuffer is a stream-ordered device allocation of n elements of T,
// freed (stream-ordered) when it goes out of scope. Allocation failures are
// returned by Allocate; the destructor ignores errors (nothing to report to).
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(cudaStream_t stream) : stream_(stream) {}
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFreeAsync(ptr_, stream_);
  }
  cudaError_t Allocate(size_t n) {
    if (n == 0) n = 1;
    return cudaMallocAsync(reinterpret_cast<void**>(&ptr_), n * sizeof(T), stream_);
  }
  T* get() const { return ptr_; }

 private:
  cudaStream_t stream_;
  T* ptr_ = nullptr;
};

// Staged is one argument array on the device: the caller's pointer when it
// is already device memory, else a device copy of the host array.
template <typename T>
class Staged {
 public:
  explicit Staged(cudaStream_t stream) : buffer_(stream), stream_(stream) {}

  // Input stages `n` elements of `src` (may be null: stays null).
  std::string Input(const T* src, size_t n, bool host) {
    host_ = host;
    if (src == nullptr) return {};
    if (!host) {
      device_ = const_cast<T*>(src);
      return {};
    }
    JUMPFLOW_CUDA_TRY(buffer_.Allocate(n));
    device_ = buffer_.get();
    if (n > 0) {
      JUMPFLOW_CUDA_TRY(
          cudaMemcpyAsync(device_, src, n * sizeof(T), cudaMemcpyHostToDevice, stream_));
    }
    return {};
  }
  // Output stages an output array of n elements (uninitialised on the device).
  std::string Output(T* dst, size_t n, bool host) {
    host_ = host;
    host_dst_ = dst;
    n_ = n;
    if (dst == nullptr) return {};
    if (!host) {
      device_ = dst;
      return {};
    }
    JUMPFLOW_CUDA_TRY(buffer_.Allocate(n));
    device_ = buffer_.get();
    return {};
  }
  // CopyBack copies a staged host output back (asynchronous on the stream).
  std::string CopyBack() {
    if (!host_ || host_dst_ == nullptr || n_ == 0) return {};
    JUMPFLOW_CUDA_TRY(
        cudaMemcpyAsync(host_dst_, device_, n_ * sizeof(T), cudaMemcpyDeviceToHost, stream_));
    return {};
  }
  T* get() const { return device_; }

 private:
  DeviceBuffer<T> buffer_;
  cudaStream_t stream_;
  T* device_ = nullptr;
  T* host_dst_ = nullptr;
  size_t n_ = 0;
  bool host_ = false;
};

// JUMPFLOW_STAGE(expr) evaluates a staging call returning std::string and
// returns its message when not empty.
#define JUMPFLOW_STAGE(expr)                                      \
  do {                                                            \
    std::string jumpflow_stage_err_ = (expr);                     \
    if (!jumpflow_stage_err_.empty()) return jumpflow_stage_err_; \
  } while (0)

constexpr unsigned kFullMask = 0xffffffffu;

// WarpMax / WarpSum reduce over the 32 lanes of a warp (every lane gets the
// result).
__device__ __forceinline__ float WarpMax(float v) {
  for (int o = 16; o >= 1; o /= 2) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}
__device__ __forceinline__ float WarpSum(float v) {
  for (int o = 16; o >= 1; o /= 2) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}
__device__ __forceinline__ double WarpSum(double v) {
  for (int o = 16; o >= 1; o /= 2) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

// AtomicMinInt64 lowers *addr (an int64 stored as unsigned, initialised to
// all ones) to v >= 0.
__device__ __forceinline__ void AtomicMinRow(unsigned long long* addr, int64_t v) {
  atomicMin(addr, static_cast<unsigned long long>(v));
}

}  // namespace jumpflow::kernels::cuda_internal

#endif  // JUMPFLOW_KERNELS_CUDA_CUDA_UTIL_CUH_
