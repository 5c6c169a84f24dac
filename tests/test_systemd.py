"""Where systemd is PID 1, Redis and Sentinel run as units the tool writes; the pure parts."""
from __future__ import annotations

from provision.core import render
from provision.steps import services


def test_units_are_notify_services_as_redis_hardened_and_after_the_thp_unit(lab_like_plan):
    units = render.unit_files(lab_like_plan, lab_like_plan.host_plan("lab1"))
    assert set(units) == {"redis-provision-thp.service", "redis-6379.service", "redis-sentinel.service"}
    server = units["redis-6379.service"]
    for line in ("Type=notify", "User=redis", "LimitNOFILE=65535", "NoNewPrivileges=yes", "ProtectSystem=full",
                 "ExecStartPre=+/app/redis/boot/start-redis 6379 --prepare",
                 "ExecStart=/app/redis/bin/redis-server /app/redis/conf/redis-6379.conf",
                 "Restart=on-failure",
                 "ReadWritePaths=/app/redis/conf /app/redis/data /app/redis/logs /app/redis/run"):
        assert line in server.splitlines(), line
    assert "redis-provision-thp.service" in next(line for line in server.splitlines() if line.startswith("After="))
    sentinel = units["redis-sentinel.service"]
    assert "ExecStart=/app/redis/bin/redis-sentinel /app/redis/conf/sentinel.conf" in sentinel.splitlines()
    assert "echo never > /sys/kernel/mm/transparent_hugepage/enabled" in units["redis-provision-thp.service"]


def test_on_systemd_rc_local_keeps_the_thp_lines_and_starts_nothing(lab_like_plan):
    host_plan = lab_like_plan.host_plan("lab1")
    block = render.rc_local_block(lab_like_plan, host_plan, systemd=True)
    assert "transparent_hugepage/enabled" in block and "start-redis" not in block and "redis-sentinel " not in block
    plain = render.rc_local_block(lab_like_plan, host_plan)
    assert "start-redis" in plain and "redis-sentinel" in plain


def test_on_systemd_a_start_prepares_through_the_guard_then_starts_the_unit(lab_like_plan):
    command = services.start_command_for(lab_like_plan.layout, 6379, master="10.77.0.11", systemd=True)
    assert command == ("/app/redis/boot/start-redis 6379 --prepare --mark --wait 120 --master 10.77.0.11 && "
                       "systemctl start redis-6379.service")
    assert services.start_command_for(lab_like_plan.layout, None, systemd=True) == "systemctl start redis-sentinel.service"
    assert "systemctl" not in services.start_command_for(lab_like_plan.layout, 6379)


def test_on_systemd_the_files_say_supervised_and_not_daemonized(lab_like_plan):
    """In the files, not on the command line: Redis writes command-line overrides back at its
    next CONFIG REWRITE, and the next deploy then saw a changed daemonize and restarted."""
    node = lab_like_plan.host_plan("lab1").nodes[0]
    host = lab_like_plan.inventory.host("lab1")
    for text in (render.redis_conf(lab_like_plan, node, None, systemd=True),
                 render.sentinel_conf(lab_like_plan, host, {"mymaster": "10.77.0.11"}, systemd=True)):
        assert "daemonize no" in text.splitlines() and "supervised systemd" in text.splitlines()
    for text in (render.redis_conf(lab_like_plan, node, None),
                 render.sentinel_conf(lab_like_plan, host, {"mymaster": "10.77.0.11"})):
        assert "daemonize yes" in text.splitlines() and "supervised" not in text
