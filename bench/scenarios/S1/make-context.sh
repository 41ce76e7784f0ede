#!/usr/bin/env bash
# S1: the context is the Dockerfile alone; the RUN makes the files.
. "$(dirname "$0")/../lib.sh"
dest=${1:?usage: make-context.sh DEST}
if stale S1 "$dest"; then
  dockerfile S1 "$dest"
  finish "$dest"
fi
