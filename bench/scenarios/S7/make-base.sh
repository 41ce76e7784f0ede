#!/usr/bin/env bash
# make-base.sh BUILDER OUT.tar: writes S7's base image bench/s7-base:1 as a
# docker-archive, made without any network: a busybox root file system
# (Debian's busybox-static) plus ~190 MB of generated files under /usr
# (8,000 files, 80% text: about the size, file count and gzip ratio of a
# Debian minbase), imported with `builder import` into a scratch store.
. "$(dirname "$0")/../lib.sh"
builder=${1:?usage: make-base.sh BUILDER OUT.tar}
out=${2:?usage: make-base.sh BUILDER OUT.tar}
bb=/bin/busybox
[ -x "$bb" ] || { echo "make-base: $bb missing: apt-get install -y busybox-static" >&2; exit 1; }
tmp=$(mktemp -d "${BENCH_DIR}/s7-base.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
rootfs=$tmp/rootfs
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,root,usr/lib,usr/share}
chmod 1777 "$rootfs/tmp"
cp "$bb" "$rootfs/bin/busybox"
for a in $("$bb" --list); do
  [ "$a" = busybox ] || ln -s busybox "$rootfs/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
tool=$(benchtool)
"$tool" gen -out "$rootfs/usr/lib/bench" -files 6000 -bytes 170000000 -text 0.75 -per-dir 60 -seed "$SEED"
"$tool" gen -out "$rootfs/usr/share/bench" -files 2000 -bytes 20000000 -text 0.95 -per-dir 40 -seed "$((SEED + 7))"
find "$rootfs" -exec touch -h -d "$EPOCH_DATE" {} +
"$builder" --root "$tmp/store" import --change 'CMD ["sh"]' "$rootfs" bench/s7-base:1 >/dev/null
"$builder" --root "$tmp/store" save -o "$out.tmp" bench/s7-base:1
mv "$out.tmp" "$out"
