#!/usr/bin/env bash
# Build the lab's guest: a Debian 12 kernel and one initramfs that holds the whole root
# (no root disk), from Debian packages only. Every guest boots the same two files.
#
#   Tests/lab/build-image.sh OUTDIR
#
# Writes OUTDIR/vmlinuz, OUTDIR/initrd.cpio and OUTDIR/image.info. OUTDIR must not exist yet
# or be empty; the caller (scripts/lab.sh) picks it from a hash of the inputs and renames a
# finished build into place, so a half-built image is never used.
#
# Host needs: mmdebstrap, apt-get (download), dpkg, cpio, and network to Debian's mirror.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:?usage: build-image.sh OUTDIR}"
SUITE=bookworm
MIRROR="${AOS_LAB_MIRROR:-http://deb.debian.org/debian}"

# Guest packages (besides mmdebstrap's "essential" set). Keep in sync with docs/testing.md.
GUEST_PACKAGES=(
    lvm2 lvm2-lockd sanlock dmsetup udev kmod
    librabbitmq4 libstdc++6       # aos-agent (static Swift stdlib) needs these
    qemu-guest-agent               # the host runs commands through it
    mount util-linux e2fsprogs iproute2 procps
    multipath-tools                # real dm-multipath on lab1 in the multipath lab (AOS_LAB_MPATH=1)
)
# Kernel modules the guest loads (with their dependencies); everything else is left out.
# dm_snapshot: lvm loads it on demand for the copy jobs' short-lived COW snapshots (lvcreate -s).
# virtio_scsi, sd_mod, dm_multipath, dm_service_time (multipath's default path selector),
# dm_round_robin: the multipath lab's two SCSI paths to the shared disk (guest/lab-mpath).
MODULES=(virtio_pci virtio_blk virtio_net virtio_console 9pnet_virtio 9p ext4 dm_mod dm_snapshot
    virtio_scsi sd_mod dm_multipath dm_service_time dm_round_robin)

log() { echo "build-image: $*" >&2; }

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d "$OUT/.work.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

t0=$SECONDS
# ---- kernel: the package linux-image-amd64 depends on -----------------------------------------
kpkg="${AOS_LAB_KERNEL_PACKAGE:-}"
if [[ -z "$kpkg" ]]; then
    kpkg="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
fi
[[ -n "$kpkg" ]] || { log "cannot find the kernel package (run apt-get update?)"; exit 1; }
log "kernel package $kpkg"
download_kernel() {
    (cd "$WORK" && apt-get download -q "$kpkg" 2>&1 | grep -v 'unsandboxed as root' >&2) || true
    local debs=("$WORK"/linux-image-*.deb)
    if [[ -e "${debs[0]}" ]]; then echo "${debs[0]}"; fi
}
deb="$(download_kernel)"
if [[ ! -f "$deb" ]]; then
    # Stale package lists name a version the mirror no longer has: refresh and resolve again.
    log "apt-get download $kpkg failed; apt-get update and retry"
    apt-get update -q >&2 || true
    kpkg="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
    deb="$(download_kernel)"
fi
[[ -f "$deb" ]] || { log "apt-get download $kpkg failed"; exit 1; }
dpkg -x "$deb" "$WORK/kernel"
kver="$(ls "$WORK/kernel/lib/modules")"
log "kernel $kver unpacked ($((SECONDS - t0)) s)"

# ---- root tree ------------------------------------------------------------------------------
ROOT="$WORK/root"
include="$(IFS=,; echo "${GUEST_PACKAGES[*]}")"
log "mmdebstrap $SUITE: $include"
# merged-usr hook: without it usrmerge pulls ~50 MB of perl. Docs, man pages and locales are
# not needed in a test guest.
mmdebstrap --quiet --variant=essential --include="$include" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    "$SUITE" "$ROOT" "$MIRROR" >&2
log "root tree done ($((SECONDS - t0)) s)"

