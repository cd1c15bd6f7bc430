"""The embedded SQLite database holds health data (check-ins), so its folder is 0700 and its files 0600.

SQLite creates a database file with the process umask (usually 0644: readable by every local account), and gives its
-wal, -shm and -journal files the database file's own mode. So the file is created here first, empty and 0600, before
SQLite opens it, and the data folder is made 0700. An existing file or folder with looser modes is tightened (only if
this account owns it), so installations made before this rule are fixed at their next start.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def _tighten(path: Path, mode: int) -> None:
    info = path.stat()
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & ~mode:
        path.chmod(stat.S_IMODE(info.st_mode) & mode)


def private_sqlite_file(database: Path, *, data_dir: Path | None) -> None:
    """Make `database` (and its WAL, shared-memory and journal files, if any) 0600, and `data_dir`, Veil's own data
    folder that holds it, 0700. A database elsewhere (DATABASE_URL=sqlite:///...) gets private files and, if its
    folder is missing, a private folder; an existing folder of the operator's choosing is left as it is."""
    if data_dir is not None:
        data_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        _tighten(data_dir, PRIVATE_DIR)
    database.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = database.with_name(database.name + suffix)
        if path.exists():
            _tighten(path, PRIVATE_FILE)
