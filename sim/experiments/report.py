"""``report.md`` of the depletion experiment: what ran, the numbers, and the study's verdict.

Each readout's paragraph states the direction and size of the simulated effect (change of
the mean against control with its paired-bootstrap CI and Wilcoxon p) next to what the
study reported, and says plainly whether they agree. Only an arm that is the study's own
intervention (:data:`TESTED_ARMS`) can agree with it; every other arm's result is labelled
a prediction, with the study's depletion result as the reference direction.
"""

import math
from typing import Any

import pandas as pd

from ..config.params import scenario_description
from ..readouts import READOUTS

__all__ = ["STUDY", "TESTED_ARMS", "render_report", "verdict"]

#: arms that are the intervention the study itself made (interfering with neutrophils in
#: mice with late-stage tumors); the others (CXCR2 inhibition, contact blockade,
#: macrophage depletion) were not tested there, so their results are predictions
TESTED_ARMS = frozenset({"depletion"})

#: readout -> (direction expected after interfering with neutrophils, how the study
#: stands on it: "reported", "implied" (follows from its mechanism, not measured) or
#: "target" (what the intervention itself does), the study's words). Direction ``None``:
#: the study says nothing about it.
STUDY: dict[str, tuple[str | None, str, str]] = {
    "tumor_cells": ("down", "reported", "Interfering with neutrophils in mice with late-stage "
                    "tumors substantially reduced tumor growth."),
    "proliferation_index": ("down", "reported", "Neutrophil-tumor contact raised tumor-cell "
                            "proliferation; interfering with neutrophils reduced it."),
    "vessel_density_per_mm2": ("down", "reported", "Neutrophils drove endothelial proliferation "
                               "and angiogenesis; interfering with them reduced vessel formation."),
    "neutrophils_in_tumor": ("down", "target", "Not a finding but the intervention's target: "
                             "depletion removes neutrophils, and tumor-activated macrophages "
                             "recruit them."),
    "neutrophil_tumor_pairs": ("down", "implied", "Neutrophils are bound to tumor cells in "
                               "advanced tumors (PIC-seq); pairs after depletion were not "
                               "reported, fewer are implied."),
    "invasive_cells": ("down", "implied", "Neutrophil-tumor contact raised invasiveness; the "
                       "effect of depletion on invasion was not reported, a reduction is implied."),
    "hypoxic_fraction": (None, "none", "Not reported by the study (fewer vessels would predict "
                         "more hypoxia)."),
}

#: (arm, readout) -> expectation where an arm differs from "fewer neutrophils"
ARM_STUDY: dict[tuple[str, str], tuple[str | None, str, str]] = {
    ("contact_blockade", "neutrophils_in_tumor"): (
        None, "none", "Contact blockade leaves the neutrophils in place by design; no direction "
        "expected."),
}

#: how an agreement is worded, by how the study stands on the readout
AGREES = {"reported": "agrees with the study",
          "implied": "agrees with what the study implies (not measured there)",
          "target": "the intervention acts as intended"}

ALPHA = 0.05


def verdict(change_pct: float, lo: float, hi: float, p: float, expected: str | None,
            standing: str = "reported", tested: bool = True) -> str:
    """One phrase: does a simulated change agree with the expected direction?

    ``tested``: the arm is the study's own intervention. If not, the phrase is a
    prediction compared with the direction of the study's depletion result, never an
    agreement with the study.
    """
    if change_pct is None or math.isnan(change_pct):
        return "cannot be judged (no data)"
    direction = "down" if change_pct < 0 else "up" if change_pct > 0 else "unchanged"
    significant = (p is not None and not math.isnan(p) and p < ALPHA
                   and not math.isnan(lo) and not lo <= 0.0 <= hi)
    sig = ", significant" if significant else ", not significant"
    if expected is None:
        return f"no study statement to compare with (simulated: {direction}{sig})"
    if not tested:
        if direction == "unchanged":
            return "prediction: no change (the study did not test this intervention)"
        same = "same direction as" if direction == expected else "opposite direction to"
        return (f"prediction: {direction}{sig}, the {same} the study's depletion result (the "
                "study did not test this intervention)")
    if direction == expected:
        return AGREES.get(standing, AGREES["reported"]) if significant else \
            "same direction as expected, but not significant with these replicates"
    if direction == "unchanged":
        return "does not reproduce the expected effect (no change)"
    return f"disagrees with the study (opposite direction{sig})"