# ---- modules: only the ones we load, with their dependencies --------------------------------
kmods="$ROOT/tmp/kmods"
mkdir -p "$kmods/lib/modules"
cp -a "$WORK/kernel/lib/modules/$kver" "$kmods/lib/modules/"
chroot "$ROOT" depmod -b /tmp/kmods "$kver"
mkdir -p "$ROOT/lib/modules/$kver"
for m in "${MODULES[@]}"; do
    chroot "$ROOT" modprobe -d /tmp/kmods -S "$kver" --show-depends "$m"
done | awk '$1 == "insmod" {print $2}' | sort -u | while read -r ko; do
    rel="${ko#/tmp/kmods/lib/modules/"$kver"/}"
    mkdir -p "$ROOT/lib/modules/$kver/$(dirname "$rel")"
    cp "$ROOT$ko" "$ROOT/lib/modules/$kver/$rel"
done
cp "$WORK/kernel/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$ROOT/lib/modules/$kver/"
rm -rf "$kmods"
chroot "$ROOT" depmod "$kver"
log "modules: $(find "$ROOT/lib/modules/$kver" -name '*.ko*' | wc -l) files"

# ---- configuration ----------------------------------------------------------------------------
install -m 0755 "$HERE/guest/init" "$ROOT/init"
# Tools the tests run in the guests: lab-agent, lab-reboot, lab-path, lab-mpath, lab-blocks, lab-fence.
for tool in "$HERE"/guest/lab-*; do
    install -m 0755 "$tool" "$ROOT/usr/local/sbin/$(basename "$tool")"
done
# lvm.conf: lvmlockd on; no dmeventd monitoring and no udev-driven autoactivation (no
# systemd here). The state disk and anything else that is not the shared disk is ignored.
conf="$ROOT/etc/lvm/lvm.conf"
sed -i -E 's/^(\s*)#?\s*use_lvmlockd = [01]/\1use_lvmlockd = 1/' "$conf"
sed -i -E 's/^(\s*)#?\s*monitoring = [01]/\1monitoring = 0/' "$conf"
sed -i -E 's/^(\s*)#?\s*event_activation = [01]/\1event_activation = 0/' "$conf"
grep -qE '^\s*use_lvmlockd = 1' "$conf" || { log "could not set use_lvmlockd in lvm.conf"; exit 1; }
grep -qE '^\s*monitoring = 0' "$conf" || { log "could not set monitoring in lvm.conf"; exit 1; }
grep -qE '^\s*event_activation = 0' "$conf" || { log "could not set event_activation in lvm.conf"; exit 1; }
echo lab >"$ROOT/etc/hostname"
printf '127.0.0.1 localhost\n' >"$ROOT/etc/hosts"
mkdir -p "$ROOT/mnt/host" "$ROOT/var/lib/aos-agent" "$ROOT/etc/aos"
# Not needed at run time; a smaller initramfs unpacks faster at every (TCG) boot.
rm -rf "$ROOT/var/cache/apt/"* "$ROOT/var/lib/apt/lists/"* "$ROOT/usr/lib/udev/hwdb.bin" "$ROOT/usr/lib/udev/hwdb.d"

# ---- pack --------------------------------------------------------------------------------
cp "$WORK/kernel/boot/vmlinuz-$kver" "$OUT/vmlinuz"
(cd "$ROOT" && find . -mindepth 1 -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) >"$OUT/initrd.cpio"
{
    echo "kernel_package=$kpkg"
    echo "kernel=$kver"
    echo "built=$(date -u +%FT%TZ)"
    echo "build_seconds=$((SECONDS - t0))"
    echo "initrd_bytes=$(stat -c %s "$OUT/initrd.cpio")"
    echo "packages=$include"
    # shellcheck disable=SC2016  # dpkg-query's own ${field} syntax, not the shell's
    chroot "$ROOT" dpkg-query -W -f='${Package}=${Version}\n' lvm2 lvm2-lockd sanlock qemu-guest-agent librabbitmq4 \
        multipath-tools | sed 's/^/version: /'
} >"$OUT/image.info"
log "done in $((SECONDS - t0)) s: $(du -h "$OUT/initrd.cpio" | cut -f1) initramfs"
