"""neutrosim's temporary files and folders: how they are named, and when one is stale.

Everything neutrosim writes goes first to a hidden sibling of its target, named
``.<target>.<pid>-<token>.<kind>`` (``kind``: ``tmp`` a file being written, ``partial`` a
run folder being filled, ``old`` a replaced folder on its way out, ``probe`` a test that a
folder is writable), then is renamed into place. A process killed in between (SIGKILL,
power loss) leaves that sibling behind; :func:`remove_stale` removes it the next time
neutrosim writes into the same place.

A temporary is stale when the process that made it (its ``pid``) is gone, or, in case the
pid was reused, when it is older than :data:`STALE_AFTER_S`. Only names of this pattern are
ever removed: a user's own files, even hidden ones, are never touched. Two machines
writing into one folder at the same time (over a shared file system) are not supported:
a pid says nothing about another machine.
"""

import os
import re
import secrets
import shutil
import time
from pathlib import Path

__all__ = ["STALE_AFTER_S", "temporary", "remove_stale"]

#: a temporary older than this (seconds) is stale even if a process with its pid runs
STALE_AFTER_S = 24 * 3600.0

KINDS = ("tmp", "partial", "old", "probe")
_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.(?P<kind>tmp|partial|old|probe)$")


def temporary(target: Path, kind: str) -> Path:
    """A fresh hidden sibling of ``target`` for a temporary of ``kind`` (not created)."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: allowed {KINDS}")
    target = Path(target)
    return target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.{kind}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _stale(path: Path, pid: int) -> bool:
    """Whether the temporary ``path`` made by process ``pid`` is stale (module docstring)."""
    try:
        age = time.time() - path.lstat().st_mtime
    except FileNotFoundError:
        return False
    return not _alive(pid) or age > STALE_AFTER_S


def remove_stale(folder: Path, target: str | None = None) -> list[Path]:
    """Remove the stale temporaries in ``folder`` (only those of ``target`` if given);
    return what was removed. A folder that does not exist holds nothing to remove."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        m = _NAME.match(path.name)
        if (m is None or (target is not None and m["target"] != target)
                or not _stale(path, int(m["pid"]))):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed
