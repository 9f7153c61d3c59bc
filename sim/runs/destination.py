"""The check of an output folder (``--out``) before any work: every reason it cannot be
filled is found here, before hours of simulation, and reported as one
:class:`~sim.config.errors.ParameterError` naming the path the user gave.

A folder is filled in one of two ways. A single run is written whole into a temporary
sibling and renamed into place (:func:`sim.runs.output.write_atomic`): the folder's parent
must be writable, and the folder cannot be the current folder or one holding it. An
experiment or a sweep writes into the folder itself as its runs finish (``in_place``): the
folder must be writable.

What is in the folder already decides the rest. An empty or new folder is always fine.
One with files is fine when the work continues it (``resume``: a resumed experiment, the
same sweep again); when it is to be replaced (``replace``: ``--overwrite``) only if
neutrosim wrote it (its ``manifest.json`` says so, :func:`written_by_neutrosim`) and it
holds nothing neutrosim did not write there; otherwise it is refused.
"""

import json
import os
from collections.abc import Collection
from pathlib import Path

from ..config.errors import ParameterError
from .temporaries import temporary

__all__ = ["MARK", "check_out", "written_by_neutrosim"]

#: what every neutrosim manifest holds (``"written_by": MARK``), so a folder is known as ours
MARK = "neutrosim"


def written_by_neutrosim(folder: Path) -> bool:
    """Whether ``folder/manifest.json`` is a neutrosim manifest (also one written before the
    mark existed: those name neutrosim among their ``versions``)."""
    try:
        manifest = json.loads((Path(folder) / "manifest.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    if not isinstance(manifest, dict):
        return False
    versions = manifest.get("versions")
    return manifest.get("written_by") == MARK or (isinstance(versions, dict) and MARK in versions)


def check_out(out: str | Path, *, resume: bool = False, replace: bool = False,
              in_place: bool = False, ours: Collection[str] | None = None,
              refusal: str = "folder exists and is not empty (use --overwrite to replace it)",
              ) -> Path:
    """Refuse an output folder that cannot be filled; nothing is written or changed.

    Args:
        out: the folder as the user gave it (messages name it so).
        resume: a folder with files is continued (an experiment's or sweep's own folder).
        replace: a folder with files is replaced whole (``--overwrite``), if neutrosim
            wrote it and it holds only names in ``ours`` (when given).
        in_place: files are written into ``out`` as the work goes (experiments, sweeps),
            rather than into a temporary sibling renamed into place at the end.
        refusal: why a folder with files is refused when neither ``resume`` nor ``replace``.
    """
    out = Path(out)
    label = f"--out {out}"
    if out.exists() and not out.is_dir():
        raise ParameterError(f"{label}: exists and is not a folder")
    if not in_place:
        here = Path.cwd().resolve()
        if out.resolve() == here or out.resolve() in here.parents:
            raise ParameterError(f"{label}: is the current folder or holds it, and a run's "
                                 "folder is replaced whole; give a folder inside it (e.g. "
                                 "--out ./run1)")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if entries and not resume:
        if not replace:
            raise ParameterError(f"{label}: {refusal}")
        if not written_by_neutrosim(out):
            raise ParameterError(f"{label}: not a folder neutrosim wrote (it has no neutrosim "
                                 "manifest.json), so --overwrite will not delete it; remove it "
                                 "yourself or give another --out")
        foreign = [e for e in entries if ours is not None and e not in ours]
        if foreign:
            raise ParameterError(f"{label}: holds files neutrosim did not write there "
                                 f"({', '.join(foreign)}), which --overwrite would delete; move "
                                 "them away or give another --out")
    _probe(out, label, in_place)
    return out


def _probe(out: Path, label: str, in_place: bool) -> None:
    """Create and remove a folder where the output will be made: the only sure test that
    the system allows it (permissions, read-only mounts, /proc, a full quota of inodes).
    The folder's modification time is put back."""
    into = out if in_place else out.absolute().parent
    while not into.exists():
        into = into.parent
    if not into.is_dir():
        raise ParameterError(f"{label}: cannot create it: {into} is not a writable folder (a file)")
    probe = temporary(into / "neutrosim", "probe")
    try:
        before = into.stat()
        os.mkdir(probe)
        os.rmdir(probe)
        try:  # leave the folder's times as they were: a refused command changes nothing
            os.utime(into, ns=(before.st_atime_ns, before.st_mtime_ns))
        except OSError:
            pass  # not the folder's owner: its times move, nothing else does
    except OSError as exc:
        action = "write into it" if into == out else "create it"
        raise ParameterError(f"{label}: cannot {action}: {into} is not a writable folder "
                             f"({exc.strerror})") from None
