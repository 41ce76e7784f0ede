#!/bin/sh
# mkbase.sh BUILDER ROOT NAME: import a minimal busybox image made from
# Debian's busybox-static (no registry needed).
set -eu
builder=$1 root=$2 name=$3
bb=/bin/busybox
[ -x "$bb" ] || { echo "mkbase: $bb missing: apt-get install -y busybox-static" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/bin" "$dir/etc" "$dir/proc" "$dir/root" "$dir/dev" "$dir/sys" "$dir/tmp" "$dir/home"
chmod 1777 "$dir/tmp"
cp "$bb" "$dir/bin/busybox"
for a in $("$bb" --list); do [ "$a" = busybox ] || ln -s busybox "$dir/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$dir/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$dir/etc/group"
"$builder" --root "$root" import --change 'CMD ["sh"]' "$dir" "$name"
