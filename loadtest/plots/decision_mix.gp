# Decision mix over time under a varying bandwidth trace (adaptive controller): stacked
# shares of chunks per label in each time bucket, and the bandwidth on the right axis.
# Input `data`: "t c1 c2 ..." with cumulative shares (header row names the labels);
# `bw`: the trace log "t mbit".
load dir.'/common.gp'
ncol = int(system("head -n1 ".data." | wc -w"))
set xlabel 'time since start (s)'
set ylabel 'share of delivered chunks'
set y2label 'bandwidth (Mbit/s)'
set y2tics
set logscale y2
set yrange [0:1.05]
set style fill solid 0.8 noborder
set boxwidth bucket*0.95
set title 'Adaptive decisions under the '.subtitle.' trace'

set xrange [0:*]
plot for [i=ncol:2:-1] data using ($1+bucket/2):i with boxes title columnheader(i), \
     bw using 1:2 axes x1y2 with steps lw 2 lc rgb 'black' title 'bandwidth'
