#!/usr/bin/env bash
# run.sh: builder's own benchmark. Builds every scenario of scenarios/ cold
# and warm with bin/builder, a few repetitions each, and prints the medians
# next to the targets of targets.tsv.
#
#   bench/run.sh                       all scenarios and modes, 5 repetitions
#   bench/run.sh -s "S2 S3" -n 3       some scenarios, 3 repetitions
#   bench/run.sh -m warm               some modes (cold warm save oci)
#   bench/run.sh -C                    delete the cache dir and exit
#
# Options:
#   -s LIST   scenarios (default "S1 S2 S3 S4 S5 S6 S7 S8")
#   -m LIST   modes (default "cold warm save oci"; save and oci are S7's)
#   -n N      timed repetitions per scenario and mode (default 5)
#   -o DIR    results dir (default $BENCH_DIR/results/<UTC time>)
#   -k        keep the stores afterwards (default: deleted per scenario)
#   -C        remove $BENCH_DIR
# Environment:
#   BUILDER    the builder binary (default <repo>/bin/builder)
#   BENCH_DIR  cache of contexts, base archives, stores and results
#              (default /var/tmp/builder-bench; ~2 GB)
#   SEED       context generator seed (default 1)
#   NET        --network of the builds (default none)
#   STRICT=1   exit 3 when a target is missed
#
# Modes: cold = a fresh --root per repetition, the base image loaded before
# the clock starts (S7: the base load is timed too); warm = one untimed
# priming build, then timed rebuilds with the cache in place (S4 rewrites
# app/changeme.txt before each); save / oci = `builder save` of S7's result
# as docker-archive / OCI archive. Every timed command runs under
# `benchtool time` (wall clock around the child, peak RSS from wait4).
#
# Exit status: 0; 1 when a build failed or a run's cache hits were not the
# ones its mode expects (a cold run that hit the cache, a warm one that ran
# a step); 3 with STRICT=1 when a target is missed.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
# shellcheck source=scenarios/lib.sh
. "$HERE/scenarios/lib.sh"

ALL="S1 S2 S3 S4 S5 S6 S7 S8"
select_s=$ALL
select_m="cold warm save oci"
reps=5
out=""
keep=0
clean=0
while getopts "s:m:n:o:kCh" opt; do
  case $opt in
  s) select_s=$OPTARG ;;
  m) select_m=$OPTARG ;;
  n) reps=$OPTARG ;;
  o) out=$OPTARG ;;
  k) keep=1 ;;
  C) clean=1 ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
    ;;
  esac
done

BUILDER=${BUILDER:-$REPO/bin/builder}
NET=${NET:-none}
STRICT=${STRICT:-0}

die() {
  echo "bench: $*" >&2
  exit 1
}
say() { echo "bench: $*" >&2; }

# unmount_under DIR: a builder process should leave no mount behind; if one
# did, unmount it (deepest first) before the directory is deleted, and say so.
unmount_under() {
  local m
  awk -v d="$1/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do
      say "WARNING: leaked mount $m: unmounting"
      umount -l "$m" || true
    done
}

reset_store() {
  unmount_under "$1"
  rm -rf "$1"
}

if [ "$clean" = 1 ]; then
  unmount_under "$BENCH_DIR"
  rm -rf "$BENCH_DIR"
  exit 0
fi
for s in $select_s; do
  case " $ALL " in *" $s "*) ;; *) die "unknown scenario $s (have: $ALL)" ;; esac
done
[[ $reps =~ ^[1-9][0-9]*$ ]] || die "-n wants a positive number"
[ -x "$BUILDER" ] || die "$BUILDER is missing: run make build (or set BUILDER)"
BUILDER=$(cd "$(dirname "$BUILDER")" && pwd)/$(basename "$BUILDER")
[ "$(id -u)" = 0 ] || die "builds with RUN steps need root"
[ -x /bin/busybox ] || die "/bin/busybox missing: apt-get install -y busybox-static"
command -v go >/dev/null || [ -x /usr/local/go/bin/go ] || die "go is needed to build bench/benchtool"

