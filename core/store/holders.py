"""Who holds the store's write lock: the processes with a write lock on ``tessera.db`` or its
``-shm`` file, read from ``/proc/locks`` (Linux).

SQLite locks with fcntl(2), which the kernel lists in /proc/locks with the owner's pid: in WAL
mode a writer holds the WAL write lock (a byte of the -shm file); in rollback mode the RESERVED
and PENDING bytes of the database file. No holder record is written by Tessera, so any process
holding the lock is found (another tessera, the sqlite3 shell, a backup tool), and a process
killed while holding it leaves nothing stale behind.
"""

from __future__ import annotations

import os
from pathlib import Path


def lock_holders(db: Path) -> list[int]:
    """The pids (other than ours) holding a write lock on ``db`` or ``db-shm``; [] when none is
    found or /proc/locks cannot be read (not Linux)."""
    wanted = set()
    for path in (db, db.with_name(db.name + "-shm")):
        try:
            st = os.stat(path)
        except OSError:
            continue
        wanted.add((os.major(st.st_dev), os.minor(st.st_dev), st.st_ino))
    if not wanted:
        return []
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    pids: list[int] = []
    for line in lines:
        fields = line.split()
        # "1: POSIX  ADVISORY  WRITE 1234 08:01:56789 120 120"; "1: -> POSIX ..." is a waiter
        if len(fields) < 8 or fields[1] == "->" or fields[3] != "WRITE":
            continue
        try:
            pid = int(fields[4])
            major, minor, inode = fields[5].split(":")
            where = (int(major, 16), int(minor, 16), int(inode))
        except ValueError:
            continue
        if where in wanted and pid > 0 and pid != os.getpid() and pid not in pids:
            pids.append(pid)
    return pids


def describe(pid: int) -> str:
    """``pid 1234 (tessera events publish)``: the program and the plain words after it (an
    argument that looks like data, such as JSON or a path, is left out: it may be private)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"pid {pid}"
    args = [os.fsdecode(a) for a in argv if a]
    if len(args) > 1 and os.path.basename(args[0]).startswith("python") and os.path.isfile(args[1]):
        args = args[1:]  # a console script: name the script, not its interpreter
    words = [os.path.basename(args[0])] if args else []
    for word in args[1:4]:
        if not all(ch.isalnum() or ch in "-_." for ch in word) or len(word) > 30:
            break
        words.append(word)
    return f"pid {pid} ({' '.join(words)})" if words else f"pid {pid}"


def holder_text(db: Path) -> str:
    """``pid 1234 (tessera notebook run)``, several joined with commas, or ``another process``."""
    pids = lock_holders(db)
    return ", ".join(describe(p) for p in pids[:3]) if pids else "another process"
