"""The gene sets calibration reads: ligand-receptor axes (``params/calibration/axes.toml``)
and gene programmes (``params/calibration/programmes.toml``). Each file's header says what
its entries mean; a user may give their own files instead."""

from dataclasses import dataclass
from pathlib import Path

from ..config.params import params_dir, read_toml
from .counts import CalibrationError
from .mapping import MODEL_TYPES

__all__ = ["Axis", "Programme", "load_axes", "load_programmes", "default_axes_file",
           "default_programmes_file", "genes_of"]

_CELLS = tuple(t for t in MODEL_TYPES if t != "other")


@dataclass(frozen=True)
class Axis:
    """One field of the model as ligand-receptor pairs from its senders to its receiver.

    ``pairs``: (ligand, receptor subunits); ``senders``: sender cell type -> the parameter
    key its secretion of this field is scaled by (``section.key`` or
    ``rules.CELL.BEHAVIOUR.DIRECTION``)."""

    name: str
    meaning: str
    receiver: str
    pairs: tuple[tuple[str, tuple[str, ...]], ...]
    senders: dict[str, str]


@dataclass(frozen=True)
class Programme:
    """A cell state as a gene set scored within one cell type; ``sets``: the parameter key
    derived from the state's fraction ("" if reported only)."""

    name: str
    cell_type: str
    state: str
    genes: tuple[str, ...]
    sets: str
    source: str


def default_axes_file() -> Path:
    return params_dir() / "calibration" / "axes.toml"


def default_programmes_file() -> Path:
    return params_dir() / "calibration" / "programmes.toml"


def _strings(path, where: str, value) -> tuple[str, ...]:
    if (not isinstance(value, list) or not value
            or not all(isinstance(g, str) and g for g in value)):
        raise CalibrationError(f"{path}: {where} = {value!r}: expected a non-empty list of "
                               "gene symbols")
    return tuple(value)


def _cell(path, where: str, value) -> str:
    if value not in _CELLS:
        raise CalibrationError(f"{path}: {where} = {value!r}: allowed {', '.join(_CELLS)}")
    return value


def load_axes(path: str | Path | None = None) -> tuple[Axis, ...]:
    """The axes of ``path`` (default: the shipped file), checked."""
    path = Path(path) if path is not None else default_axes_file()
    axes = []
    for name, raw in read_toml(path).items():
        if not isinstance(raw, dict) or not {"receiver", "pairs", "senders"} <= set(raw):
            raise CalibrationError(f"{path}: [{name}] needs receiver, pairs and senders")
        pairs = []
        for k, pair in enumerate(raw["pairs"] if isinstance(raw["pairs"], list) else [None]):
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
                raise CalibrationError(f"{path}: {name}.pairs[{k}] = {pair!r}: expected "
                                       "[\"Ligand\", [\"Receptor subunit\", ...]]")
            pairs.append((pair[0], _strings(path, f"{name}.pairs[{k}] receptor", pair[1])))
        senders = raw["senders"]
        if not isinstance(senders, dict) or not senders:
            raise CalibrationError(f"{path}: [{name}.senders] must map sender cell types to "
                                   "parameter keys")
        for cell, key in senders.items():
            _cell(path, f"{name}.senders", cell)
            if not isinstance(key, str) or "." not in key:
                raise CalibrationError(f"{path}: {name}.senders.{cell} = {key!r}: expected a "
                                       "parameter key such as tumor.secrete_chemoattractant")
        axes.append(Axis(name, str(raw.get("meaning", "")), _cell(path, f"{name}.receiver",
                                                                 raw["receiver"]),
                         tuple(pairs), dict(senders)))
    if not axes:
        raise CalibrationError(f"{path}: no axis defined")
    return tuple(axes)


def load_programmes(path: str | Path | None = None) -> tuple[Programme, ...]:
    """The programmes of ``path`` (default: the shipped file), checked."""
    path = Path(path) if path is not None else default_programmes_file()
    out = []
    for name, raw in read_toml(path).items():
        if not isinstance(raw, dict) or not {"cell_type", "genes"} <= set(raw):
            raise CalibrationError(f"{path}: [{name}] needs cell_type and genes")
        out.append(Programme(name, _cell(path, f"{name}.cell_type", raw["cell_type"]),
                             str(raw.get("state", name)), _strings(path, f"{name}.genes",
                                                                    raw["genes"]),
                             str(raw.get("sets", "")), str(raw.get("source", ""))))
    if not out:
        raise CalibrationError(f"{path}: no programme defined")
    return tuple(out)


def genes_of(axes, programmes) -> list[str]:
    """Every gene the axes and programmes name, once, in a stable order."""
    genes: dict[str, None] = {}
    for axis in axes:
        for ligand, receptor in axis.pairs:
            genes[ligand] = None
            genes.update(dict.fromkeys(receptor))
    for prog in programmes:
        genes.update(dict.fromkeys(prog.genes))
    return list(genes)
