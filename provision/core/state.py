"""What the tool remembers on each host between runs, in <install_dir>/boot/state.json:

- the release that ran before the current one (what `rollback` goes back to);
- per redis-server port, the names of the `redis.settings` it wrote, so that a setting taken out
  of the inventory can be put back to Redis's default (Redis has no "reset to default").

Pure: parsing and building the text; the steps read it through facts and write it with
primitives.ensure_file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class HostState:
    previous_version: str | None = None
    settings: dict[int, tuple[str, ...]] = field(default_factory=dict)   # port → setting names written

    def with_settings(self, port: int, names) -> "HostState":
        return replace(self, settings={**self.settings, port: tuple(sorted(names))})

    def without_port(self, port: int) -> "HostState":
        return replace(self, settings={key: value for key, value in self.settings.items() if key != port})


def parse(text: str) -> HostState | None:
    """None when there is no state file yet (a host deployed before the tool kept one: what it
    wrote is then taken to be what the inventory says now). A damaged file is treated the same."""
    if not text.strip():
        return None
    try:
        data = json.loads(text)
        settings = {int(port): tuple(str(name) for name in names)
                    for port, names in (data.get("settings") or {}).items()}
        previous = data.get("previous_version")
        return HostState(previous_version=str(previous) if previous else None, settings=settings)
    except (ValueError, AttributeError, TypeError):
        return None


def format_state(state: HostState) -> str:
    return json.dumps({"previous_version": state.previous_version,
                       "settings": {str(port): list(names) for port, names in sorted(state.settings.items())}},
                      indent=2, sort_keys=True) + "\n"
