"""The calibration folder: overlay, rules table, derived values, report, figures and
provenance, filled in a temporary folder and renamed into place once the overlay has been
loaded by the model's own parameter loader for every calibrated stage."""

import json
from pathlib import Path

import numpy as np

from ..runs.destination import MARK
from ..runs.output import write_atomic
from .parameters import write_overlay, write_rules

__all__ = ["write_outputs"]

TYPES = ("tumor", "neutrophil", "macrophage", "endothelial", "other")


def _check_loads(folder: Path, stages) -> None:
    """Load the overlay (and the rules table) as ``neutrosim run`` would, for each stage:
    a value the model refuses fails here, before anything is in place."""
    from ..config.params import load_params

    for stage in stages:
        option = [(f"--stage {stage}", {"initial.stage": stage})]
        load_params(folder / "params.toml", options=option)
        load_params(folder / "params.toml", options=option, rules=folder / "rules.csv")


def _pm(stat: dict, digits: int = 3) -> str:
    mean, sd = stat.get("mean"), stat.get("sd")
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}" if sd is not None else f"{mean:.{digits}f}"


def _table(headers, rows) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out + [""]


def _report(derived: dict, cal, source: str, liana: dict, stages) -> str:
    ref = derived["reference_stage"]
    lines = ["# Calibration report", "",
             f"Data: {source}.", "",
             "Measured in the data (mean ± sd over samples) are the composition, the "
             "signal strengths and fold changes, the programme fractions and the bound "
             "fraction. The parameters below are derived from them through the relations of "
             "docs/calibration.md (steady states of the model's rules): a run with them "
             "predicts the tissue; it does not reproduce the data by construction.", "",
             "## Cells", ""]
    lines += _table(["stage", "cells", "samples"],
                    [[s, derived["cells"][s], len(derived["samples"][s])] for s in stages])
    lines += ["## Composition (fraction of cells)", ""]
    lines += _table(["stage", *TYPES],
                    [[s, *(_pm(derived["composition"][s][t]) for t in TYPES)] for s in stages])
    lines += [f"## Signals (strength: ligand x receptor, CP10K²; fold change against {ref})", ""]
    rows = []
    for axis, by_sender in derived["signal_strengths"].items():
        for sender, by_stage in by_sender.items():
            for s in stages:
                fc = derived["signal_fold_changes"][axis][sender].get(s, {})
                f, se = fc.get("fold_change"), fc.get("log2_se")
                rows.append([axis, sender, s, _pm(by_stage.get(s, {}), 2),
                             "n/a" if f is None else f"{f:.3g}",
                             "n/a" if se is None else f"{se:.2f}"])
    lines += _table(["axis", "sender", "stage", "strength", "fold change", "log2 SE"], rows)
    lines += ["Pairs used: " + "; ".join(f"{a}: {', '.join(p)}"
                                         for a, p in derived["pairs_used"].items()), ""]
    lines += ["## Programme fractions", ""]
    progs = list(derived["programme_fit"])
    lines += _table(["stage", *progs],
                    [[s, *(_pm(derived["programme_fractions"].get(s, {}).get(p, {})) for p in progs)]
                     for s in stages])
    lines += _table(["programme", "genes", "mu low", "mu high", "two states (BIC)"],
                    [[p, ", ".join(f["genes"]), f"{f['mu_low']:.3f}", f"{f['mu_high']:.3f}",
                      "yes" if f["two_states"] else "no"]
                     for p, f in derived["programme_fit"].items()])
    if "bound_neutrophil_fraction" in derived:
        lines += ["## Neutrophils bound to tumor cells (PIC-seq doublets)", ""]
        lines += _table(["stage", "bound fraction"],
                        [[s, _pm(derived["bound_neutrophil_fraction"].get(s, {}))] for s in stages])
    lines += ["## Parameters calibrated", ""]
    lines += _table(["key", "stage", "default", "calibrated", "x default", "how"],
                    [[f"`{r['key']}`", r["stage"], f"{r['base']:.4g}", f"{r['calibrated']:.4g}",
                      f"{r['calibrated'] / r['base']:.3g}" if r["base"] else "n/a",
                      r["method"]] for r in cal.rows()])
    lines += ["## Ligand-receptor pairs in liana's resource", ""]
    if liana.get("resource"):
        lines += _table(["axis", "ligand", "receptor", "in resource"],
                        [[p["axis"], p["ligand"], p["receptor"],
                          p["found"] + (f" ({p['as']})" if p["found"] == "within" else "")]
                         for p in liana["pairs"]])
        missing = [f"{p['ligand']}-{p['receptor']}" for p in liana["pairs"] if p["found"] == "missing"]
        lines += [f"Not in {liana['resource']}: {', '.join(missing) or 'none'}.", ""]
    else:
        lines += [liana.get("note", "not checked"), ""]
    notes = derived.get("notes", []) + cal.notes
    lines += ["## Notes", ""] + ([f"- {n}" for n in notes] or ["- none"]) + [""]
    lines += ["## Use", "", "```",
              "neutrosim run --params params.toml                 # the advanced stage",
              "neutrosim run --params params.toml --stage early   # the early stage",
              "neutrosim deplete --params params.toml", "```", ""]
    return "\n".join(lines)


