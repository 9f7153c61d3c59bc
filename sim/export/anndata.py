"""A run's output folder as AnnData: one row per agent of the final state.

Conventions of PhysiCell's pcdl and of squidpy (docs/export.md):

- ``obs``: ``cell_type`` (tumor | neutrophil | macrophage | endothelial) and ``state`` (the
  model's state names), both categorical; booleans ``in_cycle`` (tumor: viable and
  Ki67-positive), ``invasive`` (tumor: viable, off the main mass) and ``perfused``
  (endothelial: carries blood), False for the other types; ``time`` (h). The index is the
  agent's row in ``final_state.npz``'s agent arrays, as a string.
- ``obsm["spatial"]``: (x, y) of the voxel centre, um.
- ``X``: the fields at each agent's voxel (float64); ``var``: one row per field, with its
  ``unit`` and ``label``.
- ``obsp["bonds"]``: sparse symmetric adjacency (CSR, 1.0) of bound neutrophil-tumor pairs.
- ``uns``: time_h, voxel_um, the grid, seed, scenario, stage, parameter digest, the
  neutrosim version that made the run and the one that exported it, the run folder, the
  parameters (JSON), and notes on ``bonds`` and on the snapshots.

A run stores only its final state (no intermediate snapshots), so the AnnData is one time
point.
"""

import json
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from ..cells import endothelial, macrophage, neutrophil, tumor
from ..config.errors import ParameterError
from ..config.field_registry import FIELDS

__all__ = ["CELL_TYPE_NAMES", "Run", "read_run", "to_anndata"]

#: population name (``KIND``) -> the cell type's name in exports (and in the rules)
CELL_TYPE_NAMES = {tumor.KIND: "tumor", neutrophil.KIND: "neutrophil",
                   macrophage.KIND: "macrophage", endothelial.KIND: "endothelial"}
#: what final_state.npz must hold for an export (runs of older versions lack the last two)
NEEDED = ("agent_kind", "agent_x", "agent_y", "agent_state", "kind_names", "state_names",
          "invasive", "vessel_perfused", "time_h", "voxel_um", "tumor_in_cycle",
          "neutrophil_partner")
SNAPSHOTS_NOTE = ("final state only: a run folder stores no intermediate snapshots "
                  "(its time series holds population readouts, not agents)")
BONDS_NOTE = ("obsp['bonds']: symmetric adjacency, 1.0 between each bound neutrophil and the "
              "tumor cell it holds (neutrophil state 'bound')")


@dataclass(frozen=True)
class Run:
    """A run's output folder, read: ``manifest`` (manifest.json) and ``state`` (the arrays
    of final_state.npz, :func:`sim.runs.snapshot.final_state`)."""

    path: Path
    manifest: dict[str, Any]
    state: dict[str, np.ndarray]

    @property
    def seed(self) -> int:
        return int(self.manifest["seed"])

    @property
    def stage(self) -> str:
        """The run's disease stage (``initial.stage``)."""
        return str(self.manifest["parameters"]["initial"]["stage"])

    @property
    def time_h(self) -> float:
        return float(self.state["time_h"])

    @property
    def voxel_um(self) -> float:
        return float(self.state["voxel_um"])

    @property
    def n(self) -> int:
        """Number of agents."""
        return len(self.state["agent_kind"])

    @cached_property
    def cell_type(self) -> np.ndarray:
        """Per agent, its cell type's name (:data:`CELL_TYPE_NAMES`)."""
        names = np.array([CELL_TYPE_NAMES[str(k)] for k in self.state["kind_names"]])
        return names[self.state["agent_kind"]]

    @cached_property
    def state_name(self) -> np.ndarray:
        """Per agent, the name of its state (e.g. "hypoxic", "bound")."""
        out = np.empty(self.n, dtype=object)
        kind = self.state["agent_kind"]
        for k, names in enumerate(self.state["state_names"]):
            rows = kind == k
            out[rows] = np.array(str(names).split(","))[self.state["agent_state"][rows]]
        return out

    def rows_of(self, cell_type: str) -> np.ndarray:
        """Agent indices of one cell type, in order (the order of its per-type arrays)."""
        return np.flatnonzero(self.cell_type == cell_type)

    def per_agent(self, key: str, cell_type: str) -> np.ndarray:
        """The per-type boolean array ``key`` of the npz spread over all agents (False for
        agents of other types)."""
        out = np.zeros(self.n, dtype=bool)
        out[self.rows_of(cell_type)] = self.state[key]
        return out

    @cached_property
    def partner(self) -> np.ndarray:
        """Per agent (int64): the agent index of the tumor cell a bound neutrophil holds,
        -1 for every other agent."""
        out = np.full(self.n, -1, dtype=np.int64)
        out[self.rows_of("neutrophil")] = self.state["neutrophil_partner"]
        return out

    @property
    def field_names(self) -> list[str]:
        return [k.removeprefix("field_") for k in self.state if k.startswith("field_")]

    def params_digest(self) -> str:
        """The parameter digest of the run, as :meth:`sim.config.params.Params.digest`
        computes it, from the manifest's parameters, rules and scenario."""
        import hashlib

        m = self.manifest
        blob = json.dumps({"parameters": m["parameters"], "rules": m["rules"],
                           "scenario": m["scenario"]}, sort_keys=True, default=repr)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_run(path: str | Path) -> Run:
    """Read a run's output folder (what ``neutrosim run --out`` wrote); any reason it is not
    one is a :class:`~sim.config.errors.ParameterError` naming ``path``."""
    path = Path(path)
    if not path.exists():
        raise ParameterError(f"{path}: run folder not found")
    if not path.is_dir():
        raise ParameterError(f"{path}: not a folder (give the folder neutrosim run --out wrote)")
    missing = [f for f in ("manifest.json", "final_state.npz") if not (path / f).is_file()]
    if missing:
        raise ParameterError(f"{path}: not a run folder (no {' or '.join(missing)}; give the "
                             "folder neutrosim run --out wrote)")
    manifest = _read_manifest(path / "manifest.json")
    state = _read_state(path / "final_state.npz")
    return Run(path, manifest, state)


