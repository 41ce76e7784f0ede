#!/usr/bin/env bash
# ci-cache.sh: the CI scenario (S9). Ephemeral runners share a cache only
# through a registry: runner A builds the S4 project (20,000 files, a ~2 s
# RUN above COPY . /src, a RUN after it), pushes the image and exports its
# cache; then fresh runners (an empty --root each; the base image only in
# the registry) build the same project with the cache imported, once with
# the same context ("hit") and once with app/changeme.txt rewritten
# ("change"). For each fresh-runner build it prints the wall time, the RUN
# steps that executed and the bytes the registry served.
#
#   bench/ci-cache.sh [-n REPS]
#
# Environment: BUILDER (default <repo>/bin/builder), BENCH_DIR (default
# /var/tmp/builder-bench; S4's context and the base image are made there as
# bench/run.sh makes them), SEED. Needs root, Debian's docker-registry and
# busybox-static. Where a Docker daemon answers (DOCKER, default
# /usr/bin/docker), the same is timed with `docker build --cache-from`
# (its inline cache) against the same registry, side by side.
#
# Goals (issue 10): the fresh-runner "hit" build within 0.5x Docker's time,
# and bytes served no more than the layers the result needs.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
# shellcheck source=scenarios/lib.sh
. "$HERE/scenarios/lib.sh"

reps=1
while getopts "n:h" opt; do
  case $opt in
  n) reps=$OPTARG ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
    ;;
  esac
done
[[ $reps =~ ^[1-9][0-9]*$ ]] || { echo "ci-cache: -n wants a positive number" >&2; exit 2; }

BUILDER=${BUILDER:-$REPO/bin/builder}
DOCKER=${DOCKER:-/usr/bin/docker}
REGISTRY_BIN=${REGISTRY_BIN:-/usr/bin/docker-registry}
die() { echo "ci-cache: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "builds with RUN steps need root"
[ -x "$BUILDER" ] || die "$BUILDER is missing: run make build (or set BUILDER)"
[ -x "$REGISTRY_BIN" ] || die "$REGISTRY_BIN is missing: apt-get install -y docker-registry"

W=$(mktemp -d /var/tmp/ci-cache.XXXXXX)
REG_PID=""
stop_registry() {
  if [ -n "$REG_PID" ]; then
    kill "$REG_PID" 2>/dev/null || true
    wait "$REG_PID" 2>/dev/null || true
    REG_PID=""
  fi
}
cleanup() {
  stop_registry
  local m
  awk -v d="$W/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" || true; done
  rm -rf "$W"
}
trap cleanup EXIT

# The S4 context and the busybox base, as bench/run.sh makes them.
CTX0=$BENCH_DIR/ctx/S4
"$HERE/scenarios/S4/make-context.sh" "$CTX0" >/dev/null
mkdir -p "$W/base"
"$REPO/scripts/mkbase.sh" "$BUILDER" "$W/base/store" base/busybox:1 >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG=127.0.0.1:$port
mkdir -p "$W/reg"
cat >"$W/reg/config.yml" <<CFG
version: 0.1
log: {level: info, formatter: json}
storage: {filesystem: {rootdirectory: $W/reg/data}, delete: {enabled: true}}
http: {addr: $REG}
CFG
"$REGISTRY_BIN" serve "$W/reg/config.yml" >"$W/reg/log" 2>&1 &
REG_PID=$!
for _ in $(seq 1 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://$REG/v2/')" 2>/dev/null && break
  sleep 0.1
done

# served: bytes the registry wrote in answers to GETs so far.
served() {
  python3 - "$W/reg/log" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1], errors="replace"):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("http.request.method") == "GET":
        n += int(e.get("http.response.written", 0) or 0)
print(n)
PY
}

# ran LOG: RUN steps of a --progress plain log that were not CACHED.
ran() {
  python3 - "$1" <<'PY'
import re, sys
runs, cached = set(), set()
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"#(\d+) \[[^\]]*\] RUN ", line)
    if m:
        runs.add(m.group(1))
    m = re.match(r"#(\d+) CACHED", line)
    if m:
        cached.add(m.group(1))
print(len(runs - cached))
PY
}

# mkctx DIR [changed]: a copy of the S4 context whose FROM is the registry's.
mkctx() {
  rm -rf "$1"
  cp -a "$CTX0" "$1"
  sed -i "s#^FROM base/busybox:1#FROM $REG/base/busybox:1#" "$1/Dockerfile"
  if [ "${2:-}" = changed ]; then echo "changed $(date +%s%N)" >"$1/app/changeme.txt"; fi
}

