#!/usr/bin/env bash
# gpu_check.sh: the one-call GPU check of the CUDA backend (issue 7).
#
# Run from the repository root on a machine with an NVIDIA GPU and nvcc:
#   scripts/gpu_check.sh            # configure + build + test + bench
#   BUILD_DIR=build-gpu ARCH=90 scripts/gpu_check.sh
# It prints the device name, configures and builds (JUMPFLOW_CUDA=ON) only the
# targets it needs, runs `ctest -L cuda --output-on-failure` (CUDA vs CPU:
# events bitwise, loss 1e-5 relative), runs the CUDA benchmarks next to the
# device copy and prints each kernel's bandwidth as a fraction of the copy
# and of the card's theoretical peak. Results also go to $OUT (when set,
# e.g. by the device runner) or to $BUILD_DIR/gpu_check/.
#
# Environment: BUILD_DIR (default build-gpu), ARCH (CMAKE_CUDA_ARCHITECTURES,
# default 90 = H100/H200; use "80;90" for both), JOBS (default nproc),
# SKIP_BUILD=1 to reuse an existing build, BENCH_MIN_TIME (default 0.2).
set -u
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-gpu}
ARCH=${ARCH:-90}
JOBS=${JOBS:-$(nproc)}
BENCH_MIN_TIME=${BENCH_MIN_TIME:-0.2}
RESULTS=${OUT:-$BUILD_DIR/gpu_check}
mkdir -p "$RESULTS"
status=0

echo "== device"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader |
    tee "$RESULTS/device.txt"
else
  echo "nvidia-smi not found" | tee "$RESULTS/device.txt"
fi

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "== configure + build ($BUILD_DIR, CUDA architectures $ARCH, $JOBS jobs)"
  NVCC=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DJUMPFLOW_CUDA=ON \
    -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
    -DJUMPFLOW_BUILD_EXAMPLES=OFF > "$RESULTS/configure.log" 2>&1 ||
    { tail -30 "$RESULTS/configure.log"; echo "configure FAILED"; exit 1; }
  grep -E "CUDA backend" "$RESULTS/configure.log"
  cmake --build "$BUILD_DIR" -j "$JOBS" --target cuda_kernels_test events_kernel_test \
    loss_emulation_test kernels_bench > "$RESULTS/build.log" 2>&1 ||
    { tail -40 "$RESULTS/build.log"; echo "build FAILED"; exit 1; }
  echo "build OK"
fi

echo "== ctest -L cuda"
(cd "$BUILD_DIR" && ctest -L cuda --output-on-failure) 2>&1 | tee "$RESULTS/ctest_cuda.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
if grep -qi "skipped" "$RESULTS/ctest_cuda.txt"; then
  echo "WARNING: CUDA tests were skipped (no GPU visible?)"
  status=1
fi
echo "== CPU-side comparisons (reference, host emulation of the CUDA row code)"
"$BUILD_DIR/tests/events_kernel_test" --gtest_brief=1 2>&1 | tail -3
"$BUILD_DIR/tests/loss_emulation_test" --gtest_brief=1 2>&1 | tail -3

echo "== CUDA benchmarks"
"$BUILD_DIR/bench/kernels_bench" --benchmark_filter='_Cuda' \
  --benchmark_min_time="$BENCH_MIN_TIME" --benchmark_out="$RESULTS/kernels_bench_cuda.csv" \
  --benchmark_out_format=csv 2>&1 | tee "$RESULTS/kernels_bench_cuda.txt"
if grep -q "ERROR OCCURRED" "$RESULTS/kernels_bench_cuda.txt"; then
  echo "WARNING: some CUDA benchmarks did not run"
  status=1
fi
echo "== ratios (bytes/s of each kernel / bytes/s of BM_Copy_Cuda at the same shape; peak = memory clock x bus width x 2)"
# CSV: name,iterations,real_time,cpu_time,time_unit,bytes_per_second,items_per_second,label,
#      error_occurred,error_message[,counters...]
awk -F, '
  /^"BM_/ {
    name = $1; gsub(/"/, "", name)
    n = split(name, parts, "/"); kernel = parts[1]; shape = parts[2] "/" parts[3] "/" parts[4]
    bps[kernel, shape] = $6; peak[shape] = $NF; order[++count] = kernel SUBSEP shape
  }
  END {
    printf "%-22s %-18s %12s %10s %10s\n", "kernel", "shape", "GB/s", "vs copy", "vs peak"
    for (i = 1; i <= count; ++i) {
      split(order[i], ks, SUBSEP); k = ks[1]; s = ks[2]
      copy = bps["BM_Copy_Cuda", s]
      printf "%-22s %-18s %12.1f %10.3f %10.3f\n", k, s, bps[k, s] / 1e9,
             (copy > 0 ? bps[k, s] / copy : 0), (peak[s] > 0 ? bps[k, s] / peak[s] : 0)
    }
  }' "$RESULTS/kernels_bench_cuda.csv" | tee "$RESULTS/ratios.txt"

if [ "$status" -eq 0 ]; then echo "gpu_check: OK"; else echo "gpu_check: FAILED"; fi
exit "$status"
