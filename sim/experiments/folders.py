"""An experiment's results folder: checked before any run, then created with its record.

Every experiment (the depletion experiment, sweeps) writes its runs into one folder, next
to a JSON record of what the folder holds (``experiment.json``, ``sweep.json``) that a
resumed experiment and the analysis read back. :func:`open_folder` checks the folder as
:func:`sim.runs.output.check_out` checks any output folder, creates it and writes the record.
"""

from pathlib import Path
from typing import Any

from ..runs.output import check_out, write_json

__all__ = ["open_folder"]


def open_folder(out: str | Path, record: str, content: Any, *, continuing: bool,
                refusal: str) -> Path:
    """Check ``out``, create it and write ``content`` as JSON to ``out/record``.

    A folder with files in it is accepted only when ``continuing`` (a resume, the same sweep
    run again); otherwise ``refusal`` says why not (a :class:`ParameterError` naming
    ``--out``), before anything is written.
    """
    out = check_out(out, nonempty_ok=continuing, nonempty_error=refusal, in_place=True)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / record, content)
    return out
