"""The local lab: real SSH hosts on one machine (network namespace + pid/mount/uts/ipc
namespaces + an overlayfs root over a Debian tree, each running its own sshd)."""
