"""A virtual single-cell RNA-seq experiment on a run's final state, with PIC-seq-like
neutrophil-tumor doublets; its output is an input of ``neutrosim calibrate``.

The experiment (docs/export.md):

1. Dissociation: ``n`` units drawn at random without replacement, each unit a single
   cell or a bound neutrophil-tumor pair (whose bond survives dissociation, as PIC-seq
   needs), from the tissue taken, the tumor and ``MARGIN_UM`` around it (a resected
   tumor; or the whole window), and from the agents that yield a transcriptome: every
   agent except dead tumor cells (necrotic, apoptotic), which dissociation and quality
   control lose. Each cell of
   the tissue is then equally likely to be in the sample, single or in its pair, so the
   cells counted over barcodes (a doublet counting one of each type) estimate the
   tissue's composition, and doublets over doublets plus neutrophil singlets its bound
   fraction. (A tumor cell bound by k > 1 neutrophils comes out in each of their k pairs.)
2. Expression: each cell's profile is its type's baseline over the gene panel of
   ``params/calibration/expression.toml`` (mean counts per 10,000), times the factor of
   every state entry it is in (e.g. in cycle, activated), renormalised to shares.
3. Counts: a log-normal library size per cell (median per cell type, one sigma), and per
   gene a negative-binomial count (gamma-Poisson, var = mean + dispersion x mean^2) around
   library size x share.
4. Doublets: a sampled neutrophil bound to a tumor cell is one barcode holding its counts
   plus a draw of its partner's (PIC-seq's physically interacting cells); a sampled
   unbound neutrophil touching a viable tumor cell (Chebyshev distance <= 1 voxel) makes
   such a doublet with one of them with probability ``touch_doublets``. A doublet is
   labelled cell_type "neutrophil", ``pic_pair`` "tumor" (singlets: ""). A touching
   partner may also be drawn as a singlet of its own (it is not bound).

The same run, ``n``, seed, ``touch_doublets`` and expression file give the same counts.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from ..cells import tumor
from ..config.errors import ParameterError
from ..config.params import params_dir, read_toml
from .anndata import CELL_TYPE_NAMES, Run

__all__ = ["Expression", "StateEffect", "load_expression", "default_expression_path",
           "capturable", "virtual_experiment", "mapping_toml"]

CELL_TYPES = tuple(CELL_TYPE_NAMES.values())
#: the export's per-agent flags a state entry's ``when`` may name besides state names
FLAGS = {"in_cycle": ("tumor_in_cycle", "tumor"), "invasive": ("invasive", "tumor"),
         "perfused": ("vessel_perfused", "endothelial")}
#: ``obs`` columns that hold the simulation's truth behind each barcode (not data)
TRUTH = ("sim_agent", "sim_state", "sim_in_cycle", "sim_partner")


@dataclass(frozen=True)
class StateEffect:
    """Cells of ``cell_type`` in any of ``when`` (state names or :data:`FLAGS`) have
    ``genes`` multiplied by ``factor``."""

    name: str
    cell_type: str
    when: tuple[str, ...]
    genes: tuple[str, ...]
    factor: float


@dataclass(frozen=True)
class Expression:
    """The expression model: ``baseline`` (cell types x genes, mean counts per 10,000 in the
    baseline state, ambient level where a type does not express a gene), ``roles`` (per
    gene), ``states``, library size (``library_median`` per type, counts; ``library_sigma``,
    of log counts) and the negative-binomial ``dispersion``; ``digest`` of the file."""

    path: Path
    baseline: pd.DataFrame
    roles: pd.Series
    states: tuple[StateEffect, ...]
    library_median: dict[str, float]
    library_sigma: float
    dispersion: float
    digest: str

    @property
    def genes(self) -> list[str]:
        return list(self.baseline.columns)


def default_expression_path() -> Path:
    """params/calibration/expression.toml (installed or checkout)."""
    return params_dir() / "calibration" / "expression.toml"


def load_expression(path: str | Path | None = None) -> Expression:
    """Read and check an expression file (default :func:`default_expression_path`); any
    problem is a :class:`~sim.config.errors.ParameterError` naming the file and key."""
    path = Path(path) if path is not None else default_expression_path()
    raw = read_toml(path)
    try:
        genes = raw["genes"]
        ambient = _number(path, "counts.ambient", raw["counts"]["ambient"], low=0.0)
        dispersion = _number(path, "counts.dispersion", raw["counts"]["dispersion"], low=0.0,
                             open_low=True)
        sigma = _number(path, "library.sigma", raw["library"]["sigma"], low=0.0)
        median = {t: _number(path, f"library.median.{t}", raw["library"]["median"][t],
                             low=0.0, open_low=True) for t in CELL_TYPES}
        states = tuple(_state(path, i, s, genes) for i, s in enumerate(raw.get("states", [])))
    except KeyError as exc:
        raise ParameterError(f"{path}: missing key {exc.args[0]!r}") from None
    baseline = pd.DataFrame(
        {g: [_number(path, f"genes.{g}.{t}", spec.get(t, ambient), low=0.0) for t in CELL_TYPES]
         for g, spec in genes.items()}, index=pd.Index(CELL_TYPES, name="cell_type"))
    baseline = baseline.where(baseline > 0, ambient)
    roles = pd.Series({g: str(spec.get("role", "")) for g, spec in genes.items()}, name="role")
    return Expression(path, baseline, roles, states, median, sigma, dispersion,
                      hashlib.sha256(path.read_bytes()).hexdigest()[:16])


def _number(path: Path, key: str, value: Any, *, low: float, open_low: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or value < low or (open_low and value == low):
        bound = f"> {low:g}" if open_low else f">= {low:g}"
        raise ParameterError(f"{path}: {key} = {value!r}: expected a number {bound}")
    return float(value)


def _state(path: Path, i: int, spec: dict, genes: dict) -> StateEffect:
    where = f"states[{i}] ({spec.get('name', 'unnamed')})"
    if spec["cell_type"] not in CELL_TYPES:
        raise ParameterError(f"{path}: {where}.cell_type = {spec['cell_type']!r}: expected one "
                             f"of {', '.join(CELL_TYPES)}")
    unknown = [g for g in spec["genes"] if g not in genes]
    if unknown:
        raise ParameterError(f"{path}: {where}.genes: {', '.join(unknown)} not in [genes]")
    return StateEffect(str(spec.get("name", "")), spec["cell_type"], tuple(spec["when"]),
                       tuple(spec["genes"]),
                       _number(path, f"{where}.factor", spec["factor"], low=0.0))


#: the tissue a virtual experiment dissociates, by default: the tumor and this much
#: around it (um), as a resected tumor with its margin (assumed)
MARGIN_UM = 100.0


def in_tumor(run: Run, margin_um: float = MARGIN_UM) -> np.ndarray:
    """Per agent: its voxel lies within ``margin_um`` (Euclidean, voxel centres) of a voxel
    holding a viable tumor cell."""
    from scipy.ndimage import distance_transform_edt

    x, y = run.state["agent_x"], run.state["agent_y"]
    viable = (run.cell_type == "tumor") & np.isin(run.state_name, tumor.STATES[:tumor.HYPOXIC + 1])
    shape = run.state[next(k for k in run.state if k.startswith("field_"))].shape
    mask = np.ones(shape, bool)
    mask[x[viable], y[viable]] = False  # distance_transform_edt: distance to the nearest False
    if viable.any():
        distance_um = distance_transform_edt(mask) * run.voxel_um
    else:
        distance_um = np.full(shape, np.inf)
    return distance_um[x, y] <= margin_um


def capturable(run: Run, window: bool = False, margin_um: float = MARGIN_UM) -> np.ndarray:
    """The units a dissociation can capture, each by one agent index: the agents of the
    tumor and its margin (:func:`in_tumor`; every agent with ``window``), less dead
    (necrotic or apoptotic) tumor cells and the tumor cells bound by a neutrophil, which
    come out with their neutrophil (the unit of a bound pair is its neutrophil)."""
    tumor_rows = run.cell_type == "tumor"
    dead = np.isin(run.state_name, [tumor.STATES[tumor.NECROTIC], tumor.STATES[tumor.APOPTOTIC]])
    paired = np.zeros(run.n, bool)
    paired[run.partner[run.partner >= 0]] = True
    taken = np.ones(run.n, bool) if window else in_tumor(run, margin_um)
    return np.flatnonzero(taken & ~(tumor_rows & (dead | paired)))


def dissociate(run: Run, n: int, rng: np.random.Generator, window: bool = False,
               margin_um: float = MARGIN_UM) -> np.ndarray:
    """``n`` agent indices drawn without replacement from :func:`capturable`."""
    pool = capturable(run, window, margin_um)
    if n > len(pool):
        where = "the window" if window else f"the tumor and {margin_um:g} um around it"
        raise ParameterError(
            f"--scrna {n}: {run.path} has {len(pool)} units a dissociation of {where} can "
            f"capture (cells less dead tumor cells and the tumor cells bound in pairs); "
            f"ask for at most {len(pool)}")
    return rng.choice(pool, size=n, replace=False)


def touching_tumor(run: Run, agent: int) -> np.ndarray:
    """Viable tumor agents within one voxel (Chebyshev) of ``agent``, in index order."""
    x, y = run.state["agent_x"], run.state["agent_y"]
    near = (np.abs(x - x[agent]) <= 1) & (np.abs(y - y[agent]) <= 1)
    rows = np.flatnonzero(near & (run.cell_type == "tumor"))
    return rows[np.isin(run.state_name[rows], tumor.STATES[:tumor.HYPOXIC + 1])]


def partners(run: Run, cells: np.ndarray, touch_doublets: float,
             rng: np.random.Generator) -> np.ndarray:
    """Per sampled cell, the tumor agent that comes out in its barcode (-1: a singlet):
    a bound neutrophil's partner; for an unbound neutrophil touching viable tumor cells,
    one of them (uniformly) with probability ``touch_doublets``."""
    out = run.partner[cells].copy()
    if touch_doublets <= 0:
        return out
    for j in np.flatnonzero((run.cell_type[cells] == "neutrophil") & (out < 0)):
        near = touching_tumor(run, cells[j])
        if len(near) and rng.random() < touch_doublets:
            out[j] = near[rng.integers(len(near))]
    return out


def in_state(run: Run, agents: np.ndarray, when: tuple[str, ...]) -> np.ndarray:
    """Per agent: its state is one of ``when``, or one of the :data:`FLAGS` in ``when`` is
    true for it."""
    hit = np.isin(run.state_name[agents], [w for w in when if w not in FLAGS])
    for w in when:
        if w in FLAGS:
            key, cell_type = FLAGS[w]
            hit |= run.per_agent(key, cell_type)[agents]
    return hit


def profiles(run: Run, agents: np.ndarray, expr: Expression) -> np.ndarray:
    """(len(agents), genes): each agent's expected share of its counts per gene."""
    types = run.cell_type[agents]
    prof = expr.baseline.loc[types].to_numpy(dtype=np.float64, copy=True)
    genes = {g: i for i, g in enumerate(expr.genes)}
    for effect in expr.states:
        rows = np.flatnonzero((types == effect.cell_type) & in_state(run, agents, effect.when))
        cols = [genes[g] for g in effect.genes]
        prof[np.ix_(rows, cols)] *= effect.factor
    return prof / prof.sum(axis=1, keepdims=True)


