"""Every default an inventory key takes when it is left out: the one place both the inventory's
dataclasses and its readers take them from (and the README's example points to)."""
from __future__ import annotations

# hosts.<name>
SSH_USER = "root"
SSH_PORT = 22

# redis
INSTALL_DIR = "/app/redis"
REDIS_PORT = 6379
SENTINEL_PORT = 26379
MAXMEMORY = "0"
MAXMEMORY_POLICY = "noeviction"
APPENDONLY = True                      # fsync every second (Redis's appendfsync default)
SAVE = "3600 1 300 100 60 10000"

# groups.<name>
DOWN_AFTER_MILLISECONDS = 5000
FAILOVER_TIMEOUT = 60000
PARALLEL_SYNCS = 1

# cluster
CLUSTER_NODE_TIMEOUT = 5000            # as down-after: Redis's own 15000 leaves a cut-off master writable 15 s
CLUSTER_BUS_OFFSET = 10000             # Redis's: the bus listens on port + 10000 unless cluster-port says


def min_replicas_to_write(replicas) -> int:
    """A master takes a write only while a replica is connected to receive it, so a master cut
    off from its group stops accepting writes that would be lost."""
    return 1 if replicas else 0


def min_replicas_max_lag(down_after_milliseconds: int) -> int:
    """Well under down-after: the cut-off master refuses writes before a new master is elected."""
    return max(1, down_after_milliseconds // 2000)


#: The shortest down-after a group may have: a master's keeper needs about half a second (PINGs
#: 0.05 s apart, each given 0.1 s, measured 1.5-1.8 s for a 2 s down-after) to kill a frozen master before the Sentinels can promote, and
#: min-replicas-max-lag (whole seconds, at least 1) must be shorter than down-after.
MIN_DOWN_AFTER_MILLISECONDS = 1500


def stall_kill_after(down_after_milliseconds: int) -> int:
    """How long a master may not answer its keeper before the keeper kills it: short of down-after
    by the keeper's own reaction time, so no promotion can happen while it still lives."""
    return down_after_milliseconds - 500


# acl
ADMIN_USER = "admin"
REPLICATION_USER = "replicator"
SENTINEL_USER = "sentinel"

# the user Redis and Sentinel run as, owner of conf/, data/, logs/ and run/ under install_dir
REDIS_USER = "redis"

# system
#: How often a sentinel asks each replica for INFO (Sentinel's own default is 10 s, settable only
#: with SENTINEL DEBUG, Redis 7.0+, and not kept across its restarts). The replica it promotes is
#: chosen from that INFO: at 10 s it could still show a replica that had since restarted, fenced
#: and behind (its priority 0 not seen yet), or offsets from before the master died, and the
#: sentinel promoted a replica lacking acknowledged writes. At 1 s every INFO it chooses from
#: postdates the master's death (down-after is longer), so it sees the fences and final offsets.
SENTINEL_INFO_PERIOD_MS = 1000

SYSCTL = (("net.core.somaxconn", 1024), ("vm.overcommit_memory", 1), ("net.ipv4.tcp_max_syn_backlog", 1024))
TRANSPARENT_HUGEPAGE = "never"

# controller
PARALLEL = 64                   # hosts in flight at once: every host of most fleets, one wave
CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 3600.0        # seconds a single remote command may run (a compile is the longest)
KEEPALIVE = 15                  # seconds between SSH keepalives (a NAT or firewall keeps the session)
USER_SSH_CONFIG = "~/.ssh/config"
KNOWN_HOSTS = "~/.ssh/known_hosts"
HOST_KEY_CHECKING = "accept-new"       # as OpenSSH's StrictHostKeyChecking

#: verify's own keys (written, read back or acknowledged, then deleted) start with this
VERIFY_KEY_PREFIX = "__redis_provision_verify__:"
