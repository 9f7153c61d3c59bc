"""An experiment's results folder: checked before any run, then created with its record.

Every experiment (the depletion experiment, sweeps) writes its runs into one folder, next
to a JSON record of what the folder holds (``experiment.json``, ``sweep.json``) that a
resumed experiment and the analysis read back. Opening one has two steps, so that a folder
is never changed by a command that is then refused: :func:`check_folder` (nothing written)
before every other check of the experiment, :func:`open_folder` after all of them.
"""

from pathlib import Path
from typing import Any

from ..runs.destination import check_out
from ..runs.output import write_json
from ..runs.temporaries import remove_stale

__all__ = ["check_folder", "open_folder", "SUBFOLDERS"]

#: the folders an experiment writes below its own besides the ensemble's (``runs/``,
#: ``final/`` and ``failures/``, which :func:`sim.runs.ensemble.run_ensemble` cleans)
SUBFOLDERS = ("figures", "analysis")


def check_folder(out: str | Path, *, continuing: bool, refusal: str) -> Path:
    """Refuse ``out`` if it cannot be filled; write nothing.

    A folder with files is accepted only when ``continuing`` (a resume, the same sweep run
    again); otherwise ``refusal`` says why not (a :class:`ParameterError` naming ``--out``).
    """
    return check_out(out, resume=continuing, in_place=True, refusal=refusal)


def open_folder(out: str | Path, record: str, content: Any) -> Path:
    """Create ``out``, remove what a killed earlier process left half-written in it and in
    :data:`SUBFOLDERS` (see :mod:`sim.runs.temporaries`), and write ``content`` as JSON to
    ``out/record``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for folder in (out, *(out / sub for sub in SUBFOLDERS)):
        remove_stale(folder)
    write_json(out / record, content)
    return out