def draw_counts(run: Run, agents: np.ndarray, expr: Expression,
                rng: np.random.Generator) -> np.ndarray:
    """(len(agents), genes) int64 counts: log-normal library sizes around the type's median,
    negative-binomial (gamma-Poisson) counts around library size x share."""
    median = np.array([expr.library_median[t] for t in run.cell_type[agents]])
    library = median * np.exp(expr.library_sigma * rng.standard_normal(len(agents)))
    mean = library[:, None] * profiles(run, agents, expr)
    k = 1.0 / expr.dispersion
    return rng.poisson(rng.gamma(k, mean / k))


def virtual_experiment(run: Run, n: int, seed: int, *, touch_doublets: float = 0.0,
                       expression: Expression | None = None, window: bool = False,
                       margin_um: float = MARGIN_UM):
    """The AnnData of ``n`` barcodes (module docstring): integer counts in ``X`` (CSR),
    ``obs`` cell_type, stage, sample, pic_pair and the truth (:data:`TRUTH`), ``var`` role,
    ``uns['virtual_scrna']`` what was drawn from what."""
    import anndata as ad

    expr = expression if expression is not None else load_expression()
    rng = np.random.default_rng(seed)
    cells = dissociate(run, n, rng, window, margin_um)
    partner = partners(run, cells, touch_doublets, rng)
    counts = draw_counts(run, cells, expr, rng)
    pairs = np.flatnonzero(partner >= 0)
    counts[pairs] += draw_counts(run, partner[pairs], expr, rng)
    sample = f"seed{run.seed}"
    obs = pd.DataFrame({
        "cell_type": pd.Categorical(run.cell_type[cells], categories=CELL_TYPES),
        "stage": pd.Categorical([run.stage] * n),
        "sample": pd.Categorical([sample] * n),
        "pic_pair": pd.Categorical(np.where(partner >= 0, "tumor", ""), categories=["", "tumor"]),
        "sim_agent": cells.astype(np.int64),
        "sim_state": pd.Categorical(run.state_name[cells]),
        "sim_in_cycle": run.per_agent("tumor_in_cycle", "tumor")[cells],
        "sim_partner": partner,
    }, index=pd.Index([f"{run.stage}_{sample}_c{i}" for i in range(n)], name="barcode"))
    var = pd.DataFrame({"role": expr.roles.loc[expr.genes].to_numpy()},
                       index=pd.Index(expr.genes, name="gene"))
    uns = {"virtual_scrna": {
        "run_dir": str(run.path.resolve()), "run_seed": run.seed,
        "params_digest": run.params_digest(), "stage": run.stage, "time_h": run.time_h,
        "n_cells": n, "seed": int(seed), "touch_doublets": float(touch_doublets),
        "doublets": int(len(pairs)),
        "captured_from": int(len(capturable(run, window, margin_um))),
        "tissue": "window" if window else f"tumor and {margin_um:g} um around it",
        "expression_file": str(expr.path.resolve()), "expression_digest": expr.digest,
        "truth_columns": list(TRUTH),
    }}
    return ad.AnnData(X=sparse.csr_matrix(counts.astype(np.int32)), obs=obs, var=var, uns=uns)


def mapping_toml(reference_stage: str = "early") -> str:
    """The mapping file ``neutrosim calibrate`` reads with a virtual experiment: obs keys,
    and the identity mapping of cell types and stages."""
    lines = ['cell_type_key = "cell_type"', 'stage_key = "stage"', 'sample_key = "sample"',
             'doublet_key = "pic_pair"', f'reference_stage = "{reference_stage}"',
             "", "[cell_types]", *(f'{t} = "{t}"' for t in CELL_TYPES),
             "", "[stages]", 'advanced = "advanced"', 'early = "early"', ""]
    return "\n".join(lines)
