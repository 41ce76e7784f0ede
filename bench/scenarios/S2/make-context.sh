#!/usr/bin/env bash
# S2: 19,999 generated files holding 299,999,000 bytes, plus the Dockerfile
# (20,000 files, ~300 MB): log-normal sizes (median ~6 KB, largest ~1.4 MB),
# 70% of the files pseudo source text, 30% random bytes (the tree gzips at -1
# to ~0.56), 50 files per directory.
. "$(dirname "$0")/../lib.sh"
dest=${1:?usage: make-context.sh DEST}
if stale S2 "$dest"; then
  "$(benchtool)" gen -out "$dest" -files 19999 -bytes 299999000 -text 0.7 -seed "$SEED"
  dockerfile S2 "$dest"
  finish "$dest"
fi
