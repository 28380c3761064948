# @brief gnuplot script of `make demo`: length histograms (data vs samples vs
# bigram) and the training loss curve, side by side in one PNG.
#
# Variables (gnuplot -e): hist (lengths file written by generate_words
# --hist: "length data sampler... bigram" columns), log (trainer CSV:
# step,train_loss,eval_loss,lr,tokens_per_s,seconds), out (PNG path).
#   gnuplot -e "hist='out/lengths.dat'; log='out/train_log.csv'; out='out/demo.png'" \
#           scripts/plot_demo.gp
if (!exists("hist")) hist = 'out/lengths.dat'
if (!exists("log")) log = 'out/train_log.csv'
if (!exists("out")) out = 'out/demo.png'

if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
  set terminal pngcairo size 1400,520 font ',11'
} else {
  set terminal png size 1400,520
}
set output out
set termoption noenhanced
set multiplot layout 1,2 title 'jumpflow demo: insertion-only Edit Flow on English words'

# Left: length distributions.
set title 'word length distribution'
set xlabel 'length (letters)'
set ylabel 'fraction of words'
set key top right
set grid ytics
set xrange [0.5:12.5]
set xtics 1
ncols = words(system("head -1 " . hist))
plot for [c=2:ncols] hist using 1:c with linespoints lw 2 pt 7 ps 0.8 title columnhead(c)

# Right: loss curves.
set title 'training loss (mean per word)'
set xlabel 'step'
set ylabel 'loss'
set autoscale x
set xrange [*:*]
set xtics autofreq
set format x '%.0s%c'
set datafile separator ','
set key top right
plot log using 1:2 every ::1 with lines lw 1 lc rgb '#7799cc' title 'train', \
     log using 1:3 every ::1 with points pt 7 ps 1.2 lc rgb '#cc4422' title 'held-out'
unset multiplot