# timed CMD...: runs CMD, sets T to its wall seconds.
timed() {
  local t0 rc
  t0=$(date +%s.%N)
  "$@" && rc=0 || rc=$?
  T=$(python3 -c "import time; print('%.2f' % (time.time() - $t0))")
  return $rc
}

human() { python3 -c "n=$1; print('%.1f MB' % (n / 1e6) if n >= 1e5 else '%d B' % n)"; }

echo "ci-cache: registry $REG, builder $BUILDER, $reps repetition(s)"
"$BUILDER" --root "$W/base/store" tag base/busybox:1 "$REG/base/busybox:1"
"$BUILDER" --root "$W/base/store" push "$REG/base/busybox:1" >/dev/null

# layers_size ROOT REF: the compressed size of REF's layers, what a runner
# that needs the whole result must download at least.
layers_size() {
  "$BUILDER" --root "$1" inspect "$2" | python3 -c 'import json,sys; print(sum(l["size"] for l in json.load(sys.stdin)[0]["Manifest"]["layers"]))'
}

printf '| builder | run | phase | wall s | RUNs executed | registry bytes served | result layers |\n|---|---|---|---|---|---|---|\n' >"$W/table"
for rep in $(seq 1 "$reps"); do
  RA=$W/runner-a
  rm -rf "$RA"
  mkctx "$W/ctx"
  timed "$BUILDER" --root "$RA" build --progress plain --network none --push -t "$REG/s9:builder" \
    --cache-to "type=registry,ref=$REG/s9cache:builder,mode=max" "$W/ctx" >"$W/a.log" 2>&1 ||
    { tail -20 "$W/a.log" >&2; die "runner A's build failed"; }
  printf '| builder | %s | A (build, push, cache-to) | %s | %s | - | - |\n' "$rep" "$T" "$(ran "$W/a.log")" >>"$W/table"
  rm -rf "$RA"
  for phase in hit change; do
    RB=$W/runner-b
    rm -rf "$RB"
    if [ "$phase" = change ]; then mkctx "$W/ctx" changed; else mkctx "$W/ctx"; fi
    s0=$(served)
    timed "$BUILDER" --root "$RB" build --progress plain --network none \
      --cache-from "type=registry,ref=$REG/s9cache:builder" -t s9 "$W/ctx" >"$W/b.log" 2>&1 ||
      { tail -20 "$W/b.log" >&2; die "runner B's $phase build failed"; }
    printf '| builder | %s | B %s | %s | %s | %s | %s |\n' "$rep" "$phase" "$T" "$(ran "$W/b.log")" "$(human $(($(served) - s0)))" "$(human "$(layers_size "$RB" s9)")" >>"$W/table"
    rm -rf "$RB"
  done
done

if [ -x "$DOCKER" ] && "$DOCKER" info >/dev/null 2>&1; then
  "$BUILDER" --root "$W/base/store" save -o "$W/base.tar" base/busybox:1
  "$DOCKER" load -i "$W/base.tar" >/dev/null
  "$DOCKER" tag base/busybox:1 "$REG/base/busybox:1"
  "$DOCKER" push -q "$REG/base/busybox:1" >/dev/null
  for rep in $(seq 1 "$reps"); do
    mkctx "$W/ctx"
    timed env DOCKER_BUILDKIT=1 "$DOCKER" build -q --network none --build-arg BUILDKIT_INLINE_CACHE=1 -t "$REG/s9:docker" "$W/ctx" >/dev/null
    "$DOCKER" push -q "$REG/s9:docker" >/dev/null
    printf '| docker | %s | A (build, push, inline cache) | %s | - | - | - |\n' "$rep" "$T" >>"$W/table"
    for phase in hit change; do
      "$DOCKER" builder prune -af >/dev/null
      "$DOCKER" rmi -f "$REG/s9:docker" "$REG/s9:docker-b" "$REG/base/busybox:1" >/dev/null 2>&1 || true
      if [ "$phase" = change ]; then mkctx "$W/ctx" changed; else mkctx "$W/ctx"; fi
      s0=$(served)
      timed env DOCKER_BUILDKIT=1 "$DOCKER" build --progress plain --network none --cache-from "$REG/s9:docker" -t "$REG/s9:docker-b" "$W/ctx" >"$W/d.log" 2>&1
      printf '| docker | %s | B %s | %s | %s | %s | - |\n' "$rep" "$phase" "$T" "$(ran "$W/d.log")" "$(human $(($(served) - s0)))" >>"$W/table"
    done
  done
else
  echo "ci-cache: no Docker daemon here: builder only" >&2
fi
cat "$W/table"
