"""Atomic file writes: write a temporary file in the target's folder, then rename it into place.

A crash mid-write leaves the previous file (or none) and at worst a ``.NAME.*.tmp`` file, never
a half-written target. :func:`atomic_write_bytes` / :func:`atomic_write_text` also check what
reached the disk (flushed, ``fsync``-ed, size compared, optionally read back) before the rename,
so a short write (full disk) raises an ``OSError`` naming the file and publishes nothing.

The temporary file is created with ``O_CREAT | O_EXCL`` (a file or symlink already there is
never followed or overwritten) and mode ``0o666`` filtered by the process umask, like any file
the process creates - the umask is never changed, so other threads are not affected.
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path
from typing import Iterator, Optional

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)


def create_exclusive(path: str | os.PathLike, mode: int = 0o666) -> int:
    """Create ``path`` (it must not exist: a file or symlink there raises ``FileExistsError``);
    returns a write-only descriptor. The umask applies to ``mode``."""
    return os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_BINARY, mode)


def temp_beside(path: str | os.PathLike, suffix: str = "") -> tuple[int, str]:
    """A new, exclusively created ``.NAME.<random>.tmp<suffix>`` in the folder of ``path``."""
    p = Path(path)
    for _ in range(100):
        tmp = p.parent / f".{p.name}.{secrets.token_hex(4)}.tmp{suffix}"
        try:
            return create_exclusive(tmp), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(p.parent))


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename in ``folder`` durable (best effort: some systems cannot open folders)."""
    with contextlib.suppress(OSError):
        fd = os.open(os.fspath(folder), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(p, suffix)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(p.parent)


def write_verified(tmp: str | os.PathLike, data: bytes, read_back: bool = False) -> None:
    """Write ``data`` to the (existing) file ``tmp``, ``fsync`` it and check the size on disk
    (and, with ``read_back``, the bytes); a short or failed write raises ``OSError`` naming it."""
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
        size = os.fstat(fh.fileno()).st_size
    if size != len(data):
        raise OSError(errno.EIO, f"short write ({size} of {len(data)} bytes reached the disk)", str(tmp))
    if read_back:
        with open(tmp, "rb") as fh:
            if fh.read() != data:
                raise OSError(errno.EIO, "the bytes read back differ from those written", str(tmp))


def named(exc: OSError, path: str | os.PathLike, note: str = "") -> OSError:
    """``exc`` with ``path`` as its file name when it has none (a failed ``write`` names no file),
    ``note`` appended to its reason."""
    if exc.filename is not None and not note:
        return exc
    out = OSError(exc.errno, (exc.strerror or str(exc)) + note, str(path) if exc.filename is None else exc.filename)
    out.__cause__ = exc
    return out


def atomic_write_bytes(path: str | os.PathLike, data: bytes, read_back: bool = False) -> None:
    """Write ``data`` to ``path`` atomically, checked on disk (see :func:`write_verified`); a
    failure raises an ``OSError`` naming ``path`` and leaves the previous file as it was."""
    try:
        with atomic_path(path) as tmp:
            write_verified(tmp, bytes(data), read_back=read_back)
    except OSError as exc:
        raise named(exc, path) from exc.__cause__


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError as exc:   # a file name that is not valid UTF-8 reached the text (surrogates)
        bad = exc.object[max(0, exc.start - 30):exc.end + 10].encode(encoding, "backslashreplace").decode(encoding)
        raise ValueError(f"{path}: cannot be written as {encoding}: {bad!r} holds characters that are not "
                         f"{encoding} (a file name in another encoding? rename the file)") from None
    atomic_write_bytes(path, data)


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early (``OSError`` naming the folder) when a file cannot be created at ``path``:
    creates the folder if needed, then a temporary file there, and removes it."""
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, expected a file name", str(p))
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(p)
    os.close(fd)
    os.unlink(tmp)
    return p


def keep_aside(path: str | os.PathLike, before_suffix: bool = False) -> Optional[Path]:
    """Rename an existing ``path`` (file or symlink, not followed) to the first free
    ``path.1``, ``path.2``... (``OUT.part.1.mp4`` with ``before_suffix``, so the kept file keeps
    its extension); returns the new name, or None when nothing was there."""
    p = Path(path)
    if not os.path.lexists(p):
        return None
    for k in range(1, 10000):
        cand = p.with_name(f"{p.stem}.{k}{p.suffix}" if before_suffix else f"{p.name}.{k}")
        if not os.path.lexists(cand):
            os.rename(p, cand)
            return cand
    raise FileExistsError(errno.EEXIST, "too many kept copies", str(p))
