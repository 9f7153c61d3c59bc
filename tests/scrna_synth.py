"""A synthetic mouse mammary tumor single-cell dataset with planted values, and writers for
every input format of ``neutrosim calibrate`` (tests only; independent of sim.calibration).

Generative model (all draws from ``numpy.random.default_rng(planted.seed)``)
-----------------------------------------------------------------------------
Cell types: the model's ``tumor``, ``neutrophil``, ``macrophage``, ``endothelial`` and
``other``, labelled in ``obs["cell_type"]`` as ``CELL_TYPE_LABELS`` ("Tumor epithelial",
"Neutrophils", "Macrophages", "Endothelial", "Fibroblasts").

Mice and cells. For each dataset stage label ``d`` (a key of ``planted.stages``; its model
stage ``s = planted.stages[d]``) there are ``mice_per_stage`` mice, named ``f"{d} m{i}"``
(i = 1, 2, ...). Mouse m draws its number of rows ``n_m ~ Poisson(cells_per_mouse)``, its
composition ``p_m ~ Dirichlet(CONCENTRATION x composition[s])`` (types with fraction 0 get
none) and its rows per type ``~ Multinomial(n_m, p_m)``. So the expected fraction of a
stage's rows labelled with a type is ``composition[s][type]``, with mouse-to-mouse spread
(sd about sqrt(f (1 - f) / CONCENTRATION)). Every row is one barcode; cell ids
``c000000``, ``c000001``, ... in row order (by stage label, mouse, type).

States. Each programme P of ``programmes.toml`` belongs to one cell type; a cell of that
type at model stage s is in the state with probability ``programme_fraction[P][s]``
(independently per cell; 0 for a programme the planted values do not name). The truth is
``Dataset.states`` (rows x programmes, bool; for a doublet, its neutrophil).

PIC-seq doublets. Each neutrophil row at model stage s is bound with probability
``bound_fraction[s]``: its counts are then the sum of that neutrophil's counts and those of
one extra tumor cell drawn from the tumor model at stage s (its own library size and
states); ``obs["pic_pair"]`` is "Tumor epithelial" for it, "" for every singlet. The extra
tumor cell is not a row of its own: composition counts rows by their label.

Expression. A cell of type t at model stage s has an expected share ``q_g`` of its UMIs in
gene g (shares sum to 1), stated in counts per 10,000 (CP10K = 10,000 q_g):

* panel genes (every gene of ``programmes.toml`` and ``axes.toml``): the largest of its
  roles in t: ``SIGNAL_CP10K`` (5) for a ligand of an axis whose senders include t and for
  a receptor subunit of an axis whose receiver is t; ``PROGRAMME_CP10K`` (2) for a gene of
  a programme of t; ``LEAK_CP10K`` (0.2) otherwise.
* ligands in their senders at the model stage "advanced" are multiplied by
  ``ligand_fold[gene]`` (1 for genes it does not name and at every other stage).
* a cell in a programme's state has that programme's genes multiplied by ``RAISE`` (8).
  Where such a gene is also a ligand or receptor of t, its level in t at stage s is divided
  by ``1 + (RAISE - 1) x programme_fraction[P][s]``, so that the mean share over the
  type's cells stays exactly the planted one: the mean CP10K of ligand g in sender t is
  ``SIGNAL_CP10K`` at every stage but "advanced", ``SIGNAL_CP10K x ligand_fold[g]`` there;
  of receptor subunit g in receiver t, ``SIGNAL_CP10K`` everywhere.
  ``Dataset.expected_cp10k`` gives these means for any type and stage.
* background genes (``HOUSEKEEPING`` and every type's ``MARKERS``) share the rest,
  ``1 - sum of the panel shares``, in proportion to fixed weights: housekeeping weights
  from 200 down to 10 (geometric), a type's own markers 60, other types' markers 0.2.

Counts: library size ``L ~ LogNormal(log(LIBRARY_MEDIAN[t]), LIBRARY_SIGMA)`` per cell
(medians 1,500 for neutrophils to 4,000 for tumor cells, ~3,000 over all), then per gene
``count ~ NegativeBinomial(mean = L q_g, dispersion phi_g)`` (variance mean + phi mean^2,
drawn as Poisson(Gamma(1/phi, mean phi))), ``phi_g ~ Uniform(0.2, 0.5)`` once per gene.
``counts`` is the observed matrix (int32 CSR, rows x genes); the observed library size of a
row is its sum.
"""

