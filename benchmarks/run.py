#!/usr/bin/env python3
"""The deploy benchmark: one command, all figures of one run, a table and a JSON file.

    python3 benchmarks/run.py [--quick] [--runs 5]

Measures on the local lab (as root; the lab is taken down at the start and at the end):
the reference local `make -j2` of the same Redis source; a fresh deploy on 3 hosts with an empty
artifact cache and its ratio to the reference; a fresh deploy from the cache on 3 new hosts;
no-op re-runs at 3, 10 and 30 hosts (one group; and 30 hosts as 10 groups of 3 with 3
sentinels); verify at 3 and 30; SSH round trips per host in a no-op; the controller's peak RSS
for the 30-host no-op (a process of its own); a 6-host Redis Cluster of 3 shards: fresh deploy
from the cache, no-op, verify, a shard added to and taken out of a cluster holding 200,000 keys
(--cluster-only: those rows alone). No-ops and verifies are the
median of --runs.
--quick skips the reference make and the compiling deploy (it needs a warm artifact cache).
Prints figures and asserts nothing: targets are read by people (README, issue 8).
Results: benchmarks/results/latest.json and one file per run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis.cluster import RedisCluster  # noqa: E402

from provision import cli, inventory  # noqa: E402
from provision.ssh import netns, remote  # noqa: E402
from lab import golden, hosts as lab_hosts, inventory_file  # noqa: E402
from lab.paths import default_paths  # noqa: E402

QUIET = lambda _: None  # noqa: E731
RESULTS = ROOT / "benchmarks" / "results"


def timed(function) -> tuple[float, object]:
    started = time.monotonic()
    value = function()
    return time.monotonic() - started, value


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    memory_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                         if line.startswith("MemTotal")))
    return {"cpus": os.cpu_count(), "cpu": model, "memory_gb": round(memory_kb / 1024 / 1024, 1),
            "kernel": platform.release(), "python": platform.python_version()}


def reference_make(tarball: Path) -> float:
    """`make -j2` of the same source tree on the controller, the floor of any deploy that compiles."""
    with tempfile.TemporaryDirectory() as work:
        with tarfile.open(tarball) as archive:
            archive.extractall(work, filter="data")
        source = next(Path(work).iterdir())
        seconds, _ = timed(lambda: subprocess.run(["make", "-j2"], cwd=source, check=True,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return seconds


class Lab:
    def __init__(self, work: Path):
        self.paths, self.work = default_paths(), work

    def up(self, hosts: int, groups: int = 1, cluster: int | None = None) -> Path:
        lab_hosts.down(self.paths, log=QUIET)
        made = lab_hosts.up(self.paths, hosts, log=QUIET)
        name = f"lab-{hosts}-{f'cluster{cluster}' if cluster else groups}.yml"
        return inventory_file.write_lab_inventory(self.paths, made, self.work / name, groups, cluster=cluster)

    def down(self) -> None:
        lab_hosts.down(self.paths, log=QUIET)


def deploy(inventory: Path, artifacts: Path):
    seconds, report = timed(lambda: cli.deploy(str(inventory), artifact_dir=str(artifacts), say=QUIET))
    if not report.ok:
        raise SystemExit(f"deploy of {inventory} failed: {[o.error for o in report.outcomes if o.error]}")
    return seconds, report


def median_no_op(inventory: Path, artifacts: Path, runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        seconds, report = deploy(inventory, artifacts)
        if report.changed:
            raise SystemExit(f"a no-op re-run of {inventory} changed {report.changed} thing(s)")
        times.append(seconds)
    return statistics.median(times), times


def median_verify(inventory: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        seconds, ok = timed(lambda: cli.verify(str(inventory), say=QUIET))
        if not ok:
            raise SystemExit(f"verify of {inventory} failed")
        times.append(seconds)
    return statistics.median(times)


def round_trips(inventory: Path, artifacts: Path) -> dict:
    """SSH round trips per host in one no-op: one connect plus each command sent."""
    counts: dict[str, int] = {}
    original = remote.Remote.run

    def counting(self, command, stdin=None, timeout=None):
        counts[self.name] = counts.get(self.name, 0) + 1
        return original(self, command, stdin=stdin, timeout=timeout)
    remote.Remote.run = counting
    try:
        deploy(inventory, artifacts)
    finally:
        remote.Remote.run = original
    per_host = [count + 1 for count in counts.values()]
    return {"mean": round(statistics.mean(per_host), 1), "max": max(per_host), "min": min(per_host)}


_MEASURE_RSS = """
import resource, sys
from invoke.main import program
try:
    program.run(["invoke", *sys.argv[1:]])
