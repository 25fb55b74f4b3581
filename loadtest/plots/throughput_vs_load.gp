# Completed queries/s vs offered (Poisson) queries/s, per number of inference replicas.
# Input: files r1.dat r2.dat ... under `loaddir` ("offered throughput p50 p99 violations"),
# `replicas`: space-separated list of replica counts.
load dir.'/common.gp'
set xlabel 'offered load (queries/s, Poisson)'
set ylabel 'throughput (queries/s completed)'
set y2label 'p99 TTFT (s)'
set y2tics
set logscale y2
set title 'Throughput and p99 TTFT vs offered load'
plot x with lines dt 3 lc rgb 'gray' title 'throughput = offered', \
     for [r in replicas] loaddir.'/r'.r.'.dat' using 1:2 with linespoints lw 2 \
         title r.' replica(s): throughput', \
     for [r in replicas] loaddir.'/r'.r.'.dat' using 1:4 axes x1y2 with linespoints dt 2 \
         title r.' replica(s): p99 TTFT'