from __future__ import annotations

import gzip
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params" / "calibration"

MODEL_TYPES = ("tumor", "neutrophil", "macrophage", "endothelial", "other")
CELL_TYPE_LABELS = {"tumor": "Tumor epithelial", "neutrophil": "Neutrophils",
                    "macrophage": "Macrophages", "endothelial": "Endothelial",
                    "other": "Fibroblasts"}
HOUSEKEEPING = ("Malat1", "Actb", "Tmsb4x", "Eef1a1", "Gapdh", "B2m", "Rplp0", "Rpl13",
                "Rps27", "Rps19", "Ftl1", "Fth1", "Tpt1", "Rpl32", "Rps12", "Ppia",
                "Hsp90ab1", "Ubb", "mt-Co1", "mt-Nd1")
MARKERS = {"tumor": ("Krt8", "Krt18", "Epcam", "Cdh1"),
           "neutrophil": ("S100a8", "S100a9", "Retnlg", "Ly6g"),
           "macrophage": ("Adgre1", "Cd68", "C1qa", "Lyz2"),
           "endothelial": ("Pecam1", "Cdh5", "Emcn", "Cldn5"),
           "other": ("Col1a1", "Col1a2", "Dcn", "Pdgfra")}
SIGNAL_CP10K = 5.0       # ligand in a sender, receptor subunit in the receiver
PROGRAMME_CP10K = 2.0    # programme gene in its cell type, out of the state
LEAK_CP10K = 0.2         # panel gene in any other cell type
RAISE = 8.0              # programme genes in a cell in the state
CONCENTRATION = 300.0    # Dirichlet concentration of a mouse's composition
LIBRARY_MEDIAN = {"tumor": 4000.0, "neutrophil": 1500.0, "macrophage": 3500.0,
                  "endothelial": 3000.0, "other": 3000.0}  # UMI per cell
LIBRARY_SIGMA = 0.4      # sd of log library size
DISPERSION = (0.2, 0.5)  # range of the per-gene NB dispersion phi


def _default_stages() -> dict[str, str]:
    return {"early carcinoma": "early", "late carcinoma": "advanced"}


def _default_composition() -> dict[str, dict[str, float]]:
    return {"early": {"tumor": 0.50, "neutrophil": 0.08, "macrophage": 0.17,
                      "endothelial": 0.10, "other": 0.15},
            "advanced": {"tumor": 0.45, "neutrophil": 0.20, "macrophage": 0.15,
                         "endothelial": 0.08, "other": 0.12}}


def _default_folds() -> dict[str, float]:
    return {"Cxcl1": 2.0, "Vegfa": 4.0, "Osm": 8.0, "Csf1": 1.0}


def _default_programmes() -> dict[str, dict[str, float]]:
    return {"tumor_cycling": {"early": 0.30, "advanced": 0.15},
            "neutrophil_activated": {"early": 0.10, "advanced": 0.45},
            "macrophage_activated": {"early": 0.20, "advanced": 0.50}}


def _default_bound() -> dict[str, float]:
    return {"early": 0.05, "advanced": 0.20}


@dataclass
class Planted:
    """The values planted in a synthetic dataset (see the module docstring)."""

    stages: dict[str, str] = field(default_factory=_default_stages)
    composition: dict[str, dict[str, float]] = field(default_factory=_default_composition)
    ligand_fold: dict[str, float] = field(default_factory=_default_folds)
    programme_fraction: dict[str, dict[str, float]] = field(default_factory=_default_programmes)
    bound_fraction: dict[str, float] = field(default_factory=_default_bound)
    mice_per_stage: int = 3
    cells_per_mouse: int = 700
    seed: int = 0


