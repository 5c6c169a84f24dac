"""Parsers of what hosts and Redis answer: facts, THP, replies, sentinel listings."""
from __future__ import annotations

import pytest

from provision.facts import host as facts, rediscli, topology
from provision.facts.host import parse_thp


def test_sentinels_listing_parses_into_one_record_per_peer():
    listing = "name\nabc\nip\n10.77.0.12\nport\n26379\nflags\nsentinel\nname\ndef\nip\n10.77.0.13\nport\n" \
              "26379\nflags\nsentinel,disconnected\n"
    records = rediscli.parse_records(listing, "name")
    assert [(r["ip"], r["flags"]) for r in records] == [("10.77.0.12", "sentinel"), ("10.77.0.13", "sentinel,disconnected")]


@pytest.mark.parametrize("text, mode", [("always madvise [never]", "never"), ("[always] madvise never", "always"),
                                         ("never", "never"), ("madvise\n", "madvise")])
def test_thp_mode_parses_kernel_and_plain_forms(text, mode):
    assert parse_thp(text) == mode


def test_facts_parse_one_round_trip_output():
    output = "\n".join(["@@provision:platform", "debian|12|x86_64", "@@provision:init", "lab-init",
                        "@@provision:active_bin", "versions/7.0.15/bin", "@@provision:version",
                        "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.2.1 bits=64 build=abc",
                        "@@provision:tools", "gcc", "@@provision:package_manager", "/usr/bin/apt-get",
                        "@@provision:redis_user", "999"])
    found = facts.parse(output)
    assert found.platform == "debian-12-x86_64" and found.installed_version == "7.0.15"
    assert found.missing_build_tools == ("gcc",) and found.package_manager == "apt-get" and found.has_redis_user


def test_facts_parse_bare_host():
    output = "@@provision:platform\nrocky|9.3|aarch64\n@@provision:init\nsystemd\n@@provision:active_bin\n" \
             "@@provision:version\n@@provision:tools\n@@provision:package_manager\n/usr/bin/dnf\n@@provision:redis_user\n"
    found = facts.parse(output)
    assert found.installed_version is None and found.active_bin is None and not found.has_redis_user
    assert found.package_manager == "dnf" and found.init_system == "systemd"


def test_reply_parsers():
    assert topology.parse_master_address("10.77.0.13\n6379\n") == ("10.77.0.13", 6379)
    assert topology.parse_master_address("\n") is None
    assert topology.parse_role("slave\n10.77.0.11\n6379\nconnected\n100\n") == "slave"
    info = rediscli.parse_info("# Replication\r\nrole:slave\r\nmaster_link_status:up\r\n")
    assert info == {"role": "slave", "master_link_status": "up"}
    assert rediscli.parse_pairs("name\nmymaster\nip\n10.0.0.1\nnum-slaves\n2\n")["num-slaves"] == "2"


def test_sentinel_debug_reply_reads_with_lower_case_names():
    from provision.facts import rediscli
    reply = "INFO-PERIOD\n1000\nPING-PERIOD\n1000\n"
    assert rediscli.parse_sentinel_debug(reply) == {"info-period": "1000", "ping-period": "1000"}
