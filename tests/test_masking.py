"""No secret in what the tool prints or puts in argv: the masker, and redis-cli's command line."""
from __future__ import annotations

from provision.core import render
from provision.facts import rediscli
from provision import inventory


def test_secret_masker_hides_passwords_and_their_hashes(lab_like_plan):
    mask = inventory.secret_masker(lab_like_plan.inventory)
    text = f"masterauth replication-password-1\nuser admin on #{render.password_hash('admin-password-1')}"
    masked = mask(text)
    assert "replication-password-1" not in masked and render.password_hash("admin-password-1") not in masked


def test_secret_masker_hides_any_value_of_a_secret_directive(lab_like_plan):
    """A password the inventory no longer knows (an old one, in a --diff) is hidden too, because
    the directive table says the line holds a secret."""
    mask = inventory.secret_masker(lab_like_plan.inventory)
    diff = "-masterauth old-pass-1\n+sentinel auth-pass mymaster old-pass-2\n sentinel sentinel-pass old-pass-3\nmaxmemory 1gb"
    masked = mask(diff)
    assert not any(f"old-pass-{n}" in masked for n in (1, 2, 3)), masked
    assert "-masterauth ********" in masked and "+sentinel auth-pass mymaster ********" in masked
    assert "maxmemory 1gb" in masked


def test_secret_masker_hides_escaped_values_and_acl_passwords_it_never_saw(lab_like_plan):
    mask = inventory.secret_masker(lab_like_plan.inventory)
    text = ('masterauth "Repl\\\\Passw0rd-xyz"\n'
            "+user bob on >an-old-password-9 ~app:* +get\n"
            "user carol on #0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef ~* +@all")
    masked = mask(text)
    assert "Passw0rd" not in masked and "an-old-password-9" not in masked and "0123456789abcdef" not in masked, masked
    assert "+user bob on >******** ~app:* +get" in masked


def test_redis_cli_command_line_never_carries_a_password(lab_like_plan):
    line = rediscli.command_line(lab_like_plan.layout, "10.0.0.1", 6379, ["PING"], lab_like_plan.inventory.acl.admin)
    assert "admin-password-1" not in line and "REDISCLI_AUTH" in line and " -a " not in line
