#!/usr/bin/env bash
# S7: the context is the Dockerfile alone; the base archive comes from make-base.sh.
. "$(dirname "$0")/../lib.sh"
dest=${1:?usage: make-context.sh DEST}
if stale S7 "$dest"; then
  dockerfile S7 "$dest"
  finish "$dest"
fi