mkdir -p "$BENCH_DIR"/{bin,ctx,bases,stores,out,results}
# Time a private copy: a `make build` during the run must not swap the
# binary between repetitions. The container init the builder installs next
# to itself comes along (without it RUN steps re-execute the builder).
mkdir -p "$BENCH_DIR/bin/$$"
cp "$BUILDER" "$BENCH_DIR/bin/$$/builder"
init_bin=$(dirname "$BUILDER")/builder-init
if [ -x "$init_bin" ]; then
  cp "$init_bin" "$BENCH_DIR/bin/$$/builder-init"
else
  say "no $init_bin: RUN steps will re-execute the builder (slower)"
fi
BUILDER_SRC=$BUILDER
BUILDER_DATE=$(date -u -r "$BUILDER_SRC" +%FT%TZ)
BUILDER=$BENCH_DIR/bin/$$/builder
cleanup() {
  local s
  rm -rf "$BENCH_DIR/bin/$$"
  [ "$keep" = 1 ] && return 0
  for s in $ALL; do reset_store "$BENCH_DIR/stores/$s-warm"; reset_store "$BENCH_DIR/stores/$s-cold"; done
}
trap cleanup EXIT
BENCHTOOL=$(benchtool)
export BENCHTOOL SEED BENCH_DIR

# modes_of SN: the modes that scenario has.
modes_of() {
  if [ "$1" = S7 ]; then echo "cold warm save oci"; else echo "cold warm"; fi
}

# stamp_ok FILE STAMP: true when FILE exists and its .stamp says STAMP.
stamp_ok() {
  [ -s "$1" ] && [ "$(cat "$1.stamp" 2>/dev/null)" = "$2" ]
}

# Base images, as docker-archives that every store loads: made once, again
# only when what they are made from changes.
BUSYBOX_TAR=$BENCH_DIR/bases/busybox.tar
S7_TAR=$BENCH_DIR/bases/s7-base.tar
make_bases() {
  local st tmp
  st=$(cat "$REPO/scripts/mkbase.sh" /bin/busybox | sha256sum | cut -c1-32)
  if ! stamp_ok "$BUSYBOX_TAR" "$st"; then
    say "making base/busybox:1 (scripts/mkbase.sh)"
    tmp=$(mktemp -d "$BENCH_DIR/bases/tmp.XXXXXX")
    "$REPO/scripts/mkbase.sh" "$BUILDER" "$tmp/store" base/busybox:1 >/dev/null
    "$BUILDER" --root "$tmp/store" save -o "$BUSYBOX_TAR" base/busybox:1
    reset_store "$tmp"
    echo "$st" >"$BUSYBOX_TAR.stamp"
  fi
  case " $select_s " in *" S7 "*) ;; *) return 0 ;; esac
  st=$( (cat "$HERE/scenarios/S7/make-base.sh" "$HERE/scenarios/lib.sh" /bin/busybox; gen_sum; echo "seed $SEED") | sha256sum | cut -c1-32)
  if ! stamp_ok "$S7_TAR" "$st"; then
    say "making bench/s7-base:1 (scenarios/S7/make-base.sh, ~200 MB)"
    "$HERE/scenarios/S7/make-base.sh" "$BUILDER" "$S7_TAR"
    echo "$st" >"$S7_TAR.stamp"
  fi
}

make_contexts() {
  local s t0
  for s in $select_s; do
    t0=$SECONDS
    "$HERE/scenarios/$s/make-context.sh" "$BENCH_DIR/ctx/$s"
    if [ $((SECONDS - t0)) -gt 1 ]; then say "context $s generated in $((SECONDS - t0)) s"; fi
  done
}

