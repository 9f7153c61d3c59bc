"""What single-cell data say about the tissue, per stage: composition, ligand-receptor
signal strengths and their fold changes, programme (state) fractions, and the fraction of
neutrophils bound to tumor cells (from PIC-seq doublets). Equations in
docs/calibration.md.

Every value is first taken per sample (biological replicate), then averaged over the
stage's samples, with the standard deviation over samples as its spread. Expression is
linear counts per 10,000 (CP10K) for signal strengths, ``log1p(CP10K)`` for programme
scores. Doublets count toward composition and the bound fraction only; expression-based
values use singlets.
"""

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .counts import CalibrationError

__all__ = ["Derived", "derive", "CP10K"]

#: counts per this many UMIs: the linear normalisation of every expression value
CP10K = 1e4
#: a mixture's two components count as two states only if its BIC beats one component's
#: by at least this much (Kass & Raftery 1995: > 10 is very strong evidence)
BIC_MARGIN = 10.0
#: a mixture is fitted to at most this many cells' scores (its two means are then known to
#: about 1% of their spread; the fit's cost grows with the cells)
MIXTURE_CELLS = 20_000


def _stat(values) -> dict:
    """Mean and sample standard deviation (ddof 1; 0 for one sample) of the finite values."""
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    if v.size == 0:
        return {"mean": math.nan, "sd": math.nan, "n_samples": 0}
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "n_samples": int(v.size)}


@dataclass
class Derived:
    """The derived values, as ``derived.json`` holds them (see :func:`derive`)."""

    stages: list[str]
    reference_stage: str
    cells: dict[str, int]
    samples: dict[str, list[str]]
    composition: dict[str, dict[str, dict]]
    signal_strengths: dict[str, dict[str, dict[str, dict]]]
    signal_fold_changes: dict[str, dict[str, dict[str, dict]]]
    programme_fractions: dict[str, dict[str, dict]]
    programme_fit: dict[str, dict]
    bound_neutrophil_fraction: dict[str, dict] | None
    pairs_used: dict[str, list[str]]
    genes_missing: list[str]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        out = dict(self.__dict__)
        if out["bound_neutrophil_fraction"] is None:
            del out["bound_neutrophil_fraction"]
        return out


def _composition(cells: pd.DataFrame, enrichment: float, types) -> dict:
    """Per stage and type, the fraction of cells (doublets count 1/enrichment toward each
    partner's type), as mean and sd over samples."""
    single = cells[cells["partner"] == ""]
    double = cells[cells["partner"] != ""]
    w = pd.concat([
        single.assign(w=1.0)[["stage", "sample", "type", "w"]],
        double.assign(w=1.0 / enrichment)[["stage", "sample", "type", "w"]],
        double.assign(w=1.0 / enrichment, type=double["partner"])[["stage", "sample", "type", "w"]],
    ])
    table = w.groupby(["stage", "sample", "type"], observed=True)["w"].sum().unstack(fill_value=0.0)
    table = table.reindex(columns=list(types), fill_value=0.0)
    frac = table.div(table.sum(axis=1), axis=0)
    return {stage: {t: _stat(frac.loc[stage][t]) for t in types}
            for stage in frac.index.get_level_values(0).unique()}


def _sample_means(expr: np.ndarray, cells: pd.DataFrame, cell_type: str) -> pd.DataFrame:
    """Mean expression of each gene (columns) over the cells of ``cell_type``, per (stage,
    sample) row."""
    mask = (cells["type"] == cell_type).to_numpy()
    sub = cells.loc[mask, ["stage", "sample"]]
    df = pd.DataFrame(expr[mask], index=pd.MultiIndex.from_frame(sub))
    return df.groupby(level=["stage", "sample"], observed=True).mean()


