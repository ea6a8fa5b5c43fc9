"""Where the project keeps generated files, and how it writes them: atomically (readers see the old file or the new
one, never half), with the permissions the user's umask gives (teams share models), and as strict JSON."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common.errors import NoSpaceError, UserError

# A full disk (ENOSPC), a file over the process's size limit (EFBIG, `ulimit -f`) and a full quota (EDQUOT)
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


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


def no_space_reason(err: BaseException) -> str | None:
    """Why `err` (or an error it was raised from) is a full disk, file-size limit or quota, or None when it is not.
    Libraries that write files themselves (safetensors, onnx, matplotlib) may wrap the OSError or keep only its
    text, so the text is read too."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in NO_SPACE_ERRNOS:
            return os.strerror(current.errno)
        text = str(current)
        reason = next((os.strerror(e) for e in NO_SPACE_ERRNOS if os.strerror(e) in text), None)
        if reason:
            return reason
        current = current.__cause__ or current.__context__
    return None


def as_user_error(err: Exception) -> UserError | None:
    """`err` as the one-line error the CLI prints: itself when it is a UserError, a NoSpaceError (naming the file
    when the OSError does) when it is a full disk that no stage caught, None when it is a bug."""
    if isinstance(err, UserError):
        return err
    reason = no_space_reason(err)
    return NoSpaceError(getattr(err, "filename", None), reason) if reason else None


@contextlib.contextmanager
def no_space_named(path: Path) -> Iterator[None]:
    """Turns a full disk, file-size limit or quota met inside the block into a NoSpaceError naming `path`."""
    try:
        yield
    except NoSpaceError:
        raise
    except Exception as err:
        reason = no_space_reason(err)
        if reason is None:
            raise
        raise NoSpaceError(path, reason) from err


@contextlib.contextmanager
def staged_file(path: Path, suffix: str = "") -> Iterator[Path]:
    """A temporary name beside `path` for the block to write; moved into place (with the permissions the umask
    gives) when the block succeeds, removed when it fails. Readers see the old file or the new one, never half, and
    a failure leaves no temporary file; a full disk ends in a NoSpaceError naming `path`. `suffix`: for writers that
    choose the format from the name (".npy", ".png"). Files staged together in nested blocks (or an ExitStack) are
    all written before any is moved into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        with no_space_named(path):
            yield tmp
            if tmp.exists():  # a block that removed its temporary file had nothing to write
                share_like_umask(tmp)
                os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Writes `text` so that readers see the old file or the new one, never half of it."""
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes `data` so that readers see the old file or the new one, never half of it."""
    with staged_file(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, strict_json(data) + "\n")


def append_json_line(path: Path, record: dict[str, Any]) -> None:
    """Appends one JSON line with a single write on an O_APPEND descriptor, so a line is never interleaved with
    another writer's; a kill can still tear the last line, which readers skip (see read_json_lines)."""
    line = (strict_json(record, indent=None) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    size = os.fstat(fd).st_size
    try:
        with no_space_named(path):
            if os.write(fd, line) != len(line):  # a short write: the disk filled up mid-line
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    except BaseException:
        os.ftruncate(fd, size)  # no torn line in the middle of the file once space is freed
        raise
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


@contextlib.contextmanager
def new_folder(path: Path, what: str) -> Iterator[Path]:
    """writable_dir for a block that fills the folder: if the block fails, a folder it created is removed again
    when the block left it empty (its files are written with staged_file, which cleans up after itself)."""
    existed = Path(path).exists()
    folder = writable_dir(path, what)
    try:
        yield folder
    except BaseException:
        if not existed:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty
        raise


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
