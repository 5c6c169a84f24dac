"""The one poll loop: read until the answer is the wanted one or the time is up, and keep the last
answer for the message that says what was seen instead."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

Seen = TypeVar("Seen")


def poll(read: Callable[[], Seen], done: Callable[[Seen], bool], seconds: float,
         interval: float = 0.25) -> tuple[bool, Seen]:
    """(whether `done` held, the last value read). Reads at least once, however short `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        seen = read()
        if done(seen):
            return True, seen
        if time.monotonic() + interval > deadline:
            return False, seen
        time.sleep(interval)
