"""Atomic file writes, stale temporary files, and the lock of a run folder.

A kill mid-write never leaves a half-written file behind: every file is written to a temporary
``.<name>.<random>.tmp`` beside it, flushed to disk, then renamed over the target. A process
killed during that window leaves the temporary file; :func:`remove_stale_temp_files` deletes
those of a run folder once its lock is held (no other process can be writing them then).
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "LOCK_FILE",
    "RunFolderLockedError",
    "atomic_save",
    "atomic_write_text",
    "check_unlocked",
    "lock_holder",
    "remove_stale_temp_files",
    "run_lock",
]

LOCK_FILE = ".lock"
"""Name of the lock file in a run folder (``flock``-ed while a process trains there)."""

_WRITE_DELAY_ENV = "METALEARN_WRITE_DELAY_S"
# Tests only: sleep this long halfway through every atomic write, so that a kill can land
# inside the write window (benchmarks/kill_fuzz.py, tests/fuzz/test_kill_resume.py).

_held: dict[Path, tuple[int, int]] = {}
"""Run folders locked by this process: resolved path -> (file descriptor, nesting depth)."""


class RunFolderLockedError(OSError):
    """Another process holds the lock of a run folder. The message names its pid."""


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}."


def _atomic_replace(path: Path, data: bytes) -> None:
    try:
        _write_replace(path, data)
    except OSError as e:
        if isinstance(e, RunFolderLockedError) or e.errno is None:
            raise
        # name the file being written, not its temporary
        raise OSError(e.errno, f"cannot write {path}: {e.strerror}") from e


def _write_replace(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_tmp_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            delay = float(os.environ.get(_WRITE_DELAY_ENV, "0") or 0)
            if delay > 0:
                f.write(data[: len(data) // 2])
                f.flush()
                time.sleep(delay)
                data = data[len(data) // 2 :]
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` ``obj`` to ``path`` through a temporary file and ``os.replace``.

    The object is serialized in memory first, so a failing write (full disk, read-only folder)
    raises the ``OSError`` of the write itself rather than a ``RuntimeError`` of torch's writer.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    _atomic_replace(Path(path), buffer.getvalue())


def atomic_write_text(text: str, path: str | os.PathLike[str]) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and ``os.replace``."""
    _atomic_replace(Path(path), text.encode())


def remove_stale_temp_files(folder: str | os.PathLike[str], names: tuple[str, ...]) -> list[Path]:
    """Delete the temporary files that killed atomic writes of ``names`` left in ``folder``.

    Call it only while holding the folder's :func:`run_lock`, so that no live write is hit.

    Returns:
        The deleted paths.
    """
    removed = []
    for name in names:
        for tmp in Path(folder).glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def lock_holder(folder: str | os.PathLike[str]) -> str | None:
    """Return the pid (as text) of the process holding ``folder``'s lock, or ``None``.

    Changes nothing on disk: a folder without a lock file is not locked.
    """
    key = Path(folder).resolve()
    if key in _held:
        return None  # this process holds it
    try:
        fd = os.open(key / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return os.read(fd, 32).decode(errors="replace").strip() or "unknown"
    finally:
        os.close(fd)
    return None


def _locked_message(folder: str | os.PathLike[str], holder: str) -> str:
    return (
        f"{folder} is in use: process {holder} is training in it (lock "
        f"{Path(folder) / LOCK_FILE}); wait for it to finish or stop it, then retry"
    )


def check_unlocked(folder: str | os.PathLike[str]) -> None:
    """Raise :class:`RunFolderLockedError` if another process holds ``folder``'s lock."""
    holder = lock_holder(folder)
    if holder is not None:
        raise RunFolderLockedError(_locked_message(folder, holder))


@contextmanager
def run_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold an exclusive ``flock`` on ``folder/.lock`` (creating the folder) while in the block.

    The lock belongs to the open file, so the kernel releases it when the process dies, even by
    ``SIGKILL``: a leftover ``.lock`` file never blocks anyone. Re-entrant within one process.

    Raises:
        RunFolderLockedError: if another process holds it; the message names that pid.
    """
    key = Path(folder).resolve()
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
        try:
            yield key / LOCK_FILE
        finally:
            _release(key)
        return
    key.mkdir(parents=True, exist_ok=True)
    fd = os.open(key / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if e.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        raise RunFolderLockedError(_locked_message(folder, holder)) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[key] = (fd, 1)
    try:
        yield key / LOCK_FILE
    finally:
        _release(key)


def _release(key: Path) -> None:
    fd, depth = _held[key]
    if depth > 1:
        _held[key] = (fd, depth - 1)
        return
    del _held[key]
    os.close(fd)  # closing the last descriptor releases the flock
