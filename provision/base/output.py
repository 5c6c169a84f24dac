"""Where the tool's words go: one `logging` logger, so a user picks the level (-v, -vv), adds a
log file, and gets colour only on a terminal. Callers pass already-masked text; the log file is
created 0600 anyway, because a log outlives the terminal it was meant for."""
from __future__ import annotations

import logging
import os
import re
import sys

LOGGER = logging.getLogger("provision")

#: what each -v adds: 0 progress and recap, 1 every step as it starts, 2 every remote command
LEVELS = {0: logging.INFO, 1: logging.INFO, 2: logging.DEBUG}

_COLOURS = (
    (re.compile(r"\b(FAILED|UNREACHABLE|FAIL|error)\b"), "\033[31m"),
    (re.compile(r"\b(changed=\d+|would change|started as|set replicaof)\b"), "\033[33m"),
    (re.compile(r"\b(unchanged|ok|PASS)\b"), "\033[32m"),
)
_RESET = "\033[0m"


_mask = [lambda text: text]


def mask_with(masker) -> None:
    """Every line the logger writes (the terminal, -vv's commands, the log file) and every error
    the CLI prints goes through `masker` (inventory.secret_masker) from now on."""
    _mask[0] = masker


def mask(text: str) -> str:
    return _mask[0](text)


class _MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = mask(record.getMessage()), ()
        return True


def say(message: str) -> None:
    """A line of progress or a report (INFO)."""
    ensure_configured()
    LOGGER.info(message)


def detail(message: str, *args) -> None:
    """A line only -vv (or a log file) shows (DEBUG): each command sent to a host. `args` are
    formatted only when some handler wants the line (this is on every command's path)."""
    ensure_configured()
    LOGGER.debug(message, *args)


def colourise(text: str) -> str:
    """The words an operator scans for, in colour (red failures, yellow changes, green ok)."""
    for pattern, colour in _COLOURS:
        text = pattern.sub(lambda match: f"{colour}{match.group(0)}{_RESET}", text)
    return text


class _TerminalFormatter(logging.Formatter):
    def __init__(self, colour: bool):
        super().__init__("%(message)s")
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return colourise(text) if self.colour else text


def wants_colour(stream) -> bool:
    """Colour on a terminal only, and never when NO_COLOR is set (no-color.org)."""
    return hasattr(stream, "isatty") and stream.isatty() and "NO_COLOR" not in os.environ \
        and os.environ.get("TERM") != "dumb"


class _CurrentStdout:
    """Whatever sys.stdout is when a line is written (a test harness or a caller may swap it)."""

    def write(self, text: str) -> None:
        sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def isatty(self) -> bool:
        return sys.stdout.isatty()


def configure(verbosity: int = 0, log_file: str | None = None, stream=None) -> None:
    """Route the logger to `stream` (default: the current stdout) at the level -v/-vv ask for,
    and, with `log_file`, everything down to DEBUG into that file with timestamps (appended,
    mode 0600)."""
    stream = stream or _CurrentStdout()
    for handler in list(LOGGER.handlers):
        LOGGER.removeHandler(handler)
        handler.close()
    LOGGER.propagate = False
    for existing in list(LOGGER.filters):
        LOGGER.removeFilter(existing)
    LOGGER.addFilter(_MaskingFilter())
    terminal_level = LEVELS[min(max(verbosity, 0), 2)]
    # The logger's own level is the lowest any handler takes, so a DEBUG line nobody wants is
    # dropped before a record is made.
    LOGGER.setLevel(logging.DEBUG if log_file else terminal_level)
    terminal = logging.StreamHandler(stream)
    terminal.setLevel(terminal_level)
    terminal.setFormatter(_TerminalFormatter(wants_colour(stream)))
    LOGGER.addHandler(terminal)
    if log_file:
        # Not through a link someone planted there, and 0600 even when the file was there before.
        descriptor = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        os.fchmod(descriptor, 0o600)
        file_handler = logging.StreamHandler(os.fdopen(descriptor, "a", encoding="utf-8"))
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        LOGGER.addHandler(file_handler)


def ensure_configured() -> None:
    """Library use without the CLI still prints progress (as print did)."""
    if not LOGGER.handlers:
        configure()
