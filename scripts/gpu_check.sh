#!/usr/bin/env bash
# gpu_check.sh: the one-call GPU check of the CUDA backend (issue 7).
#
# Two ways to run it from the repository root on a machine with a GPU:
#   scripts/gpu_check.sh                    # configure + build here, then check
#   PREBUILT=.gpu scripts/gpu_check.sh      # binaries packed by scripts/gpu_pack.sh
# The second is for GPU machines without our Debian packages.
#
# Steps: device name; (build); the CUDA-vs-CPU tests (events bitwise, loss
# 1e-5 relative), the host emulation tests, the trainer's loss on CUDA
# (trainer_test's gradient tests) and the samplers' fused kernels on CUDA
# (samplers_test, the sample CLI); the same CUDA tests under
# compute-sanitizer memcheck when it is there; the CUDA benchmarks (whole
# calls, next to a device-to-device copy of the same bytes) with ratios to
# the copy and to the card's theoretical peak; DFM sampling (trainer_bench)
# with the fused kernels on the CPU and on the GPU; then, when Nsight Compute
# (ncu) is there, each kernel's own duration and DRAM traffic at the two
# large shapes (no launch or staging overhead) as GB/s. Everything goes to
# $OUT (set by the device runner) or $BUILD_DIR/gpu_check/.
#
# Environment: BUILD_DIR (default build-gpu), ARCH (CMAKE_CUDA_ARCHITECTURES,
# default 90 = H100/H200), JOBS, BENCH_MIN_TIME (default 0.2), PREBUILT,
# SKIP_TESTS=1 (benchmarks only, raw benchmark lines to the file only: for
# a second, baseline set of binaries in the same call), MEMCHECK_FILTER (a
# gtest filter for the memcheck run, default all CUDA tests).
set -u
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-gpu}
ARCH=${ARCH:-90}
JOBS=${JOBS:-$(nproc)}
BENCH_MIN_TIME=${BENCH_MIN_TIME:-0.2}
RESULTS=${OUT:-$BUILD_DIR/gpu_check}
mkdir -p "$RESULTS"
status=0
export PATH="$PATH:/usr/local/cuda/bin"

echo "== device"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.memory --format=csv,noheader |
    tee "$RESULTS/device.txt"
else
  echo "nvidia-smi not found" | tee "$RESULTS/device.txt"
fi
echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"

if [ -n "${PREBUILT:-}" ]; then
  bin=$PREBUILT/bin
  export LD_LIBRARY_PATH="$PWD/$PREBUILT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "== prebuilt binaries from $PREBUILT (commit $(cat "$PREBUILT/commit.txt" 2>/dev/null))"
  if ! "$bin/cuda_kernels_test" --gtest_list_tests >/dev/null 2>&1; then
    export LD_LIBRARY_PATH="$PWD/$PREBUILT/lib/std:$LD_LIBRARY_PATH"
    echo "using the packed libstdc++"
  fi
  "$bin/cuda_kernels_test" --gtest_list_tests >/dev/null ||
    { echo "prebuilt binaries do not start here"; exit 1; }
else
  bin_root=$BUILD_DIR
  echo "== configure + build ($BUILD_DIR, CUDA architectures $ARCH, $JOBS jobs)"
  NVCC=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DJUMPFLOW_CUDA=ON \
    -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
    -DJUMPFLOW_BUILD_EXAMPLES=OFF > "$RESULTS/configure.log" 2>&1 ||
    { tail -30 "$RESULTS/configure.log"; echo "configure FAILED"; exit 1; }
  cmake --build "$BUILD_DIR" -j "$JOBS" --target cuda_kernels_test events_kernel_test \
    loss_emulation_test trainer_test samplers_test kernels_bench trainer_bench \
    > "$RESULTS/build.log" 2>&1 ||
    { tail -40 "$RESULTS/build.log"; echo "build FAILED"; exit 1; }
  echo "build OK"
  bin=$RESULTS/bin
  mkdir -p "$bin"
  for t in cuda_kernels_test events_kernel_test loss_emulation_test trainer_test samplers_test \
    kernels_bench trainer_bench; do
    ln -sf "$PWD/$(find "$bin_root" -type f -name "$t" -perm -u+x | head -1)" "$bin/$t"
  done
fi

