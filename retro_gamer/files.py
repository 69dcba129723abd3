"""Files that are never half-written: temp file → fsync → rename → fsync of the folder.

Kept apart from :mod:`retro_gamer.run.checkpoint` (and free of torch) because config files, logs and
replay pages are written the same way.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)
_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]+\.tmp$")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename: readers see old or new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable: without this a power cut can forget it even though the data was synced."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # platforms that cannot open a folder (Windows) have no such step
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temp_files(*folders: Path) -> list[Path]:
    """Delete the temp files that a killed writer left behind (only names :func:`atomic_write_bytes` makes)."""
    removed = []
    for folder in map(Path, folders):
        for path in folder.glob(".*.tmp") if folder.is_dir() else ():
            if _TEMP.match(path.name):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


_ADVICE = {
    errno.EACCES: "you may not write there: choose a folder you own, or fix its permissions",
    errno.EPERM: "you may not write there: choose a folder you own, or fix its permissions",
    errno.EROFS: "that file system is read-only: choose a folder on a writable disk",
    errno.ENOSPC: "the disk is full: free some space and run the same command again",
    errno.EDQUOT: "your disk quota is used up: free some space and run the same command again",
    errno.EFBIG: "the file is larger than this system allows (a file-size limit): raise the limit or save less",
    errno.ENAMETOOLONG: "a name is too long (most file systems allow 255 bytes per name): choose a shorter one",
    errno.ENOTDIR: "part of that path is a file, not a folder: choose another path",
    errno.EISDIR: "that path is a folder, not a file: name a file inside it",
    errno.EEXIST: "something with that name is already there: choose another name",
    errno.ENOENT: "a folder on that path does not exist: create it first or choose another path",
}


def describe_os_error(error: OSError) -> str:
    """One paragraph for a file-system failure: what failed, on which path, and what to do about it."""
    where = f" {error.filename}" if error.filename else ""
    if error.filename2:
        where += f" → {error.filename2}"
    advice = _ADVICE.get(error.errno or 0, "check the path and the disk, then run the same command again")
    return (
        f"cannot use{where}: {error.strerror or error}. {advice[0].upper()}{advice[1:]}. "
        "Files written before this are intact (every save goes to a temporary file first)."
    )


def check_output_file(path: Path, suffixes: tuple[str, ...], what: str) -> Path:
    """Refuse an output path that cannot work, before any work is done: its folder must exist and be a
    folder, the path must not be a folder, and its extension must be one of ``suffixes``."""
    from retro_gamer.errors import RetroGamerError

    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise RetroGamerError(
            f"{what} {path}: unknown extension '{path.suffix or '(none)'}'. "
            f"Use one of: {', '.join(suffixes)} (for example {path.with_suffix(suffixes[0]).name})."
        )
    if path.is_dir():
        raise RetroGamerError(f"{what} {path} is a folder; name a file inside it, e.g. {path / ('out' + suffixes[0])}.")
    folder = path.parent
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.exists() else "does not exist"
        raise RetroGamerError(
            f"{what} {path}: the folder {folder} {problem}. Create it first (mkdir -p {folder}) or choose another path."
        )
    if len(path.name.encode()) > 255:
        raise RetroGamerError(
            f"{what}: the name {path.name[:40]}… is {len(path.name.encode())} bytes long; "
            "file systems allow 255. Choose a shorter name."
        )
    return path
