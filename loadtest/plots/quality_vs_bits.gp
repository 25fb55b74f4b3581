# Quality loss (relative perplexity increase, %) vs bits per element, per KV level, and the
# 8-bit baseline. Input `data`: "level bits loss_percent" rows; `q8`: "bits loss_percent".
load dir.'/common.gp'
set xlabel 'bits per element (side information included)'
set ylabel 'quality loss: perplexity increase (%)'
set title 'KV codec levels: quality vs size (kvcache GetCodecInfo)'
set key inside right top
plot data using 2:3 with linespoints lw 2 pt 7 title 'CacheGen-style levels', \
     data using 2:3:(sprintf('L%d', $1)) with labels offset 1.5,0.7 notitle, \
     q8 using 1:2 with points pt 5 ps 1.5 title '8-bit baseline'
