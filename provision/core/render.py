"""Templates to file contents, and the directives the tool owns in each file. Pure: no I/O
except reading the templates."""
from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass

import jinja2

from provision.core import confparse
from provision.base import defaults, directives, quorum
from provision.core.confparse import Directive
from provision.inventory import Group, Host, password_hash
from provision.core.plan import ClusterNodePlan, HostPlan, NodePlan, Plan, cluster_redis, node_redis

RC_LOCAL_BEGIN = "# BEGIN redis-provision"
RC_LOCAL_END = "# END redis-provision"


_environment = jinja2.Environment(loader=jinja2.PackageLoader("provision", "templates"), trim_blocks=True,
                                  lstrip_blocks=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                  autoescape=False)

_environment.filters["sh"] = lambda value: shlex.quote(str(value))


def quote_around_port(path: str) -> str:
    """A Layout path made for the shell's "$port" (the start guard serves any port): every
    other piece quoted."""
    return '"$port"'.join(shlex.quote(piece) if piece else "" for piece in path.split("$port"))


_environment.filters["sh_port"] = quote_around_port


def _render(template: str, **values) -> str:
    return _environment.get_template(template).render(**values)


#: What one sentinel sends another (redis/src/sentinel.c: sentinelSendPing, sentinelSendHello,
#: sentinelSetClientName, sentinelAskMasterStateToOtherSentinels); AUTH needs no permission.
#: the replica-priority a node's keeper gives it once it has synced (Redis's default); until then,
#: and while it is master, it is 0: Sentinel never promotes it (start-redis.sh.j2, the fence)
PROMOTABLE_PRIORITY = 100
SENTINEL_PEER_RULES = "+ping +publish +client|setname +sentinel|is-master-down-by-addr"


@dataclass(frozen=True)
class Monitor:
    group: Group
    master_address: str


@dataclass(frozen=True)
class AclEntry:
    name: str
    password_hash: str
    rules: str


def tcp_backlog(plan: Plan) -> int:
    """Redis warns (and the kernel silently caps) when tcp-backlog exceeds somaxconn."""
    somaxconn = dict(plan.inventory.system.sysctl).get("net.core.somaxconn", 511)
    return min(511, somaxconn)


def redis_conf(plan: Plan, node: NodePlan, replicaof: Host | None, systemd: bool = False) -> str:
    """The whole redis.conf, for a node whose file does not exist yet. `systemd`: the host runs it
    as a unit (daemonize no, supervised systemd: in the file, since Redis writes command-line
    overrides back into it at its next CONFIG REWRITE)."""
    inventory = plan.inventory
    group = node.group
    return _render("redis.conf.j2", label=node.label, group_name=group.name, cluster=None, host=node.host,
                   port=group.port, layout=plan.layout, acl=inventory.acl, redis=node_redis(inventory, node),
                   tcp_backlog=tcp_backlog(plan), replicaof=replicaof, systemd=systemd,
                   min_replicas_to_write=group.min_replicas_to_write, min_replicas_max_lag=group.min_replicas_max_lag,
                   replica_count=len(group.replicas))


def cluster_redis_conf(plan: Plan, node: ClusterNodePlan, systemd: bool = False) -> str:
    """The whole redis.conf of a cluster node whose file does not exist yet: no replicaof (the
    cluster attaches replicas itself, CLUSTER REPLICATE), and nodes-<port>.conf named, never written."""
    inventory, cluster = plan.inventory, node.cluster
    return _render("redis.conf.j2", label=node.label, shard_name=node.shard.name, cluster=cluster, host=node.host,
                   port=cluster.port, cluster_file=plan.layout.cluster_file(cluster.port), layout=plan.layout,
                   acl=inventory.acl, redis=cluster_redis(inventory, node), tcp_backlog=tcp_backlog(plan),
                   replicaof=None, systemd=systemd, min_replicas_to_write=cluster.min_replicas_to_write,
                   min_replicas_max_lag=cluster.min_replicas_max_lag, replica_count=len(node.shard.replicas))


def cluster_owned_directives(plan: Plan, node: ClusterNodePlan, systemd: bool = False) -> list[Directive]:
    return _tool_owned(cluster_redis_conf(plan, node, systemd=systemd))


def cluster_start_line(layout, port: int, redis_user: str = defaults.REDIS_USER) -> str:
    """How a cluster node starts where systemd does not run it: at boot (rc.local) and by a run.
    No start guard: the cluster itself decides what the node is (its nodes-<port>.conf)."""
    return (f"umask 0027; runuser -u {shlex.quote(redis_user)} -- {shlex.quote(layout.binary('redis-server'))} "
            f"{shlex.quote(layout.redis_conf(port))}")