@dataclass
class Panel:
    """The calibration gene panel read from programmes.toml and axes.toml."""

    programmes: dict[str, tuple[str, list[str]]]       # name -> (cell type, genes)
    ligands: dict[str, set[str]]                       # ligand -> its sender types
    receptors: dict[str, set[str]]                     # receptor subunit -> receiver types

    @property
    def genes(self) -> list[str]:
        genes = [g for _, gs in self.programmes.values() for g in gs]
        genes += list(self.ligands) + list(self.receptors)
        return list(dict.fromkeys(genes))


def read_panel(folder: Path = PARAMS) -> Panel:
    """The programmes and axes of ``folder``/programmes.toml and axes.toml."""
    programmes_file, axes_file = folder / "programmes.toml", folder / "axes.toml"
    for path in (programmes_file, axes_file):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the synthetic dataset needs the calibration "
                                    "gene panel")
    programmes = {name: (t["cell_type"], list(t["genes"]))
                  for name, t in tomllib.loads(programmes_file.read_text()).items()}
    ligands: dict[str, set[str]] = {}
    receptors: dict[str, set[str]] = {}
    for axis in tomllib.loads(axes_file.read_text()).values():
        for ligand, subunits in axis["pairs"]:
            ligands.setdefault(ligand, set()).update(axis["senders"])
            for subunit in subunits:
                receptors.setdefault(subunit, set()).add(axis["receiver"])
    return Panel(programmes, ligands, receptors)


@dataclass
class Dataset:
    """A synthetic single-cell dataset and the truth it was drawn from."""

    counts: sp.csr_matrix        # int32 (rows, genes): UMI counts
    genes: list[str]
    obs: pd.DataFrame            # index cell id; cell_type, stage, mouse, pic_pair
    planted: Planted
    panel: Panel
    states: pd.DataFrame         # bool (rows, programmes): the row's (neutrophil's) states
    model: _Model = field(repr=False)

    @property
    def cells(self) -> list[str]:
        return list(self.obs.index)

    def expected_cp10k(self, cell_type: str, model_stage: str) -> pd.Series:
        """Mean CP10K of every panel gene over singlets of model ``cell_type`` at
        ``model_stage`` (expectation over states)."""
        return self.model.expected_cp10k(cell_type, model_stage)


