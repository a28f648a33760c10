#!/bin/sh
# Second stage of the rig: PID 1 after switch_root into the host's root (read-only, tmpfs
# overlay). Mounts what a booted system would have, runs the guest script named on the kernel
# command line (kairo.script=) with cwd = the repo root, writes its exit status to
# results/exit-code and powers off with sysrq (there is no init system to ask).
# results/job.env (written by the host, scripts/vhw/vm.mjs) sets KAIRO_VHW_ROOT, KAIRO_VHW_NODE,
# KAIRO_VHW_MODULES and the test's own environment.
R=/run/kairo-vhw/results
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
export KAIRO_VHW=1
export KAIRO_VHW_RESULTS="$R"
. "$R/job.env"

off() {
  sync
  echo o >/proc/sysrq-trigger
  # PID 1 must not exit before the power-off work runs (that would panic); sleep may already be
  # unreadable once the 9p transport is torn down, hence the spin.
  sleep 60 2>/dev/null || while :; do :; done
}
fail() {
  echo "vhw-stage2: $*" >&2
  echo "$*" >"$R/stage2-error"
  off
}

mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts || fail "cannot mount /dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm || fail "cannot mount /dev/shm"
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr

# The sid kernel's modules, where modprobe (and the kernel's autoloader) look for them.
kver=$(uname -r)
mkdir -p "/lib/modules/$kver" || fail "cannot make /lib/modules/$kver"
mount --bind "$KAIRO_VHW_MODULES" "/lib/modules/$kver" || fail "cannot bind $KAIRO_VHW_MODULES on /lib/modules/$kver"
modprobe configfs || fail "modprobe configfs failed"
mount -t configfs configfs /sys/kernel/config || fail "cannot mount configfs"
echo kairo-vhw >/proc/sys/kernel/hostname
ip link set lo up || fail "cannot set lo up"

script=$(sed -n 's/.*kairo\.script=\([^ ]*\).*/\1/p' /proc/cmdline)
[ -n "$script" ] || fail "no kairo.script= on the kernel command line"
cd "$KAIRO_VHW_ROOT" || fail "cannot cd to the repo root $KAIRO_VHW_ROOT"
case "$script" in
  -) set -- /bin/sh "$R/command.sh" ;;
  *.ts) set -- "$KAIRO_VHW_NODE" --import=tsx "$script" ;;
  *.mjs | *.js | *.cjs) set -- "$KAIRO_VHW_NODE" "$script" ;;
  *) set -- /bin/sh "$script" ;;
esac
[ "$script" = - ] || [ -f "$script" ] || fail "the guest script $script is not in $KAIRO_VHW_ROOT"
name=$script
[ "$script" = - ] && name="the shell command in results/command.sh"
echo "vhw: guest $(uname -r) running $name"
"$@" </dev/null
code=$?
echo "$code" >"$R/exit-code"
echo "vhw: $name exited with $code"
off