def _fmt(x: float, digits: int = 3) -> str:
    """Readable number: thousands in full with separators, otherwise ``digits`` significant."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def _table(summary: pd.DataFrame, time_point: str) -> str:
    s = summary[summary["time_point"] == time_point]
    order = {c: i for i, c in enumerate(READOUTS)}
    s = s.sort_values("readout", key=lambda c: c.map(order), kind="stable")
    rows = []
    for _, r in s.iterrows():
        treated = "change_pct" in r and not pd.isna(r.get("change_pct"))
        rows.append({
            "readout": READOUTS[r["readout"]][0] if r["readout"] in READOUTS else r["readout"],
            "arm": r["arm"],
            "n": int(r["n"]),
            "mean ± SD": f"{_fmt(r['mean'])} ± {_fmt(r['sd'], 2)}",
            "95% CI": f"{_fmt(r['ci95_low'])} – {_fmt(r['ci95_high'])}",
            "change vs control [95% CI]": (f"{r['change_pct']:+.1f}% [{r['change_ci95_low']:+.1f}, "
                                           f"{r['change_ci95_high']:+.1f}]") if treated else "",
            "Wilcoxon p": _fmt(r.get("p_wilcoxon")) if treated else "",
            "d_z": _fmt(r.get("effect_size_dz"), 2) if treated else "",
            "n for 80% power": _fmt(r.get("n_for_80pct_power"), 4) if treated else "",
        })
    return pd.DataFrame(rows).to_markdown(index=False)


def _baseline_sentence(summary: pd.DataFrame, start_day: float) -> str:
    """Whether the arms were identical at the last record before treatment (they should be)."""
    pre = summary[(summary["time_point"] == "treatment_start") & summary["change_pct"].notna()]
    if pre.empty:
        return ""
    t = float(pre["time_h"].iloc[0])
    same = bool((pre["change_pct"] == 0).all() and (pre["p_wilcoxon"] == 1).all())
    if same:
        return (f"At the last record before treatment (hour {t:g}; treatment acts from day "
                f"{start_day:g}) every arm equals control run by run, as the paired design "
                "requires (`summary.csv`, time point `treatment_start`).")
    return (f"**Warning:** at the last record before treatment (hour {t:g}) the arms already "
            "differ from control, so the pairing is broken (`summary.csv`, `treatment_start`).")


def _strengths(intervention: dict[str, float]) -> str:
    """An arm's intervention strengths in words: ``{"neutrophil_depletion": 0.9}`` ->
    "Efficiency: `intervention.neutrophil_depletion` = 0.9 (90%)"."""
    return "Efficiency: " + "; ".join(f"`intervention.{k}` = {v:g} ({100 * v:.0f}%)"
                                      for k, v in intervention.items())


def _n_min_p(n: int) -> str:
    return f"{2.0 / 2 ** n:.2g}" if n > 0 else "–"


def render_report(setup, params: dict, summary: pd.DataFrame, manifest: dict[str, Any],
                  figures: list[str]) -> str:
    """The Markdown report (a string)."""
    arms = list(setup.arms)
    ref = params[arms[0]] if arms[0] in params else next(iter(params.values()))
    start_day = next(p.intervention.start_day for a, p in params.items() if a != "control")
    end = summary[summary["time_point"] == "endpoint"]
    end_day = float(end["time_h"].iloc[0]) / 24.0
    v = manifest.get("versions", {})
    lines = [
        "# Neutrophil depletion experiment (in silico)",
        "",
        "## What was run",
        "",
        f"- Arms: {', '.join(arms)}; {setup.replicates} paired replicates per arm (replicate r "
        f"uses seed {setup.seed} + r in every arm: seeds {setup.seeds()[0]}–{setup.seeds()[-1]}).",
        f"- {end_day:g} simulated days on a {ref.domain.nx} x {ref.domain.ny} grid of "
        f"{ref.domain.voxel_um:g} um voxels; treatment from day {start_day:g}.",
    ]
    for arm in arms:
        iv = {k: val for k, val in manifest["arms"][arm]["intervention"].items()
              if k != "start_day" and val}
        lines.append(f"- `{arm}`: {scenario_description(arm)}" + (f" {_strengths(iv)}." if iv else ""))
    lines += [
        "- Parameters: embedded defaults"
        + (f" overlaid with `{setup.params_file}`" if setup.params_file else "")
        + (f", with {', '.join(f'{k}={x}' for k, x in setup.sets)}" if setup.sets else "")
        + (f"; rules from `{setup.rules_file}`" if setup.rules_file else "") + ".",
        f"- neutrosim {v.get('neutrosim', '?')}, Mesa {v.get('mesa', '?')}, numba {v.get('numba', '?')}, "
        f"Python {v.get('python', '?')}; git {manifest.get('git_revision', '?')}; wall time "
        f"{manifest.get('wall_time_s', '?')} s.",
    ]
    if manifest.get("failures"):
        lines.append(f"- **Failed runs** (left out of the statistics, pairs dropped): "
                     f"{', '.join(manifest['failures'])}; `neutrosim deplete --resume` retries them.")
    lines += [
        "",
        "Most parameters are assumed (literature- and study-derived defaults, not fitted to the "
        "study's raw data; `docs/parameters.md` says which), so the sizes below are the model's, "
        "and only the directions are compared with the study. The study interfered with "
        "neutrophils in mice with late-stage tumors; only that arm (`depletion`) can agree "
        "with it. The other arms were not tested there: their results are predictions.",
        "",
        f"## Endpoint (day {end_day:g})",
        "",
        "Change vs control is the change of the arm mean, with a paired bootstrap 95% CI; the "
        f"p-value is the two-sided Wilcoxon signed-rank test over the pairs (with {setup.replicates} "
        f"pairs the smallest possible p is {_n_min_p(setup.replicates)}). d_z is the paired effect "
        "size, the mean of the pairs' differences divided by their SD: the arms are identical run "
        "by run until the treatment starts (same seeds), so the differences spread little and "
        "d_z can be large, and it is not comparable to an unpaired Cohen's d (which divides by the "
        "spread between replicates). The last column is the number of pairs a paired t-test "
        "needs for 80% power (at least 6).",
        "",
        _table(summary, "endpoint"),
        "",
        _baseline_sentence(summary, start_day),
        "",
        "## Figures",
        "",
    ]
    captions = {"growth_curves": "Growth curves: mean and 95% band per arm; dashed line: treatment start.",
                "endpoint_panels": "Endpoint readouts: each point a replicate, lines join the same seed.",
                "final_snapshots": "Final state of replicate 0 of each arm over the pro-angiogenic field."}
    for name in figures:
        lines += [f"![{name}](figures/{name}.png)", "", f"*{captions.get(name, name)}* "
                  f"([SVG](figures/{name}.svg))", ""]
    lines += ["## Readouts against the study", ""]
    for col, (expected, standing, said) in STUDY.items():
        lines.append(f"**{READOUTS[col][0]}.** Study: {said}")
        for arm in [a for a in arms if a != "control"]:
            r = end[(end["arm"] == arm) & (end["readout"] == col)]
            if r.empty:
                continue
            r = r.iloc[0]
            ctrl = end[(end["arm"] == "control") & (end["readout"] == col)].iloc[0]
            arm_expected, arm_standing, note = ARM_STUDY.get((arm, col), (expected, standing, ""))
            said_here = verdict(r["change_pct"], r["change_ci95_low"], r["change_ci95_high"],
                                r["p_wilcoxon"], arm_expected, arm_standing,
                                tested=arm in TESTED_ARMS)
            lines.append(
                f"- `{arm}`: {_fmt(r['mean'])} vs {_fmt(ctrl['mean'])} {READOUTS[col][1]} in control, "
                f"{r['change_pct']:+.1f}% (95% CI {r['change_ci95_low']:+.1f} to "
                f"{r['change_ci95_high']:+.1f}%), p = {_fmt(r['p_wilcoxon'])}, "
                f"{int(r['pairs'])} pairs: **{said_here}**." + (f" {note}" if note else "")
            )
        lines.append("")
    return "\n".join(lines)