except SystemExit:
    pass
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_mb(inventory: Path, artifacts: Path) -> float:
    """The CLI's own process for one no-op deploy (imports included), as a user runs it; measured
    inside that process (RUSAGE_CHILDREN would report the largest child ever, e.g. a compiler)."""
    result = subprocess.run([sys.executable, "-c", _MEASURE_RSS, "deploy", "--inventory", str(inventory),
                             "--artifact-dir", str(artifacts)], cwd=ROOT, check=True, capture_output=True, text=True)
    return round(int(result.stdout.strip().splitlines()[-1]) / 1024, 1)


TARGETS = {   # figure → (target, what it is compared with)
    "fresh_ratio": (1.15, "× the local make"),
    "fresh_from_cache_s": (5.0, "s"),
    "no_op_3_s": (0.5, "s"),
    "no_op_30x10_ratio": (1.3, "× the 3-host no-op"),
    "no_op_30x1_ratio": (2.0, "× the 3-host no-op"),
    "verify_30_s": (1.5, "s"),
    "peak_rss_30_mb": (100, "MB"),
    "fresh_cluster_6_s": (10.0, "s"),
    "no_op_cluster_6_s": (0.5, "s"),
}


def cluster_figures(lab: Lab, artifacts: Path, runs: int, figures: dict) -> None:
    """A 6-host Redis Cluster (3 shards): a fresh deploy from the warm cache (median of 2; one
    untimed deploy first fills the cache if it is cold), the no-op re-run and verify."""
    deploy(lab.up(6, cluster=3), artifacts)
    fresh = []
    for _ in range(2):
        inventory = lab.up(6, cluster=3)
        fresh.append(deploy(inventory, artifacts)[0])
    figures["fresh_cluster_6_s"] = round(statistics.median(fresh), 2)
    figures["no_op_cluster_6_s"] = round(median_no_op(inventory, artifacts, runs)[0], 3)
    figures["verify_cluster_6_s"] = round(median_verify(inventory, runs), 3)


THREE_SHARDS = [{"master": f"lab{index}", "replicas": [f"lab{index + 3}"]} for index in (1, 2, 3)]
FOURTH_SHARD = {"master": "lab7", "replicas": ["lab8"]}
RESHAPE_KEYS = 200_000
MOVED = re.compile(r"cluster: moved (\d+) slot\(s\) with (\d+) key\(s\) in ([\d.]+)s")