def redis_owned_directives(plan: Plan, node: NodePlan, systemd: bool = False) -> list[Directive]:
    return _tool_owned(redis_conf(plan, node, replicaof=None, systemd=systemd))


def _tool_owned(text: str) -> list[Directive]:
    """A rendered redis.conf's directives but those Redis rewrites at run time."""
    return [directive for _, directive in confparse.parse(text) if not directives.redis_runtime_owned(directive.key)]


def sentinel_id(plan: Plan, host: Host) -> str:
    """The run id a sentinel this tool creates starts with (`sentinel myid`): derived from its
    address, so the other new sentinels of the same run can name it before it has said hello."""
    return hashlib.sha1(f"redis-provision sentinel {host.data_address}:{plan.inventory.redis.sentinel_port}"
                        .encode()).hexdigest()


def sentinel_conf(plan: Plan, host: Host, master_addresses: dict[str, str], new_peers: tuple[Host, ...] = (),
                  systemd: bool = False) -> str:
    """The whole sentinel.conf, for a sentinel whose file does not exist yet.
    master_addresses: group name → data address of the group's CURRENT master. new_peers: the
    other sentinels created in the same run; each is written as a known sentinel with its id,
    so the set is complete at start instead of after hello messages (every 2 s). Sentinels that
    already run keep their own ids and are found by hello, as before."""
    monitors = [Monitor(group, master_addresses[group.name]) for group in plan.inventory.groups]
    peers = [(peer.data_address, sentinel_id(plan, peer)) for peer in new_peers if peer.name != host.name]
    acl = plan.inventory.acl
    return _render("sentinel.conf.j2", host=host, redis=plan.inventory.redis, layout=plan.layout,
                   acl=acl, monitors=monitors, admin_hash=password_hash(acl.admin.password.value),
                   sentinel_hash=password_hash(acl.sentinel.password.value), peer_rules=SENTINEL_PEER_RULES,
                   myid=sentinel_id(plan, host), peers=peers, systemd=systemd)


def sentinel_owned_directives(plan: Plan, host: Host, systemd: bool = False) -> list[Directive]:
    """Sentinel settings the tool owns. The monitor line's address and port are Sentinel's
    (they follow failovers); only its quorum is the tool's."""
    placeholder = {group.name: "0.0.0.0" for group in plan.inventory.groups}
    owned = []
    for _, directive in confparse.parse(sentinel_conf(plan, host, placeholder, systemd=systemd)):
        if directive.key[:2] == ("sentinel", "monitor"):
            directive = Directive(key=("sentinel", "quorum", directive.key[2]), values=(directive.values[2],))
        elif getattr(directives.sentinel_info(directive.key), "owner", None) == "runtime":
            continue      # myid, known sentinels: written at creation, Sentinel's afterwards
        owned.append(directive)
    return owned


def sentinel_current_settings(text: str) -> dict[tuple[str, ...], list[tuple[str, ...]]]:
    """A running sentinel's file as the owned keys see it (quorum taken out of its monitor line)."""
    table = confparse.values_by_key(text)
    for key, lines in list(table.items()):
        if key[:2] == ("sentinel", "monitor") and lines and len(lines[0]) >= 3:
            table[("sentinel", "quorum", key[2])] = [(lines[0][2],)]
    return table


def acl_file(plan: Plan) -> str:
    entries = [AclEntry(user.name, password_hash(user.password.value), user.rules)
               for user in plan.inventory.acl.all_users]
    return _render("users.acl.j2", users=entries)


def start_script(plan: Plan, host_plan: HostPlan, redis_user: str = defaults.REDIS_USER) -> str:
    """The host's start guard (provision/templates/start-redis.sh.j2): no secret in it."""
    inventory = plan.inventory
    others = {node.port: [inventory.host(name).data_address for name in node.group.members
                          if name != host_plan.host.name] for node in host_plan.nodes}
    return _render("start-redis.sh.j2", host=host_plan.host, nodes=host_plan.nodes, layout=plan.layout,
                   sentinel_port=inventory.redis.sentinel_port, boot_dir=plan.layout.boot_dir, others=others,
                   stall_kill_after={node.port: defaults.stall_kill_after(node.group.down_after_milliseconds)
                                     for node in host_plan.nodes},
                   promotable_priority=PROMOTABLE_PRIORITY, redis_user=redis_user,
                   sentinel_info_period=defaults.SENTINEL_INFO_PERIOD_MS,
                   sentinel_addresses=[inventory.host(name).data_address for name in inventory.sentinels],
                   sentinel_majority=quorum.majority(len(inventory.sentinels)),
                   admin_user=inventory.acl.admin.name, sentinel_user=inventory.acl.sentinel.name,
                   auth_file=plan.layout.boot_auth_file)