def _strengths(axes, expr, cells, gene_col, notes, missing) -> tuple[dict, dict]:
    """Per axis, sender and stage: the strength (sum over pairs of ligand mean in the sender
    times the least receptor-subunit mean in the receiver; per sample, then mean and sd);
    and the pairs used (those whose genes are all in the data)."""
    out, used = {}, {}
    for axis in axes:
        pairs = [(lig, rec) for lig, rec in axis.pairs
                 if lig in gene_col and all(g in gene_col for g in rec)]
        dropped = [f"{lig}-{'_'.join(rec)}" for lig, rec in axis.pairs if (lig, rec) not in pairs]
        if not pairs:
            raise CalibrationError(f"axis {axis.name!r}: no ligand-receptor pair has all its "
                                   f"genes in the data (missing: "
                                   f"{', '.join(sorted(set(missing))[:8])})")
        if dropped:
            notes.append(f"axis {axis.name}: pairs left out (a gene is not in the data): "
                         f"{', '.join(dropped)}")
        used[axis.name] = [f"{lig}-{'_'.join(rec)}" for lig, rec in pairs]
        receiver = _sample_means(expr, cells, axis.receiver)
        out[axis.name] = {}
        for sender in axis.senders:
            source = _sample_means(expr, cells, sender)
            both = source.index.intersection(receiver.index)
            s = sum(source.loc[both, gene_col[lig]].to_numpy()
                    * np.min([receiver.loc[both, gene_col[g]].to_numpy() for g in rec], axis=0)
                    for lig, rec in pairs)
            per = pd.Series(s, index=both)
            out[axis.name][sender] = {stage: _stat(per.xs(stage, level="stage"))
                                      for stage in per.index.get_level_values("stage").unique()}
    return out, used


def _fold_changes(strengths: dict, reference: str) -> dict:
    """Per axis, sender and stage: the strength's mean over the reference stage's, with
    the standard error of its log2 (delta method over the samples)."""
    out = {}
    for axis, by_sender in strengths.items():
        out[axis] = {}
        for sender, by_stage in by_sender.items():
            ref = by_stage.get(reference)
            out[axis][sender] = {}
            for stage, st in by_stage.items():
                if ref is None or not ref["mean"] > 0:
                    fc, se = math.nan, math.nan
                else:
                    fc = st["mean"] / ref["mean"]
                    terms = [(x["sd"] / x["mean"]) ** 2 / x["n_samples"]
                             for x in (st, ref) if x["mean"] > 0 and x["n_samples"]]
                    se = math.sqrt(sum(terms)) / math.log(2) if len(terms) == 2 else math.nan
                out[axis][sender][stage] = {"fold_change": fc, "log2_se": se}
    return out


def _mixture(scores: np.ndarray) -> dict:
    """Two- against one-component Gaussian mixture of programme scores (of at most
    :data:`MIXTURE_CELLS` of them, a fixed random subset): the components' means (low,
    high), and whether two states are there (BIC margin)."""
    from sklearn.mixture import GaussianMixture

    if scores.size > MIXTURE_CELLS:
        scores = np.random.default_rng(0).choice(scores, MIXTURE_CELLS, replace=False)
    x = scores.reshape(-1, 1)
    one = GaussianMixture(1, random_state=0).fit(x)
    two = GaussianMixture(2, random_state=0, n_init=3).fit(x)
    lo, hi = sorted(float(m) for m in two.means_.ravel())
    bic1, bic2 = float(one.bic(x)), float(two.bic(x))
    return {"mu_low": lo, "mu_high": hi, "bic_one": bic1, "bic_two": bic2,
            "two_states": bool(bic2 < bic1 - BIC_MARGIN and hi > lo), "cells": int(x.size)}


def _programmes(programmes, log_expr, cells, gene_col, notes) -> tuple[dict, dict]:
    """Per stage and programme, the fraction of the programme's cell type in the state
    (per sample: (mean score - mu_low) / (mu_high - mu_low), clipped to [0, 1]); and the
    mixture fit of each programme."""
    fractions: dict[str, dict] = {}
    fits = {}
    for prog in programmes:
        genes = [g for g in prog.genes if g in gene_col]
        if not genes:
            raise CalibrationError(f"programme {prog.name!r}: none of its genes is in the "
                                   f"data ({', '.join(prog.genes)})")
        if len(genes) < len(prog.genes):
            notes.append(f"programme {prog.name}: genes not in the data: "
                         f"{', '.join(g for g in prog.genes if g not in gene_col)}")
        mask = (cells["type"] == prog.cell_type).to_numpy()
        score = log_expr[mask][:, [gene_col[g] for g in genes]].mean(axis=1)
        if score.size < 10:
            raise CalibrationError(f"programme {prog.name!r}: {score.size} {prog.cell_type} "
                                   "singlets in the data; at least 10 are needed to score it")
        fit = _mixture(score)
        fit["genes"] = genes
        fits[prog.name] = fit
        per = pd.Series(score, index=pd.MultiIndex.from_frame(cells.loc[mask, ["stage", "sample"]]))
        means = per.groupby(level=["stage", "sample"], observed=True).mean()
        span = fit["mu_high"] - fit["mu_low"]
        if not fit["two_states"]:
            notes.append(f"programme {prog.name}: the scores show one state, not two (BIC "
                         f"{fit['bic_two']:.0f} with two components against {fit['bic_one']:.0f} "
                         "with one): its fractions are left undetermined")
        for stage in means.index.get_level_values("stage").unique():
            vals = means.xs(stage, level="stage").to_numpy()
            frac = (np.clip((vals - fit["mu_low"]) / span, 0.0, 1.0) if fit["two_states"]
                    else np.full(vals.size, math.nan))
            fractions.setdefault(stage, {})[prog.name] = _stat(frac)
    return fractions, fits


