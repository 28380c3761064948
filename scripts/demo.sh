#!/usr/bin/env bash
# @brief The main job behind `make demo` (called as `scripts/demo.sh BUILD_DIR`).
#
# Trains an insertion-only Edit Flow (x_0 empty, kappa = t^3, insertions left
# to right: every x_t is a prefix of its word; every prefix of a word is
# trained at once, each at its own time drawn from its posterior,
# jumpflow/processes/edit_flow.h) on English words (/usr/share/dict/words, lower-case a-z, length <= 12, 5%
# held out), samples 1,000 words with exact Gillespie and with tau-leaping,
# prints the share of dictionary words, of novel words (not in the training
# split), the length TV to the data and the seconds, next to a
# character-bigram baseline, and plots length histograms and the loss curve
# into out/demo.png. A short alignment demo follows. Knobs (environment):
# DEMO_STEPS, DEMO_DIM, DEMO_LAYERS, DEMO_LR, DEMO_THREADS, DEMO_ORDER
# (left-to-right, or independent: i.i.d. insertion times per letter),
# DEMO_GAP_TIMES (auto = per-gap with left-to-right, or shared: one time per
# word). The defaults (dim 64, 2 layers, 45,000 steps of 64 words, lr 2e-3)
# train in about 2.5 minutes on 2 cores. At this budget dim 64 beat dim 32
# with twice the steps, and an MLP ratio of 2 with 30% more steps; per-gap
# times gave at 15,000 steps what one shared time per word gave at 45,000.
set -euo pipefail
build=${1:-build}
bin="$build/bin/jumpflow"
gen="$build/examples/generate_words"
words=/usr/share/dict/words
steps=${DEMO_STEPS:-22500}
dim=${DEMO_DIM:-64}
layers=${DEMO_LAYERS:-4}
lr=${DEMO_LR:-2e-3}
threads=${DEMO_THREADS:-0}
order=${DEMO_ORDER:-left-to-right}
gap_times=${DEMO_GAP_TIMES:-auto}
[[ -r $words ]] || { echo "demo: $words is missing (Debian package wamerican)" >&2; exit 1; }
mkdir -p out

grep -E '^[a-z]{1,12}$' "$words" > out/words.txt.tmp && mv out/words.txt.tmp out/words.txt
echo "== jumpflow demo: an Edit Flow learns to spell English words =="
echo "data: $(wc -l < out/words.txt) words from $words (a-z, length <= 12); 5% held out"
start=$(date +%s)
"$bin" train --process edit --data out/words.txt --chars abcdefghijklmnopqrstuvwxyz \
  --max-length 12 --steps "$steps" --batch 64 --dim "$dim" --layers "$layers" --lr "$lr" \
  --time-dist beta:3,1 --insert-order "$order" --gap-times "$gap_times" --eval-every 4000 \
  --threads "$threads" --out out/words.ckpt --log out/train_log.csv
trained=$(date +%s)
"$gen" --model out/words.ckpt --data out/words.txt --max-length 12 --num 1000 \
  --samplers gillespie,tau-leap --threads "$threads" --hist out/lengths.dat
echo "training $((trained - start)) s, sampling and evaluation $(($(date +%s) - trained)) s"
if command -v gnuplot >/dev/null; then
  gnuplot -e "hist='out/lengths.dat'; log='out/train_log.csv'; out='out/demo.png'" \
    scripts/plot_demo.gp && echo "wrote out/demo.png (length histograms, loss curve)"
else
  echo "gnuplot not found: skipped out/demo.png"
fi

echo
echo "== alignment: corrupt words with 1-3 random edits, align, apply the edits =="
"$bin" align --data "$words" --num 20000 --max-edits 3 --max-length 12 --show 4 \
  --out out/align_edits.tsv
