#!/usr/bin/env bash
# S8: the context is the Dockerfile alone (from gen-dockerfile.sh).
. "$(dirname "$0")/../lib.sh"
dest=${1:?usage: make-context.sh DEST}
if stale S8 "$dest"; then
  dockerfile S8 "$dest"
  finish "$dest"
fi
