#!/bin/bash
# One-time setup of a fresh machine of this kind, as root: Debian packages the lab needs, then
# a virtual environment in .venv with this package (editable) and its test extras. Stock Debian's
# python3 refuses `pip install` outside a venv (PEP 668), so nothing goes into the system Python.
# Safe to run again. Afterwards: `. .venv/bin/activate`.
set -euo pipefail
cd "$(dirname "$0")"
need=()
for tool in debootstrap:debootstrap ip:iproute2 nsenter:util-linux ssh-keygen:openssh-client; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ -x .venv/bin/python3 ] || python3 -m venv .venv
.venv/bin/python3 -m pip install -q -e '.[test]'
echo "setup done: '. .venv/bin/activate', then try 'invoke lab.up deploy verify'"
