"""Files written whole or not at all, and read back with errors that name the file.

Every file lsalsa writes (models, checkpoints, run steps, code caches, reports) goes through
:func:`atomic_write`: the content is written to a temporary file in the same directory, synced
to disk and renamed over the target. ``os.replace`` is atomic on one file system, so a reader,
a resumed run or a second process sees the previous file or the complete new one, never a
half-written file, and an interrupted write leaves nothing behind.

A process killed mid-write (``kill -9``, power loss) cannot remove its temporary file;
:func:`remove_temporaries` deletes those of dead processes when a directory is used again.
:func:`directory_lock` keeps two processes from working in one directory at once.

The readers raise :class:`LsalsaError` naming the file when it is missing or unreadable.
Torch files are read with ``torch.load(weights_only=True)``, which unpickles only tensors and
plain containers, so reading a file never runs code from it.
"""
from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import LsalsaError

FORMAT_VERSION = 1
"""The version of the layout of lsalsa's torch files, checked by :func:`read_torch`."""

PathLike = str | os.PathLike


# ---- writing ---------------------------------------------------------------------------------
def atomic_write(path: PathLike, write: Callable[[Path], Any]) -> Path:
    """Create ``path`` by ``write(tmp)``, which writes the complete file at the path ``tmp``.

    ``tmp`` is a fresh hidden name in ``path``'s directory (created if needed) that ends with
    ``path``'s suffix, so writers that pick the format from the name (``np.save``, ``np.savez``,
    ``savefig``) write the right one. The file is then synced and renamed over ``path``; if
    ``write`` raises (or the process is interrupted), ``tmp`` is removed and ``path`` is left as
    it was. An ``OSError`` (a full disk) names ``path``. Returns ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}{_TMP_MARK}{path.suffix}")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is None or Path(exc.filename) == tmp:  # name the file asked for, not the temporary
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_torch(obj: Any, path: PathLike) -> Path:
    """``torch.save(obj)`` to ``path``, atomically (the argument order of ``torch.save``).

    Serialised in memory, then written as bytes: torch's own file writer reports a failed
    write (a full disk) as a ``RuntimeError`` about an "unexpected pos"; a plain write raises
    the ``OSError`` that says what happened. Models and checkpoints are megabytes at most."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()))


def save_npz(path: PathLike, **arrays: Any) -> Path:
    """``np.savez(path, **arrays)``, atomically (uncompressed, as :func:`load_npz` reads it).

    Written through an open file, so that ``np.savez`` adds no ``.npz`` to another suffix."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return atomic_write(path, write)


def write_text(path: PathLike, text: str) -> Path:
    """``text`` to ``path`` in UTF-8, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: PathLike, obj: Any) -> Path:
    """``obj`` as indented JSON, atomically; numpy scalars (anything ``float()`` takes) are
    written as numbers."""
    return write_text(path, json.dumps(obj, indent=2, default=float))


