#!/usr/bin/env python3
"""Deploy speed on the local lab: prints figures, asserts nothing (targets are read by people).

    python3 benchmarks/deploy_speed.py [--hosts 3] [--lab-sizes 3,10]

Measures: lab up/down for each size, a fresh deploy that compiles (empty artifact cache), a
fresh deploy from the artifact cache on new hosts, and no-op re-runs (median of 5).
Takes the lab down at the start and at the end.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from provision import cli  # noqa: E402
from provision.lab import golden, hosts as lab_hosts, inventory_file  # noqa: E402
from provision.lab.paths import default_paths  # noqa: E402


def timed(function):
    started = time.monotonic()
    value = function()
    return time.monotonic() - started, value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--lab-sizes", default="3,10")
    arguments = parser.parse_args()
    paths = default_paths()
    quiet = lambda _: None  # noqa: E731
    lab_hosts.down(paths, log=quiet)
    seconds, _ = timed(lambda: golden.build_golden_tree(paths, log=quiet))
    print(f"golden tree (cached after the first build): {seconds:.1f}s")
    for size in [int(n) for n in arguments.lab_sizes.split(",")]:
        up, _ = timed(lambda: lab_hosts.up(paths, size, log=quiet))
        down, _ = timed(lambda: lab_hosts.down(paths, log=quiet))
        print(f"lab up {size} hosts: {up:.2f}s   down: {down:.2f}s")
    with tempfile.TemporaryDirectory() as work:
        made = lab_hosts.up(paths, arguments.hosts, log=quiet)
        inventory = inventory_file.write_lab_inventory(paths, made, Path(work) / "lab.yml")
        artifacts = Path(work) / "artifacts"
        try:
            seconds, report = timed(lambda: cli.deploy(str(inventory), artifact_dir=str(artifacts), say=quiet))
            print(f"fresh deploy, compiling once ({arguments.hosts} hosts): {seconds:.1f}s ok={report.ok}")
            runs = [timed(lambda: cli.deploy(str(inventory), artifact_dir=str(artifacts), say=quiet)) for _ in range(5)]
            print(f"no-op re-run: median {statistics.median(s for s, _ in runs):.2f}s, "
                  f"changes {[r.changed for _, r in runs]}")
            lab_hosts.down(paths, log=quiet)
            made = lab_hosts.up(paths, arguments.hosts, log=quiet)
            seconds, report = timed(lambda: cli.deploy(str(inventory), artifact_dir=str(artifacts), say=quiet))
            print(f"fresh deploy from the artifact cache ({arguments.hosts} new hosts): {seconds:.1f}s ok={report.ok}")
        finally:
            lab_hosts.down(paths, log=quiet)


if __name__ == "__main__":
    main()
