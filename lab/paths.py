"""Where the lab keeps things. The cache (golden tree, SSH key, Redis source) outlives a lab
and a checkout, so a fresh clone on the same machine does not rebuild it; per-host state does not."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LabPaths:
    cache_dir: Path
    state_dir: Path

    @property
    def golden_tree(self) -> Path:
        return self.cache_dir / "golden-tree"

    @property
    def ssh_key(self) -> Path:
        return self.cache_dir / "lab_ed25519"

    @property
    def source_dir(self) -> Path:
        return self.cache_dir / "redis-source"

    @property
    def hosts_dir(self) -> Path:
        return self.state_dir / "hosts"

    @property
    def secrets_file(self) -> Path:
        return self.state_dir / "secrets.yml"

    def host_dir(self, name: str) -> Path:
        return self.hosts_dir / name


def default_paths() -> LabPaths:
    return LabPaths(
        cache_dir=Path(os.environ.get("REDIS_PROVISION_CACHE", "/var/cache/redis-provision")),
        state_dir=Path(os.environ.get("REDIS_PROVISION_LAB_DIR", "/var/lib/redis-provision-lab")),
    )
