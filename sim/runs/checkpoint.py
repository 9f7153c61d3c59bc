"""Checkpoints: a model's whole state between two steps, as one file, and back.

A checkpoint is one ``.npz`` file (numpy's zip of ``.npy`` arrays, nothing pickled): the
arrays of :meth:`sim.model.NeutroModel.state` by name, plus ``header``, UTF-8 JSON as a
uint8 array, holding the format and its version, the neutrosim version and git revision
that wrote it, the parameters (every value, the rules table, the scenario; and their
digest), the step and time, and the model's plain values (the random generators' states,
the intervention's state, counters, the DataCollector's records so far). What it holds
and the version policy: docs/checkpoints.md.

:func:`save_checkpoint` writes one atomically (a temporary sibling, then one rename);
:func:`load_checkpoint` builds the model back, stepped on it gives bit for bit what the
saved model gives. :func:`read_checkpoint` reads and checks one without building a model.
A checkpoint of another format version or another neutrosim version, or a model with
other parameters, is refused with a :class:`~sim.config.errors.ParameterError`; only
``time.days`` (where the run ends) may differ, and the ``intervention.*`` values as long
as the intervention has not started (arms branching from one pre-treatment state).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ..config.errors import ParameterError, reading
from ..config.params import Params, params_from_record
from ..config.units import MIN_PER_DAY
from .output import replace_into, write_npz
from .provenance import git_revision

__all__ = ["FORMAT", "FORMAT_VERSION", "Checkpoint", "CheckpointPlan", "checkpoint_bytes",
           "save_checkpoint", "read_checkpoint", "load_checkpoint", "neutrosim_version",
           "parameter_differences"]

#: what a checkpoint's header names as its format
FORMAT = "neutrosim checkpoint"
#: the layout of a checkpoint this code writes and reads (raised on any change of it)
FORMAT_VERSION = 1
#: the npz member holding the header (UTF-8 JSON as uint8)
HEADER = "header"
#: parameters a checkpoint's model and the model built from it may differ in: where the
#: simulated time ends
FREE_KEYS = ("time.days",)
#: the prefix of the parameters that may also differ while the intervention has not started
BRANCH_PREFIX = "intervention."


def neutrosim_version() -> str:
    """The installed neutrosim's version ("unknown" when it is not installed)."""
    try:
        return metadata.version("neutrosim")
    except metadata.PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------- writing
def _header(model) -> dict[str, Any]:
    """The header of a checkpoint of ``model`` (everything but the arrays)."""
    p: Params = model.p
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "neutrosim_version": neutrosim_version(),
        "git_revision": git_revision(),
        "params_digest": p.digest(),
        "parameters": p.to_dict(),
        "rules": p.rules.to_rows(),
        "rules_file": p.rules.path,
        "scenario": p.scenario,
        "parameter_sources": list(p.sources),
        "step": int(model.steps),
        "time_h": model.time_h,
    }


def checkpoint_bytes(model) -> bytes:
    """A checkpoint of ``model`` (between two steps) as the bytes of its file."""
    state = model.state()
    header = {**_header(model), "state": state.values}
    blob = json.dumps(header, sort_keys=True, allow_nan=True).encode()
    buf = io.BytesIO()
    write_npz(buf, {HEADER: np.frombuffer(blob, np.uint8), **state.arrays})
    return buf.getvalue()


def save_checkpoint(model, path: str | Path) -> Path:
    """Write a checkpoint of ``model`` to ``path`` whole or not at all (a temporary sibling
    renamed into place; :func:`sim.runs.output.replace_into`); returns ``path``."""
    path = Path(path)
    data = checkpoint_bytes(model)
    replace_into(path, lambda tmp: tmp.write_bytes(data))
    return path


