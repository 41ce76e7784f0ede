#!/usr/bin/env bash
# S5: the context is the Dockerfile alone; the RUNs make their data.
. "$(dirname "$0")/../lib.sh"
dest=${1:?usage: make-context.sh DEST}
if stale S5 "$dest"; then
  dockerfile S5 "$dest"
  finish "$dest"
fi