def _read_manifest(file: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParameterError(f"{file}: not a neutrosim manifest ({exc})") from None
    if not (isinstance(manifest, dict) and {"seed", "parameters", "rules", "scenario"}
            <= set(manifest)):
        raise ParameterError(f"{file}: not the manifest of a single run (needs seed, "
                             "parameters, rules and scenario)")
    return manifest


def _read_state(file: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(file) as data:
            state = {k: data[k] for k in data.files}
    except (ValueError, OSError) as exc:
        raise ParameterError(f"{file}: cannot be read as a final state ({exc})") from None
    lacking = [k for k in NEEDED if k not in state]
    if lacking:
        raise ParameterError(f"{file}: lacks {', '.join(lacking)} (written by an older "
                             "neutrosim; run it again with this version to export it)")
    return state


def obs_table(run: Run) -> pd.DataFrame:
    """Per agent: cell_type, state (categorical), in_cycle, invasive, perfused, time (h)."""
    types = list(CELL_TYPE_NAMES.values())
    states = list(dict.fromkeys(s for names in run.state["state_names"]
                                for s in str(names).split(",")))
    return pd.DataFrame({
        "cell_type": pd.Categorical(run.cell_type, categories=types),
        "state": pd.Categorical(run.state_name, categories=states),
        "in_cycle": run.per_agent("tumor_in_cycle", "tumor"),
        "invasive": run.per_agent("invasive", "tumor"),
        "perfused": run.per_agent("vessel_perfused", "endothelial"),
        "time": np.full(run.n, run.time_h),
    }, index=pd.Index(np.arange(run.n).astype(str), name="agent"))


def spatial(run: Run) -> np.ndarray:
    """(n, 2) float64: the centre of each agent's voxel, um."""
    xy = np.column_stack([run.state["agent_x"], run.state["agent_y"]]).astype(np.float64)
    return (xy + 0.5) * run.voxel_um


def field_values(run: Run) -> tuple[np.ndarray, pd.DataFrame]:
    """``X`` (n, fields): each field at each agent's voxel, and ``var`` (unit, label)."""
    names = run.field_names
    x, y = run.state["agent_x"], run.state["agent_y"]
    values = np.column_stack([run.state[f"field_{f}"][x, y] for f in names]) if names \
        else np.zeros((run.n, 0))
    info = {f.name: f for f in FIELDS}
    var = pd.DataFrame({"unit": [info[f].unit if f in info else "" for f in names],
                        "label": [info[f].label if f in info else f for f in names]},
                       index=pd.Index(names, name="field"))
    return values.astype(np.float64), var


def bonds(run: Run) -> sparse.csr_matrix:
    """(n, n) symmetric CSR adjacency, 1.0 between each bound neutrophil and its tumor cell."""
    holder = np.flatnonzero(run.partner >= 0)
    held = run.partner[holder]
    rows, cols = np.concatenate([holder, held]), np.concatenate([held, holder])
    adj = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(run.n, run.n)).tocsr()
    adj.data[:] = 1.0  # a pair listed twice is one bond
    return adj


def uns(run: Run) -> dict[str, Any]:
    """The run's provenance and the notes on the layout."""
    p = run.manifest["parameters"]
    return {
        "time_h": run.time_h,
        "voxel_um": run.voxel_um,
        "grid": np.array([p["domain"]["nx"], p["domain"]["ny"]]),
        "seed": run.seed,
        "scenario": str(run.manifest["scenario"]),
        "stage": run.stage,
        "params_digest": run.params_digest(),
        "neutrosim_version": str(run.manifest.get("versions", {}).get("neutrosim", "unknown")),
        "exported_by": f"neutrosim {_version()}",
        "run_dir": str(run.path.resolve()),
        "parameters_json": json.dumps(p, sort_keys=True, default=str),
        "bonds": BONDS_NOTE,
        "snapshots": SNAPSHOTS_NOTE,
    }


def _version() -> str:
    try:
        return metadata.version("neutrosim")
    except metadata.PackageNotFoundError:
        return "unknown"


def to_anndata(run: Run):
    """The AnnData of ``run`` (module docstring)."""
    import anndata as ad

    values, var = field_values(run)
    adata = ad.AnnData(X=values, obs=obs_table(run), var=var,
                       obsm={"spatial": spatial(run)}, obsp={"bonds": bonds(run)},
                       uns=uns(run))
    return adata
