"""What the lab hands to the product: the drill reboots a lab host through the lab (the package
never imports lab/, which a pip install does not have)."""
from __future__ import annotations

from lab import hosts as lab_hosts
from lab.paths import default_paths
from provision.ops.drill import HostReboot


def host_reboot() -> HostReboot:
    paths = default_paths()

    def owns(plan, host_name: str) -> bool:
        return plan.inventory.controller.network_namespace == lab_hosts.BRIDGE_NAMESPACE and \
            lab_hosts.launcher_pid(paths, host_name) is not None

    return HostReboot(owns=owns, reboot=lambda host_name: lab_hosts.restart(paths, host_name, log=lambda _: None))
