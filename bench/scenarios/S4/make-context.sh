#!/usr/bin/env bash
# S4: 19,998 generated files (80 MB, 90% text) + app/changeme.txt + the
# Dockerfile = 20,000 files. Also puts app/changeme.txt back to its pristine
# content when a warm run left it changed.
. "$(dirname "$0")/../lib.sh"
dest=${1:?usage: make-context.sh DEST}
pristine="pristine (seed $SEED)"
if stale S4 "$dest"; then
  "$(benchtool)" gen -out "$dest" -files 19998 -bytes 80000000 -text 0.9 -seed "$SEED"
  mkdir -p "$dest/app"
  echo "$pristine" >"$dest/app/changeme.txt"
  dockerfile S4 "$dest"
  finish "$dest"
elif [ "$(cat "$dest/app/changeme.txt")" != "$pristine" ]; then
  echo "$pristine" >"$dest/app/changeme.txt"
  touch -d "$EPOCH_DATE" "$dest/app/changeme.txt" "$dest/app"
fi
