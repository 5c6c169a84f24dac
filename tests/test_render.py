"""What render writes: redis.conf, users.acl, a new sentinel.conf, rc.local's block."""
from __future__ import annotations

import re


from provision.core import render


def test_replica_config_has_replicaof_and_master_auth_on_every_node(lab_like_plan):
    replica = lab_like_plan.host_plan("lab2").nodes[0]
    text = render.redis_conf(lab_like_plan, replica, lab_like_plan.inventory.host("lab1"))
    assert "replicaof 10.77.0.11 6379" in text
    master_text = render.redis_conf(lab_like_plan, lab_like_plan.host_plan("lab1").nodes[0], None)
    assert "replicaof" not in master_text.replace("`replicaof`", "")
    for config in (text, master_text):
        assert "masteruser replicator" in config and "masterauth replication-password-1" in config
        assert "bind " in config and "aclfile /app/redis/conf/users.acl" in config and "disable-thp yes" in config


def test_acl_file_disables_default_user_and_stores_only_hashes(lab_like_plan):
    text = render.acl_file(lab_like_plan)
    default = text.splitlines()[0].split()
    # Off and without any password (nobody logs in as it), but with +@all: Redis 7.0 re-checks
    # EXEC against the default user while loading the AOF (redis/redis#14541).
    assert default[:4] == ["user", "default", "off", "resetpass"] and "+@all" in default
    assert not any(word in ("on", "nopass") or word.startswith((">", "#")) for word in default)
    assert "admin-password-1" not in text
    assert "#" + render.password_hash("admin-password-1") in text
    replication = next(line for line in text.splitlines() if line.startswith("user replicator "))
    assert replication.endswith("+psync +replconf +ping")


def test_new_sentinels_start_with_their_own_ids_and_know_the_other_new_ones(lab_like_plan):
    """A sentinel created in a run gets a myid derived from its address (unique per host, 40 hex
    digits as Sentinel requires) and a known-sentinel line for every other sentinel created in
    the same run, so the set is complete at start; existing sentinels are never named."""
    hosts = [lab_like_plan.inventory.host(name) for name in ("lab1", "lab2", "lab3")]
    text = render.sentinel_conf(lab_like_plan, hosts[1], {"mymaster": "10.77.0.11"}, new_peers=(hosts[1], hosts[2]))
    ids = {host.name: render.sentinel_id(lab_like_plan, host) for host in hosts}
    assert len(set(ids.values())) == 3 and all(re.fullmatch(r"[0-9a-f]{40}", value) for value in ids.values())
    assert f"sentinel myid {ids['lab2']}" in text
    assert f"sentinel known-sentinel mymaster 10.77.0.13 26379 {ids['lab3']}" in text
    assert "known-sentinel mymaster 10.77.0.11" not in text and "known-sentinel mymaster 10.77.0.12" not in text
    assert "sentinel monitor mymaster 10.77.0.11 6379 2" in text and "sentinel auth-user mymaster sentinel" in text
    owned_keys = {directive.key[:2] for directive in render.sentinel_owned_directives(lab_like_plan, hosts[1])}
    assert ("sentinel", "myid") not in owned_keys and ("sentinel", "known-sentinel") not in owned_keys


def test_rc_local_block_is_inserted_before_exit_and_replaced_in_place(lab_like_plan):
    block = render.rc_local_block(lab_like_plan, lab_like_plan.host_plan("lab1"))
    assert "echo never > /sys/kernel/mm/transparent_hugepage/enabled" in block
    original = "#!/bin/sh -e\n/usr/local/bin/site-thing\nexit 0\n"
    merged = render.with_rc_local_block(original, block)
    assert merged.index("site-thing") < merged.index(render.RC_LOCAL_BEGIN) < merged.index("exit 0")
    again = render.with_rc_local_block(merged, block.replace("never", "madvise"))
    assert again.count(render.RC_LOCAL_BEGIN) == 1 and "echo madvise" in again and "site-thing" in again
    assert render.with_rc_local_block(None, block).startswith("#!/bin/sh\n")


def test_a_master_starts_the_replica_transfer_once_every_replica_of_its_group_is_connected(lab_like_plan):
    """repl-diskless-sync-max-replicas: not repl-diskless-sync-delay's 5 s wait per deploy."""
    node = lab_like_plan.host_plan("lab1").nodes[0]
    assert "\nrepl-diskless-sync-max-replicas 2\n" in render.redis_conf(lab_like_plan, node, None)