# timed LOG CMD...: runs CMD with its output in LOG (the command line on the
# first line) and sets T_RC, T_WALL (seconds) and T_RSS (KiB, the largest
# process of the tree). `benchtool time` is /usr/bin/time -f '%e %M' with
# the clock read around the child alone (GNU time costs ~7 ms itself here
# and has 10 ms resolution, too coarse for a 50 ms target).
timed() {
  local log=$1 res
  shift
  printf '$ %s\n' "$*" >"$log"
  if "$BENCHTOOL" time -o "$log.time" "$@" >>"$log" 2>&1; then T_RC=0; else T_RC=$?; fi
  res=$(cat "$log.time" 2>/dev/null || true)
  T_WALL=${res% *}
  T_RSS=${res#* }
  [[ $T_RSS =~ ^[0-9]+$ ]] || T_RSS=""
  [[ $T_WALL =~ ^[0-9.]+$ ]] || T_WALL=0
  rm -f "$log.time"
}

# build_argv STORE SN MODE: the timed build's command line.
build_argv() {
  local store=$1 s=$2 m=$3
  BUILD_ARGV=("$BUILDER" --root "$store" build --progress json -t "bench/${s,,}:$m")
  if [ "$NET" != default ]; then BUILD_ARGV+=(--network "$NET"); fi
  BUILD_ARGV+=("$BENCH_DIR/ctx/$s")
}

# load_base STORE SN: the base image into a store (before the clock).
load_base() {
  local tar=$BUSYBOX_TAR
  [ "$2" = S7 ] && tar=$S7_TAR
  "$BUILDER" --root "$1" load -i "$tar" >/dev/null
}

# cache_check SN MODE CACHED RAN: ok when the cache hits are the mode's.
cache_check() {
  local s=$1 m=$2 c=$3 r=$4
  case $m in
  cold) [ "$c" = 0 ] && echo ok || echo bad ;;
  warm)
    if [ "$s" = S4 ]; then
      # Only the COPY of the changed context and the RUN after it re-run.
      [ "$c" = 1 ] && [ "$r" = 2 ] && echo ok || echo bad
    else
      [ "$c" -gt 0 ] && [ "$r" = 0 ] && echo ok || echo bad
    fi
    ;;
  *) echo - ;;
  esac
}

BAD=0
# record SN MODE REP LOG OUT_BYTES: appends the timed command's row.
record() {
  local s=$1 m=$2 rep=$3 log=$4 ob=${5:-} p cached ran failed conc par chk
  if [ "$m" = save ] || [ "$m" = oci ]; then
    cached=0 ran=0 failed=0 conc=0 par=0
  else
    p=$("$BENCHTOOL" progress "$log")
    IFS=$'\t' read -r cached ran failed conc par <<<"$p"
  fi
  chk=$(cache_check "$s" "$m" "$cached" "$ran")
  if [ "$T_RC" != 0 ]; then
    BAD=1
    say "$s $m #$rep FAILED (exit $T_RC), end of $log:"
    tail -n 15 "$log" | sed 's/^/    /' >&2
  elif [ "$chk" = bad ]; then
    BAD=1
    say "$s $m #$rep: unexpected cache hits: $cached cached, $ran ran (see $log)"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$s" "$m" "$rep" "$T_WALL" "$T_RC" "$T_RSS" "$cached" "$ran" "$failed" "$conc" "$par" "$chk" \
    "$LOAD1" "$ob" >>"$RAW"
  printf '  %-3s %-4s #%d  %8.3f s  %5s MiB  cached %s ran %s%s\n' "$s" "$m" "$rep" "$T_WALL" \
    "$(( ${T_RSS:-0} / 1024 ))" "$cached" "$ran" "$([ "$conc" -gt 1 ] 2>/dev/null && echo " (RUNs at once: $conc, x$par)")"
}

before_clock() {
  sync
  LOAD1=$(cut -d' ' -f1 /proc/loadavg)
}

# prime STORE SN: a fresh store with the base and one untimed build.
prime() {
  local store=$1 s=$2 log=$LOGS/$2-prime.log
  reset_store "$store"
  load_base "$store" "$s"
  build_argv "$store" "$s" warm
  if ! "${BUILD_ARGV[@]}" >"$log" 2>&1; then
    tail -n 15 "$log" >&2
    die "$s: priming build failed (see $log)"
  fi
}

run_cold() {
  local s=$1 store=$BENCH_DIR/stores/$1-cold rep log
  for ((rep = 1; rep <= reps; rep++)); do
    log=$LOGS/$s-cold-$rep.log
    reset_store "$store"
    build_argv "$store" "$s" cold
    if [ "$s" = S7 ]; then
      # Loading (unpacking) the large base is part of what S7 cold measures.
      before_clock
      timed "$log" sh -c '"$1" --root "$2" load -i "$3" && shift 3 && exec "$@"' sh \
        "$BUILDER" "$store" "$S7_TAR" "${BUILD_ARGV[@]}"
    else
      load_base "$store" "$s"
      before_clock
      timed "$log" "${BUILD_ARGV[@]}"
    fi
    record "$s" cold "$rep" "$log"
  done
  [ "$keep" = 1 ] || reset_store "$store"
}

