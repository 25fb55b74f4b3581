# Shared style; the caller sets `out` (path without extension) and calls `@png` / `@svg`
# before each plot (see make_report.sh: each script is run once per terminal).
set grid
set key outside right top
set border 3
set tics nomirror
