# TTFT (mean over the queries of a point) vs emulated bandwidth, one line per strategy.
# Input `data`: a header "mbit s1 s2 ..." then one row per bandwidth (sweep_mean.dat).
load dir.'/common.gp'
set logscale xy
set xlabel 'bandwidth kvcache -> inference (Mbit/s)'
set ylabel 'TTFT (s), mean'
set title 'TTFT vs bandwidth per strategy ('.subtitle.')'
ncol = int(system("head -n1 ".data." | wc -w"))
set key autotitle columnheader
# Fixed strategies dashed, the adaptive controller (last column) solid and thick.
plot for [i=2:ncol-1] data using 1:i with linespoints lw 1.5 pt (i-1) dashtype 2, \
     data using 1:ncol with linespoints lw 3 pt 7 lc rgb 'black'
