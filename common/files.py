"""Where the project keeps generated files, and how it writes them: atomically (readers see the old file or the new
one, never half), with the permissions the user's umask gives (teams share models), and as strict JSON."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from common.errors import UserError


def read_text_file(path: Path, what: str) -> str:
    """A user's text file (class names, templates), UTF-8 with or without a byte-order mark; UserError otherwise."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError(f"{what} {path} is not UTF-8 text ({err.reason} at byte {err.start})") from err
    except OSError as err:
        raise UserError(f"cannot read {what} {path}: {err.strerror or err}") from err


def cache_root() -> Path:
    """Where generated data lives (the built-in benchmark, calibration tensors): $PROREG_CACHE, else
    ~/.cache/proreg-clip."""
    return Path(os.environ.get("PROREG_CACHE", Path.home() / ".cache" / "proreg-clip"))


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; set straight back, once, at import (before any thread starts)
    os.umask(mask)
    return mask


UMASK = _read_umask()


def share_like_umask(path: Path, directory: bool = False) -> None:
    """Gives a file or folder made by mkstemp/mkdtemp (0600/0700) the permissions a plain open/mkdir would have."""
    os.chmod(path, (0o777 if directory else 0o666) & ~UMASK)


def strict_json(data: Any, indent: int | None = 2) -> str:
    """JSON that every parser accepts: a NaN or infinity is a bug here, never written as a bare token."""
    return json.dumps(data, indent=indent, allow_nan=False)


def atomic_write_text(path: Path, text: str) -> None:
    """Writes `text` so that readers see the old file or the new one, never half of it."""
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes `data` so that readers see the old file or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        share_like_umask(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, strict_json(data) + "\n")


def append_json_line(path: Path, record: dict[str, Any]) -> None:
    """Appends one JSON line with a single write on an O_APPEND descriptor, so a line is never interleaved with
    another writer's; a kill can still tear the last line, which readers skip (see read_json_lines)."""
    line = (strict_json(record, indent=None) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file, in order; a torn last line (a write cut short by a kill) is skipped."""
    if not Path(path).exists():
        return []
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if number == len(lines):
                break
            raise UserError(f"{path} line {number} is not JSON ({err}); the file was changed by hand?") from err
    return records


def check_creatable(path: Path, what: str) -> None:
    """Without creating anything: UserError unless `path` is a writable folder or could be created as one."""
    path = Path(path)  # named as given in messages
    absolute = path.absolute()
    existing = next(p for p in (absolute, *absolute.parents) if p.exists())
    if not existing.is_dir():
        if existing == absolute:
            raise UserError(f"{what} {path} is a file, not a folder")
        raise UserError(f"cannot create {what} {path}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot create {what} {path}: {existing} is not writable")


def writable_dir(path: Path, what: str) -> Path:
    """Creates `path` (and its parents) if needed; UserError naming `what` when it is a file or cannot be written
    (check_creatable, then the mkdir, which can still fail where permission bits do not tell, as under /proc)."""
    path = Path(path)
    check_creatable(path, what)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create {what} {path}: {err.strerror or err}") from err
    return path
