#!/usr/bin/env bash
# gpu_pack.sh: build the CUDA test and benchmark binaries here and pack them,
# with the shared libraries they need, into .gpu/ or $PACK_DIR (git-ignored), for a GPU
# machine that has the CUDA driver but none of our Debian packages (no
# abseil, oneTBB, Google Benchmark). scripts/gpu_check.sh with PREBUILT=.gpu
# runs them there.
#
#   scripts/gpu_pack.sh              # build-gpu, sm_90, portable x86-64 code
#   BUILD_DIR=b ARCH="80;90" PACK_DIR=.gpu-b scripts/gpu_pack.sh
#   CUDA_FLAGS=-DJUMPFLOW_SAMPLE_STEP_BLOCKS=4 BUILD_DIR=build-gpu-b4 PACK_DIR=.gpu-b4 \
#     scripts/gpu_pack.sh     # a variant to time against .gpu in the same device call
#
# The host code is built without -march=native (the GPU machine's CPU may
# lack this one's instructions). libstdc++ and libgcc_s go to .gpu/lib/std:
# gpu_check.sh adds them only when the machine's own are too old.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-gpu}
ARCH=${ARCH:-90}
PACK=${PACK_DIR:-.gpu}
targets=(cuda_kernels_test events_kernel_test loss_emulation_test trainer_test samplers_test
  kernels_bench trainer_bench)
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DJUMPFLOW_CUDA=ON -DJUMPFLOW_NATIVE=OFF \
  -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DJUMPFLOW_BUILD_EXAMPLES=OFF \
  -DCMAKE_CUDA_FLAGS="${CUDA_FLAGS:-}" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target "${targets[@]}"
rm -rf "$PACK" && mkdir -p "$PACK/bin" "$PACK/lib/std"
for t in "${targets[@]}"; do
  find "$BUILD_DIR" -type f -name "$t" -perm -u+x -exec cp {} "$PACK/bin/" \;
done
ldd "$PACK"/bin/* | awk '/=> \// {print $3}' | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so* | libm.so* | libdl.so* | libpthread.so* | librt.so* | ld-linux*) ;;
    libstdc++.so* | libgcc_s.so*) cp -L "$lib" "$PACK/lib/std/" ;;
    *) cp -L "$lib" "$PACK/lib/" ;;
  esac
done
echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- kernels || echo +local)" > "$PACK/commit.txt"
du -sh "$PACK"
