"""sha256 of a local file, read in blocks (source tarballs are megabytes)."""
from __future__ import annotations

import hashlib


def sha256_of_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
