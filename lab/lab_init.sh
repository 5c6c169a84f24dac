#!/bin/bash
# PID 1 of a lab host after pivot_root. There is no systemd here: this plays the parts of a boot
# the deploy relies on, in boot order: systemd-sysctl (sysctl --system), rc-local.service
# (an executable /etc/rc.local), then sshd. As PID 1, bash reaps daemons re-parented to it.
trap 'kill -TERM -1; exit 0' TERM INT
mkdir -p /run/sshd /var/log
sysctl -q --system > /var/log/sysctl-boot.log 2>&1 || true   # keys outside net.* are denied: logged, not fatal
[ -x /etc/rc.local ] && /etc/rc.local > /var/log/rc.local.log 2>&1
/usr/sbin/sshd -E /var/log/sshd.log
while :; do sleep 3600 & wait $!; done
