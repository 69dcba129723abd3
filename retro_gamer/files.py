"""Files that are never half-written: temp file → fsync → rename → fsync of the folder.

Kept apart from :mod:`retro_gamer.checkpoint` (and free of torch) because config files, logs and
replay pages are written the same way.
"""

from __future__ import annotations

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
