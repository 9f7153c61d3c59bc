"""Output that is written whole or not at all.

A file goes to a temporary sibling, then one rename (:func:`replace_into`); a whole folder
is filled in a temporary sibling folder, then renamed into place (:func:`write_atomic`).
Readers (and a resumed experiment or sweep) never see a partial file, whatever moment a
run is interrupted; what a killed process leaves behind is removed the next time neutrosim
writes there (:mod:`.temporaries`). Folders and files are made with the user's umask, as
any other program's, so results can be shared.
"""

import json
import os
import shutil
import zipfile
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from .destination import check_out
from .temporaries import remove_stale, temporary

__all__ = ["write_atomic", "replace_into", "write_json", "save_figure", "write_npz"]

#: the date of every member of a :func:`write_npz` file (the earliest a zip file holds)
NPZ_DATE = (1980, 1, 1, 0, 0, 0)


def write_atomic(out: Path, fill: Callable[[Path], None], *, overwrite: bool = False,
                 ours: Collection[str] | None = None) -> Path:
    """Call ``fill(tmp_dir)``, then move the folder to ``out`` in one rename.

    ``out`` is checked as :func:`sim.runs.destination.check_out` checks it (an existing
    folder with files is replaced only with ``overwrite``, and only if neutrosim wrote it
    and it holds only names in ``ours``). On any error the temporary folder is removed and
    ``out`` is untouched; an error of the system names ``out``, not the temporary.
    """
    out = check_out(out, replace=overwrite, ours=ours)
    remove_stale(out.absolute().parent, out.name)
    tmp = temporary(out, "partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(tmp)
        fill(tmp)
        _swap(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, FileExistsError):
            raise OSError(exc.errno, f"{exc.strerror or exc}; nothing was written",
                          str(out)) from exc
        raise
    return out


def _swap(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is moved aside first and removed after
    (put back if the second rename fails)."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = temporary(out, "old")
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def replace_into(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it to ``path``."""
    path = Path(path)
    tmp = temporary(path, "tmp")
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


def write_npz(target: Path | IO[bytes], arrays: Mapping[str, np.ndarray], *,
              compress: bool = True) -> None:
    """``arrays`` as an ``.npz`` file (what ``np.savez_compressed``, or ``np.savez`` without
    ``compress``, writes; ``np.load`` reads it), byte for byte the same for the same arrays:
    each member is dated :data:`NPZ_DATE` rather than now. No array of Python objects
    (nothing pickled)."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(target, "w", compression=method) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=NPZ_DATE)
            info.compress_type = method
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)
