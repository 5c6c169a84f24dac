"""Entering a Linux network namespace from Python.

Why: the local lab's hosts hang off a bridge inside their own network namespace, so nothing is
added to (or routed from) the machine's root namespace; when the lab is down, an address of it
simply does not exist instead of leaking out through the default route. A controller that talks
to those hosts (SSH, redis-py following Sentinel's answers) joins that namespace. setns() on a
thread affects that thread only, but every thread it starts later inherits it, so joining on the
main thread before any pool or client thread exists puts the whole controller in the namespace.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import threading

from provision.base.errors import ProvisionError

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(ProvisionError):
    pass


def namespace_exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_RUN_DIR, name))


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetnsError(f"setns({path}) failed: {os.strerror(err)}")
    finally:
        os.close(fd)


def _enter(name: str) -> None:
    """Move the calling thread (and threads it starts later) into network namespace `name`."""
    path = os.path.join(NETNS_RUN_DIR, name)
    if not os.path.exists(path):
        raise NetnsError(
            f"network namespace {name!r} does not exist ({path} missing); "
            "is the lab up? (invoke lab.up)")
    _setns(path)


@contextlib.contextmanager
def joined(name: str | None):
    """The calling thread inside network namespace `name` for the block, and back in its own
    namespace after it (so a deleted lab namespace is not kept alive by this process). Enter it
    on the main thread before any pool or client thread starts: they inherit it. None, or the
    namespace the thread is already in, changes nothing."""
    if not name or current_is(name):
        yield
        return
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _enter(name)
        try:
            yield
        finally:
            if _libc.setns(original, CLONE_NEWNET) != 0:
                raise NetnsError(f"setns back to the original namespace failed: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(original)


def current_is(name: str) -> bool:
    """True when the calling thread already lives in namespace `name`."""
    path = os.path.join(NETNS_RUN_DIR, name)
    try:
        target = os.stat(path)
        mine = os.stat("/proc/thread-self/ns/net")
    except FileNotFoundError:
        return False
    return (target.st_dev, target.st_ino) == (mine.st_dev, mine.st_ino)


def call_in(name: str, function, *args, **kwargs):
    """Run function in a short-lived thread inside namespace `name`; return its result.

    For one-off probes (is a lab host's sshd up yet?) without moving the caller.
    """
    outcome: dict = {}

    def runner():
        try:
            _enter(name)
            outcome["value"] = function(*args, **kwargs)
        except BaseException as error:  # handed back to the caller below
            outcome["error"] = error

    thread = threading.Thread(target=runner, daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