# ---------------------------------------------------------------------- reading
@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint as read and checked (:func:`read_checkpoint`).

    Attributes:
        header: the header (JSON values; ``state`` the model's plain values).
        arrays: the model's arrays by name (:class:`sim.model.ModelState`).
        params: the parameters of the saved model.
        label: the file's path as given, or ``"checkpoint (bytes)"``, for messages.
        sha256: of the file's bytes.
        path: the file's absolute path (None when read from bytes).
    """

    header: dict[str, Any]
    arrays: dict[str, np.ndarray]
    params: Params
    label: str
    sha256: str
    path: Path | None = None

    @property
    def step(self) -> int:
        """Model steps done at the checkpoint."""
        return int(self.header["step"])

    @property
    def time_h(self) -> float:
        """Simulated time at the checkpoint, hours."""
        return float(self.header["time_h"])

    @property
    def seed(self) -> int:
        """The seed the saved model was built with."""
        return int(self.header["state"]["seed"])

    @property
    def started(self) -> bool:
        """Whether the intervention had started (its once-off parts acted)."""
        return bool(self.header["state"]["treatment"]["started"])


def _raw(source: str | Path | bytes) -> tuple[bytes, str]:
    """The bytes of a checkpoint given as a path or as bytes, and its label."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "checkpoint (bytes)"
    path = Path(source)
    with reading(path, "checkpoint", "a checkpoint file"):
        return path.read_bytes(), str(path)


def _unpack(data: bytes, label: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and arrays of a checkpoint's bytes; ParameterError if they are not one."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        header = json.loads(arrays.pop(HEADER).tobytes().decode())
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError,
            UnicodeDecodeError) as exc:
        raise ParameterError(f"{label}: not a readable neutrosim checkpoint (corrupt or "
                             f"another kind of file: {type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ParameterError(f"{label}: not a neutrosim checkpoint (its header names no "
                             f"format {FORMAT!r})")
    return header, arrays


def _check_versions(header: dict[str, Any], label: str) -> None:
    """Refuse a checkpoint of another format version or neutrosim version."""
    fmt = header.get("format_version")
    if fmt != FORMAT_VERSION:
        raise ParameterError(f"{label}: checkpoint format version {fmt}; this neutrosim "
                             f"reads version {FORMAT_VERSION} only")
    theirs, ours = header.get("neutrosim_version"), neutrosim_version()
    if theirs != ours:
        raise ParameterError(f"{label}: written by neutrosim {theirs}, this is neutrosim "
                             f"{ours}; a checkpoint is continued only by the version that "
                             "wrote it (rerun from t=0 with this one)")


def read_checkpoint(source: str | Path | bytes) -> Checkpoint:
    """Read a checkpoint (a path, or the bytes of one) and check it: format, versions, and
    that its parameters are whole (their digest). ParameterError, one line naming the
    file, if it is missing, unreadable, corrupt, or of another version."""
    data, label = _raw(source)
    header, arrays = _unpack(data, label)
    _check_versions(header, label)
    try:
        params = params_from_record(header["parameters"], header["rules"], header["scenario"],
                                    header.get("parameter_sources", ()),
                                    header.get("rules_file", ""))
        header["state"], header["step"], header["time_h"]
    except (KeyError, TypeError) as exc:
        raise ParameterError(f"{label}: checkpoint header incomplete ({exc})") from None
    if params.digest() != header.get("params_digest"):
        raise ParameterError(f"{label}: checkpoint's parameters do not match their digest "
                             "(corrupt file)")
    path = None if isinstance(source, (bytes, bytearray, memoryview)) else Path(source).absolute()
    return Checkpoint(header, arrays, params, label, hashlib.sha256(data).hexdigest(), path)


# ---------------------------------------------------------------------- parameters
def _rows(params: Params) -> list[str]:
    return [json.dumps(row, sort_keys=True) for row in params.rules.to_rows()]


def parameter_differences(saved: Params, given: Params) -> list[str]:
    """The keys in which ``given`` differs from ``saved``, each with both values
    (``"tumor.cycle_rate_per_min (checkpoint 0.001, given 0.002)"``), in parameter order,
    then ``rules row N`` for each differing row of the rules table."""
    a, b = saved.flat(), given.flat()
    out = [f"{k} (checkpoint {a[k]!r}, given {b[k]!r})" for k in a if a[k] != b[k]]
    ra, rb = _rows(saved), _rows(given)
    if len(ra) != len(rb):
        out.append(f"rules ({len(ra)} rows in the checkpoint, {len(rb)} given)")
    else:
        out += [f"rules row {i + 1}" for i, (x, y) in enumerate(zip(ra, rb)) if x != y]
    return out


def _check_params(ck: Checkpoint, params: Params) -> None:
    """Refuse ``params`` for ``ck``'s model unless they differ only in :data:`FREE_KEYS`
    and, before the intervention's start, in ``intervention.*`` (then starting no earlier
    than the checkpoint's time)."""
    diffs = parameter_differences(ck.params, params)
    free = [d for d in diffs if d.split(" ")[0] in FREE_KEYS]
    branch = [d for d in diffs if d.startswith(BRANCH_PREFIX)]
    other = [d for d in diffs if d not in free and d not in branch]
    if other:
        more = f" and {len(other) - 3} more" if len(other) > 3 else ""
        raise ParameterError(f"{ck.label}: the parameters differ from the checkpoint's in "
                             f"{'; '.join(other[:3])}{more}; only time.days may differ (and "
                             "intervention.* before the intervention starts)")
    if branch and ck.started:
        raise ParameterError(f"{ck.label}: the intervention had started at the checkpoint "
                             f"(day {ck.time_h / 24:g}), so its parameters cannot change: "
                             f"{'; '.join(branch[:3])}")
    start_h = params.intervention.start_day * 24
    if branch and start_h < ck.time_h:
        raise ParameterError(f"{ck.label}: intervention.start_day = "
                             f"{params.intervention.start_day:g} is before the checkpoint's "
                             f"time (day {ck.time_h / 24:g})")


# ---------------------------------------------------------------------- loading
def load_checkpoint(source: str | Path | bytes | Checkpoint, *, params: Params | None = None,
                    days: float | None = None, threads: int | None = None,
                    mesa: str = "lazy"):
    """The model saved in a checkpoint (a path, its bytes, or a :class:`Checkpoint`),
    ready to step on: bit for bit as the saved model would have gone on.

    Args:
        params: the parameters to go on with (default: the checkpoint's). They may differ
            from the checkpoint's only in ``time.days`` and, while the intervention has not
            started, in ``intervention.*`` (a treatment arm branching from a shared
            pre-treatment state); anything else is refused naming the first keys.
        days: where the simulated time ends (default ``params.time.days``), not before
            the checkpoint's time. The records kept are those of a run to there.
        threads, mesa: as for :class:`sim.model.NeutroModel` (results do not depend on them).
    """
    from ..model.model import ModelState, NeutroModel

    ck = source if isinstance(source, Checkpoint) else read_checkpoint(source)
    params = ck.params if params is None else params
    _check_params(ck, params)
    if days is not None and days != params.time.days:
        params = params.replace({"time.days": days}, origin="days")
    end = model_steps(params, params.time.days * MIN_PER_DAY)
    if end < ck.step:
        raise ParameterError(f"{ck.label}: days = {params.time.days:g} ends before the "
                             f"checkpoint's time (day {ck.time_h / 24:g}, step {ck.step})")
    state = ModelState(ck.header["state"], ck.arrays)
    try:
        return NeutroModel.from_state(params, state, threads=threads, mesa=mesa)
    except (KeyError, ValueError, TypeError) as exc:
        if isinstance(exc, ParameterError):
            raise
        raise ParameterError(f"{ck.label}: checkpoint state incomplete or inconsistent "
                             f"({type(exc).__name__}: {exc})") from None


def model_steps(params: Params, minutes: float) -> int:
    """Whole model steps in ``minutes`` of simulated time (as the model rounds them)."""
    from ..config.units import Scales

    return Scales(params.domain.voxel_um, params.time.dt_min).steps(minutes)


# ---------------------------------------------------------------------- a run's checkpoints
@dataclass(frozen=True)
class CheckpointPlan:
    """When a run writes checkpoints, and where: every ``every_days`` of simulated time
    from t=0 (to whole model steps), one file per checkpoint in ``folder``
    (:meth:`name`), the last one at the run's end if it falls there."""

    every_days: float
    folder: Path

    def every_steps(self, params: Params) -> int:
        """Model steps between checkpoints; ParameterError if under one step."""
        steps = model_steps(params, self.every_days * MIN_PER_DAY)
        if not (self.every_days > 0 and steps >= 1):
            raise ParameterError(f"--checkpoint-every {self.every_days:g}: must be at least "
                                 f"one model step (time.dt_min = {params.time.dt_min} min)")
        return steps

    @staticmethod
    def name(model) -> str:
        """The file name of a checkpoint of ``model`` now: its simulated day, to the
        minute, padded so names sort in time (``checkpoint_day0007.0000.npz``)."""
        return f"checkpoint_day{model.time_min / MIN_PER_DAY:09.4f}.npz"

    def due(self, model, every_steps: int) -> bool:
        """Whether a checkpoint is due after the step ``model`` just took."""
        return model.steps % every_steps == 0

    def write(self, model) -> Path:
        """Save a checkpoint of ``model`` into :attr:`folder` (atomically)."""
        return save_checkpoint(model, self.folder / self.name(model))
