#!/usr/bin/env bash
# @brief The main job behind `make demo`.
#
# Until the trainer lands (issue 8) the demo is the best real end-to-end
# path the project has: corrupt dictionary words with 1-3 random edits,
# recover each word by aligning it to the original and applying the edits.
set -euo pipefail
build=${1:-build}
bin="$build/bin/jumpflow"
words=/usr/share/dict/words
[[ -r $words ]] || { echo "demo: $words is missing (Debian package wamerican)" >&2; exit 1; }
mkdir -p out
echo "== jumpflow demo: align corrupted dictionary words and apply the edits =="
"$bin" align --data "$words" --num 20000 --max-edits 3 --max-length 12 --show 12 \
  --out out/align_edits.tsv
echo "wrote out/align_edits.tsv (source, target, edits per line)"
