"""Files that are never half-written: write to a temporary file, fsync, rename."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed over ``path``.

    An exception, or a kill at any moment, leaves the previous ``path`` intact and never a
    partial file under its name (at worst a ``.NAME.*.tmp`` leftover beside it). The temporary
    file is created with the mode ``open()`` would give, so the result has the usual
    permissions. The folder must exist (FileNotFoundError otherwise, naming it).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: folder {path.parent} does not exist; create it first")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, expected a file name")
    temporary = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    mode = temporary.stat().st_mode & 0o777
    try:
        yield temporary
        os.chmod(temporary, mode)  # some writers (safetensors) recreate the file as 0o600
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX); a no-op where folders cannot be opened."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