def boot_auth(plan: Plan) -> str:
    """The password start-redis logs in to the sentinels with (root-only file)."""
    return plan.inventory.acl.admin.password.value + "\n"


def sysctl_file(plan: Plan) -> str:
    return _render("sysctl.conf.j2", sysctl=plan.inventory.system.sysctl)


def sentinel_start_line(layout, redis_user: str = defaults.REDIS_USER) -> str:
    """How a sentinel starts where systemd does not run it: at boot (rc.local) and by a run."""
    return (f"runuser -u {shlex.quote(redis_user)} -- {shlex.quote(layout.binary('redis-sentinel'))} "
            f"{shlex.quote(layout.sentinel_conf)}")


def rc_local_block(plan: Plan, host_plan: HostPlan, systemd: bool = False) -> str:
    """On a systemd host the units start Redis; the block keeps only the THP lines."""
    return _render("rc.local.block.j2", thp=plan.inventory.system.transparent_hugepage, layout=plan.layout,
                   ports=[] if systemd else [node.port for node in host_plan.nodes],
                   sentinel_start=sentinel_start_line(plan.layout) if host_plan.runs_sentinel and not systemd else "",
                   cluster_start=cluster_start_line(plan.layout, host_plan.cluster_node.port)
                   if host_plan.cluster_node is not None and not systemd else "",
                   systemd=systemd)


THP_UNIT = "redis-provision-thp.service"
SENTINEL_UNIT = "redis-sentinel.service"


def server_unit_name(port: int) -> str:
    return f"redis-{port}.service"


def _writable(plan: Plan) -> list[str]:
    layout = plan.layout
    return [layout.conf_dir, layout.data_dir, layout.log_dir, layout.run_dir]


def unit_files(plan: Plan, host_plan: HostPlan) -> dict[str, str]:
    """unit name → text, for a host where systemd is PID 1."""
    layout = plan.layout
    units = {THP_UNIT: _render("redis-provision-thp.service.j2", thp=plan.inventory.system.transparent_hugepage)}
    for node in host_plan.nodes:
        units[server_unit_name(node.port)] = _render(
            "redis-server.service.j2", host=host_plan.host, port=node.port, group=node.group.name,
            start_script=layout.start_script, server=layout.binary("redis-server"), conf=layout.redis_conf(node.port),
            writable=_writable(plan), guarded=True)
    cluster_node = host_plan.cluster_node
    if cluster_node is not None:
        units[server_unit_name(cluster_node.port)] = _render(
            "redis-server.service.j2", host=host_plan.host, port=cluster_node.port,
            group=None, shard=cluster_node.shard.name, start_script=layout.start_script,
            server=layout.binary("redis-server"), conf=layout.redis_conf(cluster_node.port),
            writable=_writable(plan), guarded=False)
    if host_plan.runs_sentinel:
        units[SENTINEL_UNIT] = _render("redis-sentinel.service.j2", host=host_plan.host,
                                       sentinel=layout.binary("redis-sentinel"), conf=layout.sentinel_conf,
                                       writable=_writable(plan))
    return units


def _block_span(lines: list[str]) -> tuple[int, int] | None:
    """Indexes of the tool's BEGIN and END lines in rc.local, when both are there."""
    stripped = [line.strip() for line in lines]
    if RC_LOCAL_BEGIN in stripped and RC_LOCAL_END in stripped:
        return stripped.index(RC_LOCAL_BEGIN), stripped.index(RC_LOCAL_END)
    return None


def with_rc_local_block(current: str | None, block: str) -> str:
    """/etc/rc.local with the tool's block in place (replacing an older one), other lines kept,
    and before any `exit 0` so that it runs."""
    if not current or not current.strip():
        return "#!/bin/sh\n" + block + "exit 0\n"
    lines = current.splitlines(keepends=True)
    span = _block_span(lines)
    if span:
        return "".join(lines[:span[0]]) + block + "".join(lines[span[1] + 1:])
    exit_at = next((i for i, line in enumerate(lines) if line.strip() == "exit 0"), len(lines))
    before = "".join(lines[:exit_at])
    if before and not before.endswith("\n"):
        before += "\n"
    return before + block + "".join(lines[exit_at:])


def without_rc_local_block(current: str) -> str:
    """/etc/rc.local with the tool's block taken out (a retired host), other lines kept."""
    lines = current.splitlines(keepends=True)
    span = _block_span(lines)
    if span is None:
        return current
    return "".join(lines[:span[0]]) + "".join(lines[span[1] + 1:])
