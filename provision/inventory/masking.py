"""Hide every secret of an inventory in text the tool prints."""
from __future__ import annotations

import re
from typing import Callable

from provision.base import directives

from provision.inventory.model import Inventory, password_hash


def _secret_line_pattern(words: tuple[str, ...], per_group: bool) -> re.Pattern:
    """A config line (or a diff line of one) whose value is a secret: the value is group 2."""
    lead = r"\s+".join(re.escape(word) for word in words) + (r"\s+\S+" if per_group else "")
    return re.compile(rf"^([-+ ]?\s*{lead}\s+)(\S+)", re.MULTILINE | re.IGNORECASE)


def secret_masker(inventory: "Inventory") -> Callable[[str], str]:
    """Hide every secret in text the tool prints (diffs, errors, recaps): each password and its
    ACL hash wherever they appear, and the value of every secret directive in the directive table
    (masterauth, sentinel auth-pass …) whatever it holds."""
    values = []
    for user in inventory.acl.all_users:
        values += [user.password.value, password_hash(user.password.value)]
    patterns = [_secret_line_pattern(info.words, info.per_group)
                for info in (*directives.REDIS, *directives.SENTINEL) if info.secret and info.name != "user"]
    # ACL `user` lines (users.acl, sentinel.conf, ACL LIST): a >password or #hash word.
    acl_passwords = re.compile(r"(?<=\s)([>#<])(?:\S+)")

    def mask(text: str) -> str:
        for value in values:
            text = text.replace(value, "********")
        for pattern in patterns:
            text = pattern.sub(lambda found: found.group(1) + "********", text)
        return "\n".join(acl_passwords.sub(lambda found: found.group(1) + "********", line)
                         if re.match(r"[-+ ]?\s*user\s", line, re.IGNORECASE) else line
                         for line in text.split("\n"))
    return mask