def _bound(cells: pd.DataFrame, enrichment: float) -> dict:
    """Per stage, the fraction of neutrophils bound to a tumor cell: neutrophil-tumor
    doublets (weighted 1/enrichment) over them plus the neutrophil singlets; per sample."""
    nt = (((cells["type"] == "neutrophil") & (cells["partner"] == "tumor"))
          | ((cells["type"] == "tumor") & (cells["partner"] == "neutrophil")))
    single = (cells["type"] == "neutrophil") & (cells["partner"] == "")
    g = pd.DataFrame({"d": nt / enrichment, "s": single.astype(float),
                      "stage": cells["stage"], "sample": cells["sample"]})
    per = g.groupby(["stage", "sample"], observed=True)[["d", "s"]].sum()
    frac = per["d"] / (per["d"] + per["s"])
    return {stage: _stat(frac.xs(stage, level="stage"))
            for stage in frac.index.get_level_values("stage").unique()}


def derive(counts, cells: pd.DataFrame, axes, programmes, mapping) -> Derived:
    """Every derived value of the dataset ``counts`` (:class:`.counts.Counts`) whose cells
    ``cells`` are labelled by :func:`.mapping.label_cells` (same index order as a subset of
    ``counts.obs``)."""
    from .mapping import MODEL_TYPES

    notes: list[str] = []
    rows = counts.obs.index.get_indexer(cells.index)
    lib = counts.library_size[rows]
    if (lib <= 0).any():
        notes.append(f"{int((lib <= 0).sum())} cells with no counts were left out")
        keep = lib > 0
        cells, rows, lib = cells[keep], rows[keep], lib[keep]
    gene_col = {g: i for i, g in enumerate(counts.genes)}
    singlet = (cells["partner"] == "").to_numpy()
    expr = counts.counts[rows[singlet]].astype(np.float64) / lib[singlet, None] * CP10K
    single_cells = cells[singlet]
    stages = [s for s in ("early", "advanced") if s in set(cells["stage"])]
    for stage in sorted(set(mapping.stages.values()) - set(stages)):
        notes.append(f"no cell of the data is in the {stage} stage: nothing is derived for it")
    if mapping.reference_stage not in stages:
        notes.append(f"the reference stage ({mapping.reference_stage}) has no cells: fold "
                     "changes, and the rates scaled by them, are left undetermined")
    composition = _composition(cells, mapping.doublet_enrichment, MODEL_TYPES)
    for stage in stages:
        absent = [t for t in MODEL_TYPES[:4] if not composition[stage][t]["mean"] > 0]
        if absent:
            raise CalibrationError(f"{mapping.path}: stage {stage!r} has no {absent[0]} cells "
                                   f"in the data (after mapping [cell_types]); every model cell "
                                   "type must be present in each calibrated stage")
    signal_genes = {g for a in axes for lig, rec in a.pairs for g in (lig, *rec)}
    for prog in programmes:
        shared = [g for g in prog.genes if g in signal_genes]
        if shared:
            notes.append(f"programme {prog.name}: {', '.join(shared)} also in an axis; their "
                         "stage-dependent levels can bias its fractions (docs/calibration.md)")
    strengths, used = _strengths(axes, expr, single_cells, gene_col, notes, counts.missing)
    fractions, fits = _programmes(programmes, np.log1p(expr), single_cells, gene_col, notes)
    bound = None
    if mapping.doublet_key:
        bound = _bound(cells, mapping.doublet_enrichment)
    return Derived(
        stages=stages, reference_stage=mapping.reference_stage,
        cells={s: int((cells["stage"] == s).sum()) for s in stages},
        samples={s: sorted(cells.loc[cells["stage"] == s, "sample"].unique().tolist())
                 for s in stages},
        composition=composition, signal_strengths=strengths,
        signal_fold_changes=_fold_changes(strengths, mapping.reference_stage),
        programme_fractions=fractions, programme_fit=fits,
        bound_neutrophil_fraction=bound, pairs_used=used,
        genes_missing=list(counts.missing), notes=notes)
