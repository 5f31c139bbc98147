#!/usr/bin/env bash
# guest-kit.sh: builds the guest kit every pod VM boots, reproducibly.
#
#   packaging/guest-kit.sh [--cocod build/cocod] [--out build/kit] [--cache build/kit-cache]
#
# Output (in --out):
#   vmlinuz         Debian's cloud kernel (linux-image-6.1.0-NN-cloud-amd64, NN from
#                   `apt-cache depends linux-image-cloud-amd64`; the .deb is cached in
#                   --cache so reruns need no network)
#   initramfs.img   newc cpio, uncompressed (measured under TCG: the guest reached
#                   `ready` ~0.3 s sooner than with gzip -n -9, 19 MB vs 8 MB; set
#                   KIT_GZIP=1 for the compressed variant): /init (a two-line script that execs
#                   `cocod agent`), busybox (static), crun and cocod (stripped) with the
#                   libraries ldd lists, the virtio and overlay modules as
#                   /lib/modules/NAME.ko; nothing else (~18 MB: cocod loads libvirt with
#                   dlopen on the host, so libvirt's ~60 MB of libraries stay out).
#                   Entries sorted, owner 0:0, mtime $EPOCH.  The agent does not copy
#                   it anywhere: it bind-mounts the initramfs over itself (tee/agent.c).
#   kit.json        {kernel_sha384, initramfs_sha384, cmdline, cmdline_sha384,
#                    measurement, kernel_version}
#
# The sim launch measurement is
#   measurement = SHA-384(kernel_sha384 || initramfs_sha384 || cmdline_sha384)
# over the three digests as raw bytes (48 each, in that order); cmdline_sha384 is
# the SHA-384 of the command line's bytes (no trailing newline).  tee/kit.c
# computes the same and `cocod kit show` verifies it.
set -euo pipefail

EPOCH=1700000000 # fixed mtime of every initramfs entry (SOURCE_DATE_EPOCH-style)
CMDLINE="console=ttyS0 quiet panic=-1 rdinit=/init"
MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_console overlay failover net_failover virtio_net"
COCOD=build/cocod OUT=build/kit CACHE=build/kit-cache

while [ $# -gt 0 ]; do
	case "$1" in
	--cocod) COCOD=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--cache) CACHE=$2; shift 2 ;;
	*) echo "usage: $0 [--cocod BIN] [--out DIR] [--cache DIR]" >&2; exit 2 ;;
	esac
done
export LC_ALL=C TZ=UTC
[ -x "$COCOD" ] || { echo "guest-kit: $COCOD is missing (make all first)" >&2; exit 1; }
for t in busybox crun cpio gzip dpkg strip; do
	command -v "$t" >/dev/null || { echo "guest-kit: $t is missing" >&2; exit 1; }
done
BUSYBOX=/bin/busybox
file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' ||
	ldd "$BUSYBOX" 2>&1 | grep -q 'not a dynamic' ||
	{ echo "guest-kit: $BUSYBOX is not static (install busybox-static)" >&2; exit 1; }