class _Model:
    """Expected shares per (model stage, type, gene) and the programmes' multipliers."""

    def __init__(self, planted: Planted, panel: Panel, rng: np.random.Generator):
        self.planted, self.panel = planted, panel
        self.stages = list(dict.fromkeys(planted.stages.values()))
        self.programmes = list(panel.programmes)
        background = list(HOUSEKEEPING) + [g for t in MODEL_TYPES for g in MARKERS[t]]
        self.genes = background + [g for g in panel.genes if g not in background]
        self.column = {g: i for i, g in enumerate(self.genes)}
        self.is_panel = np.isin(self.genes, panel.genes)
        self.dispersion = rng.uniform(*DISPERSION, size=len(self.genes))
        self._check()
        self.panel_share = self._panel_shares()
        self.background = self._background()

    def _check(self) -> None:
        p = self.planted
        unknown = set(p.programme_fraction) - set(self.programmes)
        if unknown:
            raise ValueError(f"programme_fraction names programmes not in the panel: {unknown}")
        not_ligands = set(p.ligand_fold) - set(self.panel.ligands)
        if not_ligands:
            raise ValueError(f"ligand_fold names genes that are not ligands: {not_ligands}")
        for stage in self.stages:
            total = sum(p.composition[stage].values())
            if abs(total - 1) > 1e-9 or set(p.composition[stage]) - set(MODEL_TYPES):
                raise ValueError(f"composition[{stage!r}] must give fractions of "
                                 f"{MODEL_TYPES} summing to 1")

    def fraction(self, programme: str, stage: str) -> float:
        return self.planted.programme_fraction.get(programme, {}).get(stage, 0.0)

    def members(self, programme: str) -> np.ndarray:
        """Bool over genes: the programme's genes."""
        return np.isin(self.genes, self.panel.programmes[programme][1])

    def _panel_shares(self) -> np.ndarray:
        """(stages, types, genes): panel shares of a cell out of every state (0 off-panel)."""
        share = np.zeros((len(self.stages), len(MODEL_TYPES), len(self.genes)))
        for k, t in enumerate(MODEL_TYPES):
            signal = {g for g, ts in self.panel.ligands.items() if t in ts}
            signal |= {g for g, ts in self.panel.receptors.items() if t in ts}
            own = {g for tt, gs in self.panel.programmes.values() if tt == t for g in gs}
            for g in self.panel.genes:
                cp10k = max(SIGNAL_CP10K if g in signal else 0.0,
                            PROGRAMME_CP10K if g in own else 0.0, LEAK_CP10K)
                for i, s in enumerate(self.stages):
                    level = cp10k
                    if s == "advanced" and t in self.panel.ligands.get(g, ()):
                        level *= self.planted.ligand_fold.get(g, 1.0)
                    if g in signal:
                        for name, (tt, gs) in self.panel.programmes.items():
                            if tt == t and g in gs:
                                level /= 1 + (RAISE - 1) * self.fraction(name, s)
                    share[i, k, self.column[g]] = level / 1e4
        return share

    def _background(self) -> np.ndarray:
        """(types, genes): how the non-panel share is split (rows sum to 1)."""
        weights = np.zeros((len(MODEL_TYPES), len(self.genes)))
        housekeeping = np.geomspace(200, 10, len(HOUSEKEEPING))
        for k, t in enumerate(MODEL_TYPES):
            weights[k, :len(HOUSEKEEPING)] = housekeeping
            for tt in MODEL_TYPES:
                for g in MARKERS[tt]:
                    weights[k, self.column[g]] = 60.0 if tt == t else 0.2
        return weights / weights.sum(axis=1, keepdims=True)

    def shares(self, stage: np.ndarray, kind: np.ndarray, states: np.ndarray) -> np.ndarray:
        """(cells, genes) expected shares of cells of model stage/type indices in ``states``
        (cells x programmes, bool)."""
        share = self.panel_share[stage, kind].copy()
        for j, name in enumerate(self.programmes):
            share[np.ix_(states[:, j], self.members(name))] *= RAISE
        rest = 1.0 - share.sum(axis=1)
        return share + rest[:, None] * self.background[kind]

    def draw_states(self, stage: np.ndarray, kind: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
        """(cells, programmes) bool: each cell of a programme's type in its state with the
        planted fraction of its stage."""
        states = np.zeros((len(stage), len(self.programmes)), dtype=bool)
        for j, name in enumerate(self.programmes):
            owner = MODEL_TYPES.index(self.panel.programmes[name][0])
            p = np.array([self.fraction(name, s) for s in self.stages])[stage]
            states[:, j] = (kind == owner) & (rng.random(len(stage)) < p)
        return states

    def draw_counts(self, stage: np.ndarray, kind: np.ndarray, states: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
        """(cells, genes) int: negative-binomial counts around library size x share."""
        medians = np.array([LIBRARY_MEDIAN[t] for t in MODEL_TYPES])[kind]
        library = medians * np.exp(LIBRARY_SIGMA * rng.standard_normal(len(kind)))
        mean = library[:, None] * self.shares(stage, kind, states)
        shape = 1.0 / self.dispersion
        return rng.poisson(rng.gamma(shape, mean / shape)).astype(np.int32)

    def expected_cp10k(self, cell_type: str, model_stage: str) -> pd.Series:
        i, k = self.stages.index(model_stage), MODEL_TYPES.index(cell_type)
        mean = self.panel_share[i, k].copy()
        for name in self.programmes:
            if self.panel.programmes[name][0] == cell_type:
                raised = self.members(name)
                mean[raised] *= 1 + (RAISE - 1) * self.fraction(name, model_stage)
        return pd.Series(1e4 * mean[self.is_panel], index=np.array(self.genes)[self.is_panel])


def make_dataset(planted: Planted | None = None, panel: Panel | None = None) -> Dataset:
    """Draw a dataset with ``planted`` values (defaults: ``Planted()``) over ``panel``
    (default: the repository's params/calibration)."""
    planted = planted or Planted()
    panel = panel or read_panel()
    rng = np.random.default_rng(planted.seed)
    model = _Model(planted, panel, rng)
    obs, stage, kind = _rows(planted, model, rng)
    states = model.draw_states(stage, kind, rng)
    counts = model.draw_counts(stage, kind, states, rng)
    neutrophil = MODEL_TYPES.index("neutrophil")
    bound_p = np.array([planted.bound_fraction.get(s, 0.0) for s in model.stages])[stage]
    bound = (kind == neutrophil) & (rng.random(len(kind)) < bound_p)
    if bound.any():
        partner_kind = np.full(bound.sum(), MODEL_TYPES.index("tumor"))
        partner_states = model.draw_states(stage[bound], partner_kind, rng)
        counts[bound] += model.draw_counts(stage[bound], partner_kind, partner_states, rng)
    obs["pic_pair"] = np.where(bound, CELL_TYPE_LABELS["tumor"], "")
    return Dataset(counts=sp.csr_matrix(counts), genes=list(model.genes), obs=obs,
                   planted=planted, panel=panel,
                   states=pd.DataFrame(states, index=obs.index, columns=model.programmes),
                   model=model)


def _rows(planted: Planted, model: _Model, rng: np.random.Generator):
    """(obs, model stage index, type index) of every row: mice, then types per mouse."""
    labels, mice, stage, kind = [], [], [], []
    for label, model_stage in planted.stages.items():
        i = model.stages.index(model_stage)
        fractions = np.array([planted.composition[model_stage].get(t, 0.0) for t in MODEL_TYPES])
        present = fractions > 0
        for m in range(planted.mice_per_stage):
            p = np.zeros(len(MODEL_TYPES))
            p[present] = rng.dirichlet(CONCENTRATION * fractions[present])
            n = rng.multinomial(rng.poisson(planted.cells_per_mouse), p)
            types = np.repeat(np.arange(len(MODEL_TYPES)), n)
            labels += [label] * len(types)
            mice += [f"{label} m{m + 1}"] * len(types)
            stage += [i] * len(types)
            kind += list(types)
    kind = np.array(kind, dtype=int)
    obs = pd.DataFrame({"cell_type": [CELL_TYPE_LABELS[MODEL_TYPES[k]] for k in kind],
                        "stage": labels, "mouse": mice},
                       index=pd.Index([f"c{i:06d}" for i in range(len(kind))], dtype=object))
    return obs, np.array(stage, dtype=int), kind


# ---------------------------------------------------------------- writers

def _log_normalised(counts: sp.csr_matrix) -> sp.csr_matrix:
    """log1p(counts per 10,000): what an analysed X holds instead of counts."""
    library = np.asarray(counts.sum(axis=1)).ravel()
    scaled = sp.diags(1e4 / np.maximum(library, 1)) @ counts
    return sp.csr_matrix(scaled).log1p().astype(np.float32)


def write_h5ad(ds: Dataset, path: Path, *, x: str = "csr", counts_in: str = "X") -> Path:
    """An .h5ad file. ``x``: "csr", "csc" or "dense" storage of the matrices; ``counts_in``:
    "X" (X holds the counts, float32), "layer" (layers["counts"], X log-normalised) or "raw"
    (raw.X, X log-normalised)."""
    import anndata

    def stored(m: sp.csr_matrix):
        return {"csr": m, "csc": m.tocsc(), "dense": m.toarray()}[x]

    counts = ds.counts.astype(np.float32)
    var = pd.DataFrame(index=pd.Index(ds.genes, dtype=object))
    obs = ds.obs.copy()
    if counts_in == "X":
        adata = anndata.AnnData(X=stored(counts), obs=obs, var=var)
    elif counts_in == "layer":
        adata = anndata.AnnData(X=stored(_log_normalised(counts)), obs=obs, var=var,
                                layers={"counts": stored(counts)})
    elif counts_in == "raw":
        adata = anndata.AnnData(X=stored(counts), obs=obs, var=var)
        adata.raw = adata.copy()
        adata.X = stored(_log_normalised(counts))
    else:
        raise ValueError(f"counts_in = {counts_in!r}: expected 'X', 'layer' or 'raw'")
    path = Path(path)
    adata.write_h5ad(path)
    return path


def _features(ds: Dataset, antibody: bool):
    """(ids, names, types, genes x barcodes int matrix) for 10x output; ``antibody`` adds
    one "Antibody Capture" feature with counts (not a gene)."""
    ids = [f"ENSMUSG{i:011d}" for i in range(len(ds.genes))]
    names, types = list(ds.genes), ["Gene Expression"] * len(ds.genes)
    matrix = ds.counts.T.tocsc()
    if antibody:
        extra = sp.csr_matrix(np.full((1, matrix.shape[1]), 7, dtype=np.int32))
        matrix = sp.vstack([matrix, extra]).tocsc()
        ids, names, types = ids + ["CD45"], names + ["CD45_TotalSeqB"], types + ["Antibody Capture"]
    return ids, names, types, matrix


def write_10x_mtx(ds: Dataset, folder: Path, *, version: int = 3, antibody: bool = False) -> Path:
    """A Cell Ranger matrix folder: v3 (gzipped, features.tsv.gz with feature types) or v2
    (plain, genes.tsv)."""
    from scipy.io import mmwrite

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids, names, types, matrix = _features(ds, antibody)
    if version == 3:
        features = pd.DataFrame({"id": ids, "name": names, "type": types})
        opener, gz, feature_file = gzip.open, ".gz", "features.tsv"
    else:
        features = pd.DataFrame({"id": ids, "name": names})
        opener, gz, feature_file = open, "", "genes.tsv"
    with opener(folder / f"matrix.mtx{gz}", "wb") as handle:
        mmwrite(handle, matrix)
    features.to_csv(folder / f"{feature_file}{gz}", sep="\t", header=False, index=False)
    pd.Series(ds.cells).to_csv(folder / f"barcodes.tsv{gz}", header=False, index=False)
    return folder


def write_10x_h5(ds: Dataset, path: Path, *, antibody: bool = False) -> Path:
    """A Cell Ranger v3 HDF5 file (``matrix/`` group, CSC by barcode)."""
    import h5py

    ids, names, types, matrix = _features(ds, antibody)
    path = Path(path)
    with h5py.File(path, "w") as f:
        group = f.create_group("matrix")
        group["barcodes"] = np.array(ds.cells, dtype="S")
        group["data"] = matrix.data.astype(np.int32)
        group["indices"] = matrix.indices.astype(np.int64)
        group["indptr"] = matrix.indptr.astype(np.int64)
        group["shape"] = np.array(matrix.shape, dtype=np.int32)
        features = group.create_group("features")
        features["id"] = np.array(ids, dtype="S")
        features["name"] = np.array(names, dtype="S")
        features["feature_type"] = np.array(types, dtype="S")
        features["genome"] = np.array(["mm10"] * len(ids), dtype="S")
    return path


def _separator(path: Path) -> str:
    return "," if path.name.lower().removesuffix(".gz").endswith(".csv") else "\t"


def write_metadata(ds: Dataset, path: Path) -> Path:
    """The obs table: first column ``cell_id``; csv if the name ends .csv, else tab."""
    path = Path(path)
    ds.obs.to_csv(path, sep=_separator(path), index_label="cell_id")
    return path


def write_umi_tables(ds: Dataset, folder: Path, batches: int = 2, *, suffix: str = ".txt",
                     drop_empty_genes: bool = True, gene_header: bool = True):
    """Genes x cells UMI tables, one per batch of consecutive rows (MARS-seq style), and the
    metadata table; returns (table paths, metadata path). ``drop_empty_genes``: a batch's
    table leaves out the genes with no count in it. ``gene_header``: the header row starts
    with "gene" (else it holds only the cell ids, one field short, as R writes)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for b, rows in enumerate(np.array_split(np.arange(len(ds.cells)), batches)):
        block = ds.counts[rows].T.toarray()
        table = pd.DataFrame(block, index=ds.genes, columns=np.array(ds.cells)[rows])
        if drop_empty_genes:
            table = table[block.sum(axis=1) > 0]
        path = folder / f"batch{b + 1}{suffix}"
        sep = _separator(path)
        if gene_header:
            table.to_csv(path, sep=sep, index_label="gene")
        else:
            header = sep.join(table.columns) + "\n"
            body = table.to_csv(sep=sep, header=False)
            opener = gzip.open if path.name.endswith(".gz") else open
            with opener(path, "wt") as handle:
                handle.write(header + body)
        paths.append(path)
    return paths, write_metadata(ds, folder / "metadata.tsv")
