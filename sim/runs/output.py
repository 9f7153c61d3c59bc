"""Output that is written whole or not at all, and the check of an output folder before any work.

A file goes to a temporary sibling, then one rename (:func:`replace_into`); a whole folder
is filled in a temporary sibling folder, then renamed into place (:func:`write_atomic`).
Readers (and a resumed experiment or sweep) never see a partial file, whatever moment a
run is interrupted. :func:`check_out` refuses an output folder that cannot be written
before anything is simulated: a single run, an experiment and a sweep check theirs alike.
"""

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config.errors import ParameterError

__all__ = ["check_out", "write_atomic", "replace_into", "write_json", "save_figure"]


def check_out(out: str | Path, *, nonempty_ok: bool = False,
              nonempty_error: str = "folder exists and is not empty (use --overwrite)",
              in_place: bool = False) -> Path:
    """Refuse an output folder (``--out``) that cannot be filled, before any work.

    ``out`` must not be a file; it must be empty unless ``nonempty_ok`` (an overwrite, a
    resume, the same sweep continued), else ``nonempty_error`` says why not; and the folder
    the files go into must be writable: ``out`` itself when they are written into it
    (``in_place``, as experiments and sweeps do), its parent when ``out`` is made whole by
    :func:`write_atomic`. A folder not there yet counts as its nearest existing parent.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not nonempty_ok:
        raise ParameterError(f"--out {out}: {nonempty_error}")
    into = out.absolute() if in_place else out.absolute().parent
    while not into.exists():
        into = into.parent
    if not into.is_dir() or not os.access(into, os.W_OK | os.X_OK):
        action = "write into" if into == out.absolute() else "create"
        raise ParameterError(f"--out {out}: cannot {action} it: {into} is not a writable folder")
    return out


def write_atomic(out: Path, fill: Callable[[Path], None], *, overwrite: bool = False) -> Path:
    """Call ``fill(tmp_dir)`` then move the folder to ``out`` in one rename.

    Refuses an existing non-empty ``out`` unless ``overwrite``. On any error the
    temporary folder is removed and ``out`` is untouched.
    """
    out = check_out(out, nonempty_ok=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        fill(tmp)
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, trash / "old")
            os.replace(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def replace_into(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it to ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON (values JSON does not know are written as strings)."""
    replace_into(path, lambda p: p.write_text(json.dumps(obj, indent=2, default=str)))


def save_figure(fig, stem: Path, dpi: int = 150) -> None:
    """A matplotlib figure as ``stem.png`` and ``stem.svg`` (for publication)."""
    for ext in ("png", "svg"):
        replace_into(Path(stem).with_suffix(f".{ext}"),
                     lambda p, ext=ext: fig.savefig(p, format=ext, dpi=dpi))
