"""A place that fills up, for the full-disk tests: the process's file-size limit (RLIMIT_FSIZE, as `ulimit -f`).
A write past it fails with EFBIG as a full disk fails with ENOSPC, and it needs no mount, no root and no cleanup;
the project treats the two alike (common.files.NO_SPACE_ERRNOS). Also: what a folder holds, to show that earlier
files come through bit-identical, and the temporary files a failed write might leave."""

from __future__ import annotations

import contextlib
import hashlib
import resource
import signal
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_size_limit(nbytes: int) -> Iterator[None]:
    """Inside the block no file of this process can grow past `nbytes`. SIGXFSZ, which the kernel sends with EFBIG
    and which would kill the process, is ignored meanwhile (the write then fails with EFBIG, as a program sees it
    under `ulimit -f` with the signal ignored, or on a full disk)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def file_digests(root: Path) -> dict[str, str]:
    """SHA-256 of every file under `root` (relative path -> digest); __pycache__ ignored."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(root).rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def temporary_files(root: Path) -> list[str]:
    """Files and folders under `root` that look like a write's leftovers (".tmp" in the name)."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if ".tmp" in p.name)
