"""Atomic file output: a file is either the old one or the complete new one, never half written.

Every posrec command that writes files goes through here (DESIGN.md, Contracts), and checks with
:func:`check_not_input` that it is not about to overwrite one of its inputs.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from posrec.errors import PosrecError

# The process umask, read once: mkstemp creates files 0600, and outputs should get the same
# permissions as any other file the user creates. (os.umask can only be read by setting it.)
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _prepare_target(path: str | os.PathLike) -> Path:
    """The output path, its folder created; PosrecError if it names a folder or can't be made."""
    path = Path(path)
    if path.is_dir():
        raise PosrecError(f"cannot write {path}: it is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PosrecError(f"cannot create the folder for {path}: {e.strerror or e}") from None
    return path


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform/filesystem (e.g. Windows).
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _commit(tmp: Path, path: Path) -> None:
    """Give ``tmp`` ordinary permissions and move it over ``path`` in one step."""
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except OSError as e:
        raise PosrecError(f"cannot write {path}: {e.strerror or e}") from None
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """A temporary path next to ``path``; moved over ``path`` when the block ends without error.

    For writers that need a file name rather than a file object (cv2.VideoWriter). The temporary
    file ends in ``suffix`` (default: the target's own suffix) because such writers choose the
    format from the extension. On an exception the temporary file is removed and an existing
    ``path`` is left as it was.
    """
    path = _prepare_target(path)
    suffix = path.suffix if suffix is None else suffix
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    except OSError as e:
        raise PosrecError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _commit(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file next to ``path`` for writing; it replaces ``path`` on success.

    ``mode`` is "wb" or "w" (text; ``encoding`` defaults to UTF-8). The data is flushed and fsynced
    before the rename, so after a crash ``path`` holds either the old or the complete new content.
    On an exception inside the block the temporary file is deleted and ``path`` is untouched.
    """
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', not {mode!r}")
    binary = "b" in mode
    if not binary and encoding is None:
        encoding = "utf-8"
    path = _prepare_target(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise PosrecError(f"cannot write {path}: {e.strerror or e}") from None
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _commit(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:  # hard links and case-insensitive filesystems: compare the files themselves
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_not_input(out_path: str | os.PathLike, *input_paths: str | os.PathLike | None) -> None:
    """Raise PosrecError if writing ``out_path`` would overwrite one of ``input_paths``.

    Symlinks are resolved and hard links detected, so ``out -> in`` counts as the input.
    ``None`` entries are skipped so callers can pass optional inputs directly.
    """
    out = Path(out_path)
    for inp in input_paths:
        if inp is not None and _same_file(out, Path(inp)):
            raise PosrecError(f"refusing to overwrite the input {inp} with the output {out_path}: "
                              "choose another output path")


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex of a file, computed once per process per (path, size, mtime): about 2 ms per
    MB. OSError if it cannot be read."""
    st = os.stat(path)
    return _sha256(os.path.realpath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
