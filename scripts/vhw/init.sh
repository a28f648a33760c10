#!/bin/busybox sh
# PID 1 of the rig's initramfs (busybox). Mounts the host's root read-only over virtio-9p with a
# tmpfs overlay on top, mounts the results directory read-write over 9p at
# /run/kairo-vhw/results, and switch_roots into it, where scripts/vhw/stage2.sh (named in
# results/job.env) runs the guest script. switch_root, not chroot: with a chroot the kernel's
# module autoloading (crypto templates such as ccm(aes) for Wi-Fi keys) runs /sbin/modprobe of the
# initramfs, not the host's.
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

die() {
  echo "vhw-init: $*" >/dev/console
  echo o >/proc/sysrq-trigger
  sleep 60
}

mount -t proc proc /proc || die "cannot mount /proc"
mount -t sysfs sysfs /sys || die "cannot mount /sys"
mount -t devtmpfs devtmpfs /dev || die "cannot mount devtmpfs on /dev"
exec </dev/console >/dev/console 2>&1

while read -r m; do
  insmod "/modules/$m" || die "insmod $m failed"
done </modules.list

mkdir -p /lower /upper /newroot
# cache=loose: the host's root does not change under a test run, and node reads thousands of
# files while loading; the results share below stays uncached so every write reaches the host.
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=524288 hostroot /lower || die "cannot mount the host's root (9p tag hostroot)"
mount -t tmpfs -o mode=0755 tmpfs /upper || die "cannot mount the overlay's tmpfs"
mkdir -p /upper/data /upper/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work /newroot || die "cannot mount the overlay on the host's root"
# The host's /run (pid files, sockets of its daemons) means nothing in here.
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /newroot/run || die "cannot mount /run"
mkdir -p /newroot/run/kairo-vhw/results
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 results /newroot/run/kairo-vhw/results || die "cannot mount the results directory (9p tag results)"
[ -f /newroot/run/kairo-vhw/results/job.env ] || die "results/job.env is missing"
. /newroot/run/kairo-vhw/results/job.env
[ -f "/newroot$KAIRO_VHW_STAGE2" ] || die "the second stage $KAIRO_VHW_STAGE2 is not in the host's root"

for d in dev proc sys; do
  mount --move "/$d" "/newroot/$d" || die "cannot move /$d into the new root"
done
exec switch_root /newroot /bin/sh "$KAIRO_VHW_STAGE2"
die "switch_root failed"
