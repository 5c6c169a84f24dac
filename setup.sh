#!/bin/bash
# One-time setup of a fresh machine of this kind, as root: Debian packages the lab needs,
# then this package (editable) with its test extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"
need=()
for tool in debootstrap:debootstrap ip:iproute2 nsenter:util-linux ssh-keygen:openssh-client; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
python3 -m pip install -q -e '.[test]'
echo "setup done: try 'invoke lab.up deploy verify'"
