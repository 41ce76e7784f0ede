# shellcheck shell=bash
# Helpers for scenarios/*/make-context.sh (source it, do not run it).
#
# make-context.sh DEST writes scenario SN's build context into DEST. It
# honours:
#   SEED       generator seed (default 1): same seed, byte-identical tree
#   BENCH_DIR  cache dir; the generator binary is built into $BENCH_DIR/bin
#              (default /var/tmp/builder-bench)
#   BENCHTOOL  a benchtool binary to use instead (run.sh passes its own)
# A context is rebuilt only when its stamp (the scenario's files, this file,
# the generator's source (benchtool/gen.go) and the seed) changes; otherwise make-context.sh
# returns at once. Every path in a context has the mtime 2020-01-01 UTC.

set -euo pipefail

SCENARIOS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_SRC=$(dirname "$SCENARIOS")
SEED=${SEED:-1}
BENCH_DIR=${BENCH_DIR:-/var/tmp/builder-bench}
EPOCH_DATE='2020-01-01 00:00:00 UTC'

# tool_sum: a short hash of benchtool's sources (when to rebuild it).
tool_sum() {
  cat "$BENCH_SRC"/benchtool/*.go | sha256sum | cut -c1-16
}

# gen_sum: a short hash of the generator's source alone (when to regenerate
# contexts: a change to the other subcommands does not change them).
gen_sum() {
  sha256sum <"$BENCH_SRC/benchtool/gen.go" | cut -c1-16
}

# benchtool: prints the path of a benchtool binary, building it when its
# sources changed.
benchtool() {
  if [ -n "${BENCHTOOL:-}" ]; then
    echo "$BENCHTOOL"
    return
  fi
  local bin=$BENCH_DIR/bin/benchtool sum
  sum=$(tool_sum)
  if [ ! -x "$bin" ] || [ "$(cat "$bin.sum" 2>/dev/null)" != "$sum" ]; then
    mkdir -p "$BENCH_DIR/bin"
    (cd "$BENCH_SRC/benchtool" && PATH=/usr/local/go/bin:$PATH go build -o "$bin" .) >&2
    echo "$sum" >"$bin.sum"
  fi
  echo "$bin"
}

# stale SN DEST: true (and DEST emptied) when DEST must be generated; false
# when DEST matches the current stamp.
stale() {
  local scen=$1 dest=$2
  STAMP=$( (cat "$SCENARIOS/$scen"/* "$SCENARIOS/lib.sh"; gen_sum; echo "seed $SEED") | sha256sum | cut -c1-32)
  STAMP_FILE=$dest.stamp
  if [ -d "$dest" ] && [ "$(cat "$STAMP_FILE" 2>/dev/null)" = "$STAMP" ]; then
    return 1
  fi
  rm -rf "$dest" "$STAMP_FILE"
  mkdir -p "$dest"
}

# finish DEST: pins every mtime and records the stamp.
finish() {
  find "$1" -exec touch -h -d "$EPOCH_DATE" {} +
  echo "$STAMP" >"$STAMP_FILE"
}

# dockerfile SN DEST: puts the scenario's Dockerfile in the context, from
# gen-dockerfile.sh when the scenario has one.
dockerfile() {
  if [ -x "$SCENARIOS/$1/gen-dockerfile.sh" ]; then
    "$SCENARIOS/$1/gen-dockerfile.sh" >"$2/Dockerfile"
  else
    cp "$SCENARIOS/$1/Dockerfile" "$2/Dockerfile"
  fi
}

# pinned_tar DIR OUT: a tar of DIR's content that depends on nothing but
# that content (sorted names, numeric root owner, fixed mtimes).
pinned_tar() {
  tar --sort=name --mtime="$EPOCH_DATE" --owner=0 --group=0 --numeric-owner \
    --format=gnu -C "$1" -cf "$2" .
}