_TMP_MARK = ".tmp"
_TMP_NAME = re.compile(rf"^\..+\.(\d+)-[0-9a-f]{{8}}{re.escape(_TMP_MARK)}")  # what atomic_write names a temporary
# What versions before atomic_write named theirs: the code cache and encoder files
# ``<name>.<pid>.tmp`` (``codes/<key>.npy.<pid>.tmp``), the runner's ``<name>.npz.tmp.npz`` and
# ``<name>.json.tmp``, without a pid.
_OLD_PID_NAME = re.compile(r"^.+\.(\d+)\.tmp$")
_OLD_NAME = re.compile(r"^.+\.(?:npz\.tmp\.npz|json\.tmp)$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process, or no pid at all: keep its file
        pass
    return True


def _open_files() -> set[Path] | None:
    """The files some process holds open (its ``/proc/<pid>/fd`` links); None where the system
    cannot tell (no ``/proc``). Processes whose descriptors cannot be read are skipped."""
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return None
    held = set()
    for fd_dir in proc.glob("[0-9]*/fd"):
        try:
            links = list(fd_dir.iterdir())
        except OSError:  # gone, or another user's
            continue
        for link in links:
            try:
                held.add(Path(os.readlink(link)))
            except OSError:
                continue
    return held


def remove_temporaries(directory: PathLike, *, recursive: bool = False) -> list[Path]:
    """Delete the temporary files of :func:`atomic_write` in ``directory`` whose writing
    process is gone (killed before it could clean up), and those of older versions of lsalsa
    (``<name>.<pid>.tmp`` of a dead pid; ``<name>.npz.tmp.npz`` and ``<name>.json.tmp``, which
    name no process, when no process holds them open; kept where that cannot be told);
    returns what was removed.

    A live process's temporaries are kept: it may still be writing them."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed, held = [], None
    for p in directory.rglob("*") if recursive else directory.glob("*"):
        m = _TMP_NAME.match(p.name) or _OLD_PID_NAME.match(p.name)
        if m:
            stale = not _alive(int(m.group(1)))
        elif _OLD_NAME.match(p.name):
            held = _open_files() if held is None else held
            stale = held is not None and p.resolve() not in held
        else:
            continue
        if stale and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def check_free_space(path: PathLike, n_bytes: int) -> None:
    """Raise ``OSError(ENOSPC)`` naming ``path`` when its file system has less than
    ``n_bytes`` free: checked before a file is written through a memory map, where running out
    of space mid-way kills the process with SIGBUS instead of raising."""
    directory = Path(path).parent
    free = shutil.disk_usage(directory).free
    if free < n_bytes:
        raise OSError(errno.ENOSPC, f"needs {n_bytes / 2**20:.1f} MiB, {directory} has {free / 2**20:.1f} MiB free",
                      str(path))


def reserve(path: PathLike, n_bytes: int) -> None:
    """Allocate the first ``n_bytes`` of the file ``path`` on disk now (``posix_fallocate``),
    so that later writes through a memory map cannot run out of space; ``OSError`` when the
    space is not there. A no-op where the system or file system cannot reserve space."""
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, n_bytes)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        os.close(fd)


LOCK_NAME = ".lock"


@contextmanager
def directory_lock(directory: PathLike) -> Iterator[Path]:
    """Hold ``directory/.lock`` (an exclusive ``flock``) while the block runs; a second
    process asking for it gets :class:`LsalsaError` naming the holder's pid.

    The kernel releases the lock when its holder dies, so the lock of a killed process
    (``kill -9``) never needs recovering: the file that stays behind is free."""
    directory = Path(directory)
    path = directory / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise LsalsaError(f"{directory}: cannot be written ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise LsalsaError(f"{directory}: in use by another lsalsa process (pid {holder}); wait for it to "
                              f"finish, or use another --out directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)


# ---- reading ---------------------------------------------------------------------------------
def _existing(path: PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise LsalsaError(f"{path}: no such file")
    return path


def read_torch(path: PathLike, expected_format: str | tuple[str, ...]) -> dict[str, Any]:
    """The dict in a torch file (tensors on CPU) whose ``"format"`` is ``expected_format`` (or
    one of them) and whose ``"version"`` is :data:`FORMAT_VERSION`.

    Raises :class:`LsalsaError` naming the file when it is missing, unreadable (truncated,
    corrupt, or holding anything but tensors and plain data) or of another format or version.
    """
    path = _existing(path)
    formats = (expected_format,) if isinstance(expected_format, str) else tuple(expected_format)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        first = (str(exc).strip().splitlines() or [""])[0]  # torch's messages run to many lines
        raise LsalsaError(f"{path}: not a readable lsalsa file ({type(exc).__name__}: {first})") from exc
    if not isinstance(obj, dict) or obj.get("format") not in formats:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise LsalsaError(f"{path}: expected an lsalsa file of format {' or '.join(formats)}, found {found!r}")
    if obj.get("version") != FORMAT_VERSION:
        raise LsalsaError(f"{path}: format version {obj.get('version')!r} is not supported (expected {FORMAT_VERSION})")
    return obj


def read_json(path: PathLike) -> Any:
    """The JSON value in ``path``; :class:`LsalsaError` naming the file when it is missing or
    not JSON."""
    path = _existing(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise LsalsaError(f"{path}: cannot be read as JSON ({exc})") from None


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first entry, or an empty zip


def load_npz(path: PathLike, keys: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, read into memory (the file is closed on return);
    :class:`LsalsaError` naming the file when it is missing, not a readable ``.npz``
    (truncated, empty, a bit flipped: the zip's checksums catch it) or lacks one of ``keys``.

    Arrays of Python objects are refused (``allow_pickle=False``): reading never runs code.
    """
    path = _existing(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if head not in _ZIP_MAGIC:
        what = "empty" if not head else "an .npy array" if head == b"\x93NUM" else "no zip header"
        raise LsalsaError(f"{path}: cannot be read (not an .npz archive: {what})")
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as exc:  # damaged archives reach zipfile and numpy parsers that raise many types
        raise LsalsaError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise LsalsaError(f"{path}: lacks the array(s) {missing} (holds {sorted(arrays)})")
    return arrays
