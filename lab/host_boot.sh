#!/bin/bash
# PID 1 of a lab host's fresh pid+mount+uts+ipc namespaces, already inside the host's netns.
# Builds the host's root (overlayfs over the golden tree, private /proc /sys /dev /run), then
# pivot_root and exec the host's init. Arguments: NAME GOLDEN_TREE HOST_DIR
set -euo pipefail
name=$1 golden=$2 host_dir=$3
root=$host_dir/merged
mount --make-rprivate /
mount -t overlay overlay -o "lowerdir=$golden,upperdir=$host_dir/upper,workdir=$host_dir/work" "$root"
mount -t proc proc "$root/proc"
# /proc/sys read-only except net.* (per network namespace, so safe and real per host).
mount --bind "$root/proc/sys" "$root/proc/sys"
mount --bind "$root/proc/sys/net" "$root/proc/sys/net"
mount -o remount,bind,ro "$root/proc/sys"
# Global kernel knobs become per-host files. Each boot starts from the machine's current value,
# as a real reboot starts from the kernel default, so boot-time persistence is really exercised.
cat /proc/sys/vm/overcommit_memory > "$host_dir/knobs/vm_overcommit_memory"
mount --bind "$host_dir/knobs/vm_overcommit_memory" "$root/proc/sys/vm/overcommit_memory"
mount -t sysfs -o ro sysfs "$root/sys"
for knob in enabled defrag; do
  cat "/sys/kernel/mm/transparent_hugepage/$knob" > "$host_dir/knobs/thp_$knob"
  mount --bind "$host_dir/knobs/thp_$knob" "$root/sys/kernel/mm/transparent_hugepage/$knob"
done
mount -t tmpfs -o mode=755,size=64m tmpfs "$root/dev"
for dev in null zero full random urandom tty; do touch "$root/dev/$dev"; mount --bind "/dev/$dev" "$root/dev/$dev"; done
mkdir -p "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"; ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"; ln -s /proc/self/fd/1 "$root/dev/stdout"; ln -s /proc/self/fd/2 "$root/dev/stderr"
mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
mount -t tmpfs -o mode=755,size=64m tmpfs "$root/run"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
hostname "$name"; echo "$name" > "$root/etc/hostname"
mkdir -p "$root/.oldroot"; cd "$root"; pivot_root . .oldroot; umount -l /.oldroot
exec /usr/local/sbin/lab-init