run_warm() {
  local s=$1 store=$BENCH_DIR/stores/$1-warm rep log
  prime "$store" "$s"
  build_argv "$store" "$s" warm
  for ((rep = 1; rep <= reps; rep++)); do
    log=$LOGS/$s-warm-$rep.log
    if [ "$s" = S4 ]; then
      echo "changed: run $RUN_ID rep $rep" >"$BENCH_DIR/ctx/S4/app/changeme.txt"
    fi
    before_clock
    timed "$log" "${BUILD_ARGV[@]}"
    record "$s" warm "$rep" "$log"
  done
  WARM_READY=$store
}

# run_save SN MODE: `builder save` of the warm store's image.
run_save() {
  local s=$1 m=$2 store=$BENCH_DIR/stores/$1-warm rep log dest fmt=docker
  [ "$m" = oci ] && fmt=oci
  if [ "${WARM_READY:-}" != "$store" ]; then
    prime "$store" "$s"
    WARM_READY=$store
  fi
  dest=$BENCH_DIR/out/$s.$m.tar
  for ((rep = 1; rep <= reps; rep++)); do
    log=$LOGS/$s-$m-$rep.log
    rm -f "$dest"
    before_clock
    timed "$log" "$BUILDER" --root "$store" save --format "$fmt" -o "$dest" "bench/${s,,}:warm"
    record "$s" "$m" "$rep" "$log" "$(stat -c %s "$dest" 2>/dev/null || true)"
  done
  rm -f "$dest"
}

RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
out=${out:-$BENCH_DIR/results/$RUN_ID}
LOGS=$out/logs
mkdir -p "$LOGS"
RAW=$out/raw.tsv
printf 'scenario\tmode\trep\twall_s\trc\trss_kb\tcached\tran\tfailed\tmaxconc\tpar\tcache\tload1\tout_bytes\n' >"$RAW"
{
  echo "run $RUN_ID  reps $reps  seed $SEED  network $NET"
  echo "builder $BUILDER_SRC  sha256 $(sha256sum "$BUILDER" | cut -c1-16)  built $BUILDER_DATE"
  echo "kernel $(uname -r)  cpus $(nproc)  mem $(awk '/MemTotal/ { print $2 " kB" }' /proc/meminfo)"
  echo "bench dir $BENCH_DIR on $(df -T "$BENCH_DIR" | awk 'NR == 2 { print $2 }')"
  echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/env.txt"

make_bases
make_contexts

say "results in $out"
for s in $select_s; do
  echo "load at $s: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/env.txt"
  WARM_READY=""
  for m in $(modes_of "$s"); do
    case " $select_m " in *" $m "*) ;; *) continue ;; esac
    case $m in
    cold) run_cold "$s" ;;
    warm) run_warm "$s" ;;
    save | oci) run_save "$s" "$m" ;;
    esac
  done
  [ "$s" != S4 ] || "$HERE/scenarios/S4/make-context.sh" "$BENCH_DIR/ctx/S4" # pristine again
  [ "$keep" = 1 ] || reset_store "$BENCH_DIR/stores/$s-warm"
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/env.txt"

# Where the time went: the slowest steps of each scenario's last repetition.
for log in "$LOGS"/S*-cold-"$reps".log "$LOGS"/S*-warm-"$reps".log; do
  [ -e "$log" ] || continue
  echo "## $(basename "$log" .log)"
  "$BENCHTOOL" progress -steps -top 8 "$log"
  echo
done >"$out/steps.txt"

set +e
{
  echo "builder bench $RUN_ID: $reps repetitions, seed $SEED, $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg), $BUILDER_SRC of $BUILDER_DATE (sha256 $(sha256sum "$BUILDER" | cut -c1-12))"
  echo
  "$BENCHTOOL" summarize -targets "$HERE/targets.tsv" "$RAW"
} >"$out/summary.md"
missed=$?
set -e
echo
cat "$out/summary.md"
echo
echo "raw: $RAW  table: $out/summary.md  slowest steps: $out/steps.txt  logs: $LOGS"
if [ "$BAD" != 0 ]; then
  say "some builds failed or hit the cache unexpectedly (see above)"
  exit 1
fi
if [ "$STRICT" = 1 ] && [ "$missed" != 0 ]; then exit 3; fi
exit 0
