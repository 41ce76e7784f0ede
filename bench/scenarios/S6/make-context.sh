#!/usr/bin/env bash
# S6: the context is the Dockerfile alone (from gen-dockerfile.sh).
. "$(dirname "$0")/../lib.sh"
dest=${1:?usage: make-context.sh DEST}
if stale S6 "$dest"; then
  dockerfile S6 "$dest"
  finish "$dest"
fi
