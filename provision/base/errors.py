"""One small hierarchy of errors, each carrying what an operator needs to act on it."""
from __future__ import annotations


class ProvisionError(Exception):
    """Base of every error the tool reports to a user."""


class UsageError(ProvisionError):
    """A flag or its value is wrong (exit 2, like an inventory error); nothing was touched."""


class Interrupted(ProvisionError):
    """Ctrl-C: the steps in flight were let finish (once) or cut off (a second Ctrl-C); exit 130."""


class InventoryError(ProvisionError):
    """The inventory is wrong. Raised before any host is touched; lists every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("inventory is invalid:\n  " + "\n  ".join(self.problems))


class HostError(ProvisionError):
    """A step failed on one host: which host, which step, which command, what it said."""

    def __init__(self, host: str, step: str, command: str, stderr: str, exit_code: int | None = None):
        self.host, self.step, self.command, self.stderr, self.exit_code = host, step, command, stderr, exit_code
        detail = stderr.strip() or "(no stderr)"
        code = f" (exit {exit_code})" if exit_code is not None else ""
        super().__init__(f"{host}: step {step!r} failed{code}\n    command: {command}\n    stderr: {detail}")
