#!/usr/bin/env bash
# S3: a small context: conf/ (20 .conf files + main.conf), bin/ (3 shell
# scripts), modules/ (100 generated files, 1 MB), assets.tar (50 generated
# files, 200 KB, in two directories), NOTES.txt: 127 files.
. "$(dirname "$0")/../lib.sh"
dest=${1:?usage: make-context.sh DEST}
if stale S3 "$dest"; then
  tool=$(benchtool)
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # modules/: flat, so the COPY's source is one directory of 100 files.
  "$tool" gen -out "$tmp/modules" -files 100 -bytes 1000000 -per-dir 100 -seed "$SEED"
  mkdir -p "$dest/modules"
  find "$tmp/modules" -type f -exec mv -t "$dest/modules/" {} +
  "$tool" gen -out "$tmp/assets" -files 50 -bytes 200000 -per-dir 25 -seed "$((SEED + 100))"
  pinned_tar "$tmp/assets" "$dest/assets.tar"
  mkdir -p "$dest/conf" "$dest/bin"
  for i in $(seq -w 1 20); do
    printf '[section%s]\nseed = %s\nweight = %s\n' "$i" "$SEED" "$((10#$i * 37 % 101))" >"$dest/conf/part$i.conf"
  done
  printf '[main]\nparts = 20\n' >"$dest/conf/main.conf"
  for s in start stop check; do
    printf '#!/bin/sh\necho "svc %s" "$@"\n' "$s" >"$dest/bin/$s"
  done
  echo "S3 bench context (seed $SEED)" >"$dest/NOTES.txt"
  dockerfile S3 "$dest"
  finish "$dest"
fi