# --- kernel: cached .deb, unpacked once -----------------------------------
mkdir -p "$CACHE"
deb=$(ls "$CACHE"/linux-image-6.1.0-*-cloud-amd64_*.deb 2>/dev/null | sort | tail -n 1 || true)
if [ -z "$deb" ]; then
	pkg=$(apt-cache depends linux-image-cloud-amd64 |
		grep -o 'linux-image-6\.1\.0-[0-9]*-cloud-amd64' | head -n 1)
	[ -n "$pkg" ] || { echo "guest-kit: cannot resolve the cloud kernel package" >&2; exit 1; }
	(cd "$CACHE" && apt-get download "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
	deb=$(ls "$CACHE"/"$pkg"_*.deb | tail -n 1)
fi
kdir="$CACHE/$(basename "$deb" .deb)"
if [ ! -d "$kdir/boot" ]; then
	rm -rf "$kdir.tmp" && dpkg -x "$deb" "$kdir.tmp" && mv "$kdir.tmp" "$kdir"
fi
vmlinuz=$(ls "$kdir"/boot/vmlinuz-* | head -n 1)
kver=${vmlinuz##*/vmlinuz-}
moddir="$kdir/lib/modules/$kver"

# --- initramfs tree ---------------------------------------------------------
stage=$(mktemp -d "${TMPDIR:-/tmp}/guest-kit.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root="$stage/root"
mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,lib/modules,etc}
install -m 0755 "$BUSYBOX" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
install -m 0755 "$(command -v crun)" "$root/bin/crun"
# cocod without its debug sections (GNU strip is deterministic): the same
# code, a third of the bytes the kernel has to unpack at every boot.
strip --strip-all -o "$root/bin/cocod" "$COCOD"
chmod 0755 "$root/bin/cocod"
# cocod loads libvirt with dlopen on the host; linked (DT_NEEDED), it would
# pull ~60 MiB of libraries into every guest.
if ldd "$root/bin/cocod" | grep -q 'libvirt\.so'; then
	echo "guest-kit: warning: $COCOD is linked against libvirt (build without -fsanitize," \
		"with --as-needed): the kit carries libvirt's dependencies" >&2
fi
# Libraries at the paths ldd names (the dynamic loader included).
for lib in $(ldd "$root/bin/crun" "$root/bin/cocod" | grep -o '/[^ ]*\.so[^ ]*' | sort -u); do
	mkdir -p "$root$(dirname "$lib")"
	install -m 0755 "$(readlink -f "$lib")" "$root$lib"
done
for m in $MODULES; do
	f=$(find "$moddir" -name "$m.ko" | head -n 1)
	[ -n "$f" ] || { echo "guest-kit: module $m not found in $kver" >&2; exit 1; }
	install -m 0644 "$f" "$root/lib/modules/$m.ko"
done
ln -s bin/cocod "$root/init" # cocod run as /init is the agent
printf 'root:x:0:0:root:/:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
chmod 0644 "$root/etc/passwd" "$root/etc/group"
find "$root" -type d -exec chmod 0755 {} +
chmod 1777 "$root/tmp"
find "$root" -exec touch -h -d "@$EPOCH" {} +

# --- outputs ----------------------------------------------------------------
mkdir -p "$OUT"
(cd "$root" && find . -mindepth 1 | sort |
	cpio -o -H newc --reproducible -R 0:0 --quiet) >"$stage/initramfs.cpio"
if [ "${KIT_GZIP:-0}" = 1 ]; then
	gzip -n -9 <"$stage/initramfs.cpio" >"$stage/initramfs.img"
else
	mv "$stage/initramfs.cpio" "$stage/initramfs.img"
fi
install -m 0644 "$vmlinuz" "$stage/vmlinuz"

sha() { sha384sum "$1" | cut -d' ' -f1; }
k=$(sha "$stage/vmlinuz")
i=$(sha "$stage/initramfs.img")
c=$(printf '%s' "$CMDLINE" | sha384sum | cut -d' ' -f1)
m=$(printf "$(printf '%s%s%s' "$k" "$i" "$c" | sed 's/../\\x&/g')" | sha384sum | cut -d' ' -f1)
cat >"$stage/kit.json" <<JSON
{
  "kernel_version": "$kver",
  "kernel_sha384": "$k",
  "initramfs_sha384": "$i",
  "cmdline": "$CMDLINE",
  "cmdline_sha384": "$c",
  "measurement": "$m"
}
JSON
for f in vmlinuz initramfs.img kit.json; do mv -f "$stage/$f" "$OUT/$f"; done
echo "guest-kit: $OUT (kernel $kver, initramfs $(stat -c %s "$OUT/initramfs.img") bytes, measurement ${m:0:16}...)"