def reshape_figures(lab: Lab, artifacts: Path, figures: dict) -> None:
    """A 3-shard cluster on 6 of 8 hosts holding RESHAPE_KEYS keys of 100 bytes: a fourth shard
    added (lab7, lab8), then taken out again (state: absent). Each row: the whole deploy, the
    slots and keys moved, and the keys/s of the moves themselves (deploy's own figure)."""
    lab_hosts.down(lab.paths, log=QUIET)
    made = lab_hosts.up(lab.paths, 8, log=QUIET)
    base = inventory_file.write_cluster_variant(lab.paths, made, lab.work / "three.yml", THREE_SHARDS)
    deploy(base, artifacts)
    loaded = inventory.load(base)
    with netns.joined(lab_hosts.BRIDGE_NAMESPACE):
        admin = loaded.acl.admin
        client = RedisCluster(host=loaded.host("lab1").data_address, port=6379, username=admin.name,
                              password=admin.password.value)
        try:
            value = b"v" * 100
            for start in range(0, RESHAPE_KEYS, 10_000):
                pipeline = client.pipeline()
                for index in range(start, start + 10_000):
                    pipeline.set(f"key:{index}", value)
                pipeline.execute()
        finally:
            client.close()
    for name, shards, absent in (("add", THREE_SHARDS + [FOURTH_SHARD], ()), ("remove", THREE_SHARDS, ("lab7", "lab8"))):
        path = inventory_file.write_cluster_variant(lab.paths, made, lab.work / f"{name}.yml", shards, absent)
        lines: list[str] = []
        seconds, report = timed(lambda: cli.deploy(str(path), artifact_dir=str(artifacts), say=lines.append))
        if not report.ok:
            raise SystemExit(f"the {name}-shard deploy failed: {[o.error for o in report.outcomes if o.error]}")
        moved = next(MOVED.search(line) for line in lines if MOVED.search(line))
        slots, keys, move_seconds = int(moved.group(1)), int(moved.group(2)), float(moved.group(3))
        figures[f"{name}_shard_200k_s"] = round(seconds, 2)
        figures[f"{name}_shard_slots"] = slots
        figures[f"{name}_shard_keys"] = keys
        figures[f"{name}_shard_keys_per_s"] = round(keys / move_seconds) if move_seconds else 0


def all_figures(lab: Lab, artifacts: Path, arguments, figures: dict) -> None:
    """Every row but the cluster-only run's."""
    paths = lab.paths
    tarball = golden.fetch_redis_source(paths, log=QUIET)
    if not arguments.quick:
        print("reference local make -j2 …", flush=True)
        figures["reference_make_s"] = round(reference_make(tarball), 1)
        inventory = lab.up(3)
        print("fresh deploy, empty artifact cache …", flush=True)
        figures["fresh_empty_cache_s"] = round(deploy(inventory, artifacts)[0], 1)
        figures["fresh_ratio"] = round(figures["fresh_empty_cache_s"] / figures["reference_make_s"], 3)
    fresh = []
    for _ in range(3):
        inventory = lab.up(3)
        fresh.append(deploy(inventory, artifacts)[0])
    figures["fresh_from_cache_s"] = round(statistics.median(fresh), 2)
    print("no-op and verify, 3 hosts …", flush=True)
    figures["no_op_3_s"] = round(median_no_op(inventory, artifacts, arguments.runs)[0], 3)
    figures["verify_3_s"] = round(median_verify(inventory, arguments.runs), 3)
    figures["round_trips_3"] = round_trips(inventory, artifacts)
    for hosts, groups in ((10, 1), (30, 1), (30, 10)):
        print(f"{hosts} hosts as {groups} group(s) …", flush=True)
        inventory = lab.up(hosts, groups)
        figures[f"fresh_from_cache_{hosts}x{groups}_s"] = round(deploy(inventory, artifacts)[0], 1)
        key = f"no_op_{hosts}x{groups}"
        figures[f"{key}_s"] = round(median_no_op(inventory, artifacts, arguments.runs)[0], 3)
        figures[f"{key}_ratio"] = round(figures[f"{key}_s"] / figures["no_op_3_s"], 2)
        if (hosts, groups) == (30, 10):
            figures["verify_30_s"] = round(median_verify(inventory, arguments.runs), 3)
            figures["round_trips_30"] = round_trips(inventory, artifacts)
            figures["peak_rss_30_mb"] = peak_rss_mb(inventory, artifacts)
    print("Redis Cluster, 6 hosts, 3 shards …", flush=True)
    cluster_figures(lab, artifacts, arguments.runs, figures)
    print("Redis Cluster: a shard added to and taken out of 3 holding 200,000 keys …", flush=True)
    reshape_figures(lab, artifacts, figures)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="skip the reference make and the compiling deploy")
    parser.add_argument("--cluster-only", action="store_true", help="only the Redis Cluster rows (6 hosts, 3 shards)")
    arguments = parser.parse_args()
    figures: dict[str, object] = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    paths = default_paths()
    golden.build_golden_tree(paths, log=QUIET)
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        lab = Lab(work)
        artifacts = work / "artifacts" if not arguments.quick else Path.home() / ".cache/redis-provision/artifacts"
        try:
            if arguments.cluster_only:
                print("Redis Cluster, 6 hosts, 3 shards …", flush=True)
                cluster_figures(lab, artifacts, arguments.runs, figures)
                print("Redis Cluster: a shard added to and taken out of 3 holding 200,000 keys …", flush=True)
                reshape_figures(lab, artifacts, figures)
            else:
                all_figures(lab, artifacts, arguments, figures)
        finally:
            lab.down()
    print_table(figures)
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = json.dumps(figures, indent=2) + "\n"
    (RESULTS / f"{figures['started'].replace(':', '')}.json").write_text(document)
    (RESULTS / ("cluster-latest.json" if arguments.cluster_only else "latest.json")).write_text(document)


