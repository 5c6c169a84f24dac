"""The operator's ssh_config (paramiko's reader) and name resolution: the one part of the
inventory that reads the controller's files beyond the inventory and asks DNS."""
from __future__ import annotations

import os
import socket
import paramiko

from provision.base import defaults

from provision.inventory.model import Controller


def resolve_ipv4(name: str) -> str | None:
    """The first IPv4 address of a host name (DNS or /etc/hosts), None when it has none."""
    try:
        return socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except (OSError, IndexError, UnicodeError):
        return None


def ssh_config_hostname(ssh_config: "paramiko.SSHConfig | None", address: str) -> str:
    """What ssh would connect to for `address`: its HostName in ssh_config, else itself."""
    if ssh_config is None:
        return address
    return ssh_config.lookup(address).get("hostname", address)


def load_ssh_config(controller: Controller) -> "paramiko.SSHConfig | None":
    """The ssh_config the controller's connections honour: the inventory's, else ~/.ssh/config."""
    path = controller.ssh_config or os.path.expanduser(defaults.USER_SSH_CONFIG)
    if not os.path.isfile(path):
        return None
    try:
        return paramiko.SSHConfig.from_path(path)
    except (OSError, paramiko.SSHException, ValueError):
        return None
