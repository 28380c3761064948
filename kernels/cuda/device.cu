// @brief CUDA device discovery and per-device setup for the CUDA backend.
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "kernels/backend.h"
#include "kernels/cuda/cuda_util.cuh"

namespace jumpflow::kernels {

bool CudaCompiled() { return true; }

int CudaDeviceCount() {
  // Asked once per process (the dispatchers ask on every call).
  static const int count = [] {
    int n = 0;
    // No driver or no device both mean "no usable GPU"; clear the error.
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

namespace cuda_internal {

std::string RetainPoolMemory() {
  // Bit d: device d's pool is set (devices >= 64 are set on every call,
  // which is harmless).
  static std::atomic<uint64_t> done{0};
  int dev = 0;
  JUMPFLOW_CUDA_TRY(cudaGetDevice(&dev));
  const uint64_t bit = dev < 64 ? uint64_t{1} << dev : 0;
  if ((done.load(std::memory_order_relaxed) & bit) != 0) return {};
  cudaMemPool_t pool;
  JUMPFLOW_CUDA_TRY(cudaDeviceGetDefaultMemPool(&pool, dev));
  uint64_t threshold = std::numeric_limits<uint64_t>::max();
  JUMPFLOW_CUDA_TRY(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  done.fetch_or(bit, std::memory_order_relaxed);
  return {};
}

std::string CopyResultsBack(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  // One page-locked buffer per host thread, allocated on first use and
  // freed when the thread ends; portable, so any device can write to it.
  struct Pinned {
    void* p = nullptr;
    bool tried = false;
    ~Pinned() {
      if (p != nullptr) cudaFreeHost(p);
    }
  };
  thread_local Pinned pinned;
  if (!pinned.tried) {
    pinned.tried = true;
    if (cudaHostAlloc(&pinned.p, kMaxResultBytes, cudaHostAllocPortable) != cudaSuccess) {
      cudaGetLastError();  // fall back to pageable memory below
      pinned.p = nullptr;
    }
  }
  void* staging = pinned.p != nullptr && bytes <= kMaxResultBytes ? pinned.p : dst;
  JUMPFLOW_CUDA_TRY(cudaMemcpyAsync(staging, src, bytes, cudaMemcpyDeviceToHost, stream));
  JUMPFLOW_CUDA_TRY(cudaStreamSynchronize(stream));
  if (staging != dst) std::memcpy(dst, staging, bytes);
  return {};
}

}  // namespace cuda_internal
}  // namespace jumpflow::kernels
