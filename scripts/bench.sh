#!/usr/bin/env bash
# @brief Runs every benchmark binary in build/bench (used by `make bench`).
set -euo pipefail
build=${1:-build}
for b in "$build"/bench/*; do
  [[ -x $b ]] || continue
  echo "== $(basename "$b")"
  "$b" --benchmark_min_time=0.2
done