def print_table(figures: dict) -> None:
    rows = [("reference: local make -j2", "reference_make_s", "s"),
            ("fresh deploy, 3 hosts, empty cache", "fresh_empty_cache_s", "s"),
            ("  ratio to the local make", "fresh_ratio", "×"),
            ("fresh deploy, 3 new hosts, warm cache", "fresh_from_cache_s", "s"),
            ("no-op re-run, 3 hosts", "no_op_3_s", "s"),
            ("no-op re-run, 10 hosts, 1 group", "no_op_10x1_s", "s"),
            ("no-op re-run, 30 hosts, 1 group", "no_op_30x1_s", "s"),
            ("  ratio to 3 hosts", "no_op_30x1_ratio", "×"),
            ("no-op re-run, 30 hosts, 10 groups", "no_op_30x10_s", "s"),
            ("  ratio to 3 hosts", "no_op_30x10_ratio", "×"),
            ("verify, 3 hosts", "verify_3_s", "s"),
            ("verify, 30 hosts, 10 groups", "verify_30_s", "s"),
            ("controller peak RSS, 30-host no-op", "peak_rss_30_mb", "MB"),
            ("fresh Redis Cluster, 6 hosts, warm cache", "fresh_cluster_6_s", "s"),
            ("no-op re-run, 6-host cluster", "no_op_cluster_6_s", "s"),
            ("verify, 6-host cluster", "verify_cluster_6_s", "s"),
            ("add a shard to 3 holding 200,000 keys", "add_shard_200k_s", "s"),
            ("  keys moved", "add_shard_keys", ""),
            ("  keys/s of the moves", "add_shard_keys_per_s", ""),
            ("take the shard out again", "remove_shard_200k_s", "s"),
            ("  keys moved", "remove_shard_keys", ""),
            ("  keys/s of the moves", "remove_shard_keys_per_s", "")]
    print(f"\nmachine: {figures['machine']['cpus']} CPUs ({figures['machine']['cpu']}), "
          f"{figures['machine']['memory_gb']} GB, kernel {figures['machine']['kernel']}")
    print(f"{'figure':42} {'value':>9}  target")
    for label, key, unit in rows:
        if key not in figures:
            continue
        target = TARGETS.get(key)
        verdict = ""
        if target:
            verdict = f"≤ {target[0]:g} {target[1]}  {'met' if figures[key] <= target[0] else 'NOT met'}"
        print(f"{label:42} {figures[key]:>8}{unit if unit != '×' else '×':1}  {verdict}")
    for key in ("round_trips_3", "round_trips_30"):
        if key in figures:
            trips = figures[key]
            print(f"SSH round trips per host in a no-op ({key[12:]} hosts): mean {trips['mean']}, "
                  f"min {trips['min']}, max {trips['max']}")


if __name__ == "__main__":
    main()
