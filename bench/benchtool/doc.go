// Command benchtool is the Go half of bench/run.sh: it generates the
// scenarios' deterministic contexts, times commands (wall clock and peak
// RSS), reads builder's --progress json logs and turns run.sh's raw.tsv into
// the table of medians.
//
//	benchtool gen -out DIR -files 20000 -bytes 300000000 -seed 1
//	benchtool progress [-steps] LOG
//	benchtool summarize -targets targets.tsv RAW.tsv
//	benchtool time -o FILE CMD [ARG...]
//
// It is a tool of the benchmark harness, not part of builder: it imports
// nothing from the rest of the module.
package main