if [ "${SKIP_TESTS:-0}" != 1 ]; then
  echo "== CUDA tests (CUDA vs CPU)"
  "$bin/cuda_kernels_test" 2>&1 | tee "$RESULTS/cuda_tests.txt" | grep -E "^\[ *(OK|FAILED|SKIPPED|PASSED) *\]|Failure|error|Expected|Which is|  Actual" | head -80
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  if grep -q "SKIPPED" "$RESULTS/cuda_tests.txt"; then
    echo "WARNING: CUDA tests were skipped (no GPU visible?)"
    status=1
  fi
  echo "== host emulation of the CUDA row code"
  "$bin/events_kernel_test" --gtest_brief=1 2>&1 | tail -2
  "$bin/loss_emulation_test" --gtest_brief=1 2>&1 | tail -2
  if [ -x "$bin/trainer_test" ]; then
    echo "== train / sample --device cuda (trainer loss vs CPU, DFM sampling CLI)"
    "$bin/trainer_test" --gtest_filter='*BatchLossGradientTest*:*SampleCliTest*' --gtest_brief=1 \
      2>&1 | tail -3
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  fi
  if [ -x "$bin/samplers_test" ]; then
    echo "== samplers on the fused event kernels (device cuda)"
    "$bin/samplers_test" --gtest_filter='*FusedEvents*' --gtest_brief=1 2>&1 | tail -3
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  fi

  if command -v compute-sanitizer >/dev/null 2>&1; then
    echo "== compute-sanitizer memcheck (CUDA tests)"
    timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20 \
      "$bin/cuda_kernels_test" --gtest_brief=1 --gtest_filter="${MEMCHECK_FILTER:-*}" \
      > "$RESULTS/memcheck.txt" 2>&1
    rc=$?
    tail -6 "$RESULTS/memcheck.txt"
    echo "memcheck exit $rc"
    [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || status=1
  fi
fi

echo "== CUDA benchmarks (whole calls)"
"$bin/kernels_bench" --benchmark_filter='_Cuda' \
  --benchmark_min_time="$BENCH_MIN_TIME" --benchmark_out="$RESULTS/kernels_bench_cuda.csv" \
  --benchmark_out_format=csv > "$RESULTS/kernels_bench_cuda.txt" 2>&1
[ "${SKIP_TESTS:-0}" = 1 ] || grep -v "^---" "$RESULTS/kernels_bench_cuda.txt"
if grep -q "ERROR OCCURRED" "$RESULTS/kernels_bench_cuda.txt"; then
  echo "WARNING: some CUDA benchmarks did not run"
  status=1
fi
echo "== ratios (bytes/s / BM_Copy_Cuda's at the same shape; peak = memory clock x bus width x 2)"
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

if [ -x "$bin/trainer_bench" ] && [ "${SKIP_TESTS:-0}" != 1 ]; then
  echo "== DFM sampling with the fused kernels on the CPU and on the GPU (256 words a row)"
  "$bin/trainer_bench" --benchmark_filter='BM_DfmModelSample_(Cpu/threads:2/fused:1|Cuda/threads:2)' \
    --benchmark_min_time=0.5 2>&1 | grep -E "^BM_" | tee "$RESULTS/dfm_sampling.txt"
fi

if command -v ncu >/dev/null 2>&1; then
  echo "== kernel-only: ncu duration and DRAM bytes (the first launches of each kernel)"
  : > "$RESULTS/ncu.csv"
  for bm in SampleStep SampleStepScanAll Gillespie FusedLoss; do
    for shape in 64/256/1024 8/256/32768; do
      timeout 120 ncu --clock-control none --csv --launch-count 6 \
        --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum \
        "$bin/kernels_bench" --benchmark_filter="BM_${bm}_Cuda/B:${shape%%/*}/L:256/V:${shape##*/}/" \
        --benchmark_min_time=0.001 2>/dev/null | grep '^"' | sed "s|^|\"$bm/$shape\",|" \
        >> "$RESULTS/ncu.csv"
    done
  done
  # Columns after our prefix: ID, Process ID, Process Name, Host Name, Kernel Name, Context,
  # Stream, Block Size, Grid Size, Device, CC, Section Name, Metric Name, Metric Unit, Value.
  python3 - "$RESULTS/ncu.csv" <<'PY' | tee "$RESULTS/ncu_summary.txt"
import csv, sys, collections, re
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10 and r[1] != "ID"]
acc = collections.defaultdict(dict)
for r in rows:
    name = re.search(r"(\w+Kernel)", r[5])  # the short name of a (templated) kernel
    key = (r[0], r[1], name.group(1) if name else r[5][:24])
    unit, value = r[-2], float(r[-1].replace(",", ""))
    scale = {"byte": 1, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9, "ns": 1e-9, "nsecond": 1e-9,
             "us": 1e-6, "usecond": 1e-6, "ms": 1e-3, "msecond": 1e-3, "s": 1.0,
             "second": 1.0}[unit]
    acc[key][r[-3]] = value * scale
agg = collections.defaultdict(lambda: [0.0, 0.0, 0])
for (label, _, kernel), m in acc.items():
    a = agg[(label, kernel)]
    a[0] += m.get("gpu__time_duration.sum", 0.0)
    a[1] += m.get("dram__bytes_read.sum", 0.0) + m.get("dram__bytes_write.sum", 0.0)
    a[2] += 1
print(f"{'benchmark/shape':28s} {'kernel':24s} {'launches':>8s} {'us/launch':>10s} {'DRAM GB/s':>10s}")
for (label, kernel), (t, b, n) in sorted(agg.items()):
    print(f"{label:28s} {kernel:24s} {n:8d} {1e6 * t / n:10.2f} {b / t / 1e9 if t > 0 else 0:10.1f}")
PY
fi

if [ "$status" -eq 0 ]; then echo "gpu_check: OK"; else echo "gpu_check: FAILED"; fi
exit "$status"