def _figures(folder: Path, derived: dict, stages) -> None:
    from matplotlib.figure import Figure

    folder.mkdir()
    colors = {"early": "#4c9be8", "advanced": "#d9534f"}
    fig = Figure(figsize=(7, 3.2))
    ax = fig.add_subplot()
    width = 0.8 / max(len(stages), 1)
    for k, s in enumerate(stages):
        comp = derived["composition"][s]
        x = np.arange(len(TYPES)) + (k - (len(stages) - 1) / 2) * width
        ax.bar(x, [comp[t]["mean"] for t in TYPES], width,
               yerr=[comp[t]["sd"] or 0 for t in TYPES], color=colors.get(s), label=s, capsize=2)
    ax.set_xticks(range(len(TYPES)), TYPES)
    ax.set_ylabel("fraction of cells")
    ax.set_title("mean ± sd over samples", fontsize=8)
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(folder / "composition.png", dpi=120)

    axes = list(derived["signal_strengths"])
    fig = Figure(figsize=(3.2 * len(axes), 3.2))
    for i, axis in enumerate(axes):
        ax = fig.add_subplot(1, len(axes), i + 1)
        senders = list(derived["signal_strengths"][axis])
        for k, s in enumerate(stages):
            vals = [derived["signal_strengths"][axis][snd].get(s, {}) for snd in senders]
            x = np.arange(len(senders)) + (k - (len(stages) - 1) / 2) * width
            ax.bar(x, [v.get("mean") or 0 for v in vals], width,
                   yerr=[v.get("sd") or 0 for v in vals], color=colors.get(s), label=s, capsize=2)
        ax.set_xticks(range(len(senders)), senders)
        ax.set_title(axis, fontsize=9)
        if i == 0:
            ax.set_ylabel("ligand x receptor (CP10K²)")
            ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "signals.png", dpi=120)

    progs = list(derived["programme_fit"])
    fig = Figure(figsize=(1.8 + 1.6 * len(progs), 3.2))
    ax = fig.add_subplot()
    for k, s in enumerate(stages):
        vals = [derived["programme_fractions"].get(s, {}).get(p, {}) for p in progs]
        x = np.arange(len(progs)) + (k - (len(stages) - 1) / 2) * width
        ax.bar(x, [v.get("mean") or 0 for v in vals], width,
               yerr=[v.get("sd") or 0 for v in vals], color=colors.get(s), label=s, capsize=2)
    ax.set_xticks(range(len(progs)), [p.replace("_", "\n") for p in progs], fontsize=8)
    ax.set_ylabel("fraction of the cell type in the state")
    ax.set_ylim(0, 1)
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(folder / "programmes.png", dpi=120)


def write_outputs(out: Path, *, derived: dict, cal, params, provenance: dict, axes,
                  programmes, source: str, liana: dict, overwrite: bool, ours) -> Path:
    """Fill and place the calibration folder ``out`` (see the module docstring)."""
    stages = derived["stages"]
    rules_stage = "advanced" if "advanced" in stages else derived["reference_stage"]

    def fill(tmp: Path) -> None:
        header = (f"neutrosim calibrate: {source}.\n"
                  "Use: neutrosim run --params params.toml [--stage early|advanced]. The\n"
                  "[stage.<name>...] tables apply to that stage only. Equations:\n"
                  "docs/calibration.md; what each value came from: report.md.")
        write_overlay(cal, tmp / "params.toml", header)
        write_rules(cal, params, tmp / "rules.csv", rules_stage)
        _check_loads(tmp, stages)
        (tmp / "derived.json").write_text(json.dumps(derived, indent=2) + "\n")
        (tmp / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
        (tmp / "manifest.json").write_text(json.dumps(  # marks the folder as neutrosim's
            {"written_by": MARK, "command": "calibrate", "provenance": "provenance.json"},
            indent=2) + "\n")
        (tmp / "report.md").write_text(_report(derived, cal, source, liana, stages))
        _figures(tmp / "figures", derived, stages)

    return write_atomic(out, fill, overwrite=overwrite, ours=ours)
