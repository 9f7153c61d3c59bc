"""What a finished fit writes beside its history: the posterior, its figures, the
posterior predictive check, a parameter overlay at the posterior median and the report.

``posterior.parquet``  every generation's particles: generation, weight, distance, each
                       parameter in model units (``log10:<name>`` too for log-uniform
                       priors) and each target's simulated outcome (``sim:<target>``)
``figures/``           marginals (one panel per parameter: weighted histogram, prior range,
                       median and 90% credible interval), pairs (every pair of parameters,
                       particles sized by weight), ppc (each target against the simulated
                       outcomes at posterior draws); PNG and SVG
``ppc.csv``            the posterior predictive draws: parameters and outcomes
``params.toml``        overlay at the weighted posterior median, each value's source the fit
``report.md``          setup, targets, posterior against prior, generations, the PPC
"""

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..runs.executors import Executor, SerialExecutor
from ..runs.output import replace_into, save_figure
from .particle import ParticleModel, predictive
from .spec import FitSpec

__all__ = ["posterior_table", "weighted_quantile", "summarise_posterior", "ppc_draws",
           "ppc_summary", "write_overlay", "overlay_source", "write_figures", "render_report"]

#: the credible and predictive intervals reported: 5% to 95%
LEVEL = 0.90
Z90 = 1.6448536269514722  # a normal target's 90% interval: value +- Z90 sd


def weighted_quantile(values, weights, q: float) -> float:
    """Quantile ``q`` of a weighted sample (linear between the midpoints of each weight)."""
    x = np.asarray(values, dtype=float)
    w = np.asarray(weights, dtype=float)
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    cdf = (np.cumsum(w) - 0.5 * w) / w.sum()
    return float(np.interp(q, cdf, x))


def posterior_table(history, spec: FitSpec) -> pd.DataFrame:
    """Every generation's particles (see the module docstring)."""
    rows = []
    for t in range(history.max_t + 1):
        pop = history.get_population(t=t)
        for particle in pop.particles:
            row: dict[str, Any] = {"generation": t, "weight": float(particle.weight),
                                   "distance": float(particle.distance)}
            for p in spec.priors:
                x = float(particle.parameter[p.name])
                row[p.name] = p.to_model(x)
                if p.kind == "loguniform":
                    row[f"log10:{p.name}"] = x
            for target in spec.targets:
                row[f"sim:{target.name}"] = float(np.asarray(particle.sum_stat[target.name]))
            rows.append(row)
    table = pd.DataFrame(rows)
    # weights normalised within each generation
    table["weight"] = table["weight"] / table.groupby("generation")["weight"].transform("sum")
    return table


def last_generation(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["generation"] == table["generation"].max()].reset_index(drop=True)


def summarise_posterior(table: pd.DataFrame, spec: FitSpec) -> pd.DataFrame:
    """Per parameter: weighted median and 90% credible interval of the last generation,
    and the prior it narrows."""
    last = last_generation(table)
    lo_q, hi_q = (1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2
    rows = []
    for p in spec.priors:
        x = last[f"log10:{p.name}"] if p.kind == "loguniform" else last[p.name]
        w = last["weight"]
        med, lo, hi = (weighted_quantile(x, w, q) for q in (0.5, lo_q, hi_q))
        a, b = p.abc_bounds()
        rows.append({"parameter": p.name, "prior": p.kind, "prior_low": p.low,
                     "prior_high": p.high, "median": p.to_model(med), "ci90_low": p.to_model(lo),
                     "ci90_high": p.to_model(hi),
                     # width on the prior's own scale (log10 for log-uniform)
                     "ci90_fraction_of_prior": (hi - lo) / (b - a)})
    return pd.DataFrame(rows)


# -- posterior predictive check --------------------------------------------------------------
def ppc_draws(table: pd.DataFrame, spec: FitSpec, model: ParticleModel,
              executor: Executor | None = None) -> pd.DataFrame:
    """``[abc] ppc_draws`` particles of the last generation drawn by weight (seeded), each
    simulated with fresh seeds (draw k: replicate r uses ``seed + replicates (k + 1) + r``,
    none of the fit's own), so the spread holds both the posterior and the runs' noise."""
    k_draws = spec.abc.ppc_draws
    if k_draws == 0:
        return pd.DataFrame()
    last = last_generation(table)
    rng = np.random.default_rng(spec.abc.seed)
    picks = rng.choice(len(last), size=k_draws, p=last["weight"].to_numpy() / last["weight"].sum())
    sim = spec.simulation
    jobs, info = [], {}
    for k, i in enumerate(picks):
        values = {p.name: last.loc[i, p.name] for p in spec.priors}
        values = {n: (int(v) if spec.prior(n).integer else float(v)) for n, v in values.items()}
        seed = sim.seed + sim.replicates * (k + 1)
        jobs.append((model, values, seed))
        info[seed] = {"draw": k, "particle": int(i), "seed_replicate_0": seed, **values}
    rows = []
    for job, outcomes, exc in (executor or SerialExecutor()).imap_unordered(predictive, jobs):
        if exc is not None:
            raise exc
        rows.append({**info[job[2]], **{f"sim:{k}": v for k, v in outcomes.items()}})
    return pd.DataFrame(rows).sort_values("draw").reset_index(drop=True)


def ppc_summary(draws: pd.DataFrame, spec: FitSpec) -> pd.DataFrame:
    """Per target: its value and 90% interval (value +- 1.645 sd) against the simulated
    median and 90% interval (5th to 95th percentile of the draws)."""
    rows = []
    for t in spec.targets:
        sims = draws[f"sim:{t.name}"].to_numpy(float) if len(draws) else np.array([])
        sims = sims[np.isfinite(sims)]
        med, lo, hi = (np.quantile(sims, q) if len(sims) else math.nan for q in (0.5, 0.05, 0.95))
        t_lo, t_hi = t.value - Z90 * t.sd, t.value + Z90 * t.sd
        rows.append({"target": t.name, "value": t.value, "sd": t.sd, "day": t.day,
                     "target_90_low": t_lo, "target_90_high": t_hi,
                     "sim_median": med, "sim_90_low": lo, "sim_90_high": hi,
                     "draws": len(sims),
                     "intervals_overlap": bool(len(sims)) and lo <= t_hi and hi >= t_lo,
                     "value_in_sim_90": bool(len(sims)) and lo <= t.value <= hi,
                     "source": t.source})
    return pd.DataFrame(rows)


# -- the parameter overlay -----------------------------------------------------------------
def overlay_source(spec: FitSpec, generations: int) -> str:
    return (f"fitted to {spec.path} by ABC-SMC ({spec.abc.population} particles, "
            f"{generations} generations)")


def _toml_number(v) -> str:
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(int(v))
    text = f"{float(v):.6g}"
    return text if any(c in text for c in ".en") else text + ".0"


def _toml_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_overlay(path: Path, summary: pd.DataFrame, spec: FitSpec, generations: int) -> None:
    """``params.toml``: each fitted parameter at its posterior median, with the fit as
    its source and its 90% credible interval in a comment; loadable by ``--params``."""
    source = overlay_source(spec, generations)
    sections: dict[str, list[str]] = {}
    for r in summary.itertuples():
        section, _, key = r.parameter.partition(".")
        if section == "rules":
            key = _toml_string(key)
        line = (f"{key} = {{ value = {_toml_number(r.median)}, source = {_toml_string(source)} }}"
                f"  # 90% CI [{r.ci90_low:.4g}, {r.ci90_high:.4g}]; prior {r.prior} "
                f"[{r.prior_low:g}, {r.prior_high:g}]")
        sections.setdefault(section, []).append(line)
    lines = ["# neutrosim fit: the weighted posterior median of each fitted parameter,",
             f"# {source}.",
             "# Fitted with the settings of [simulation] in that file (grid, stage, days, arms):",
             "# the values are conditional on them. Use: neutrosim run --params params.toml", ""]
    for section, entries in sections.items():
        lines += [f"[{section}]", *entries, ""]
    text = "\n".join(lines)
    replace_into(path, lambda p: p.write_text(text))


# -- figures ---------------------------------------------------------------------------------
def write_figures(folder: Path, table: pd.DataFrame, summary: pd.DataFrame,
                  ppc: pd.DataFrame, spec: FitSpec) -> list[str]:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    last = last_generation(table)
    # marginals
    n = len(spec.priors)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.0), squeeze=False)
    for ax, p, s in zip(axes[0], spec.priors, summary.itertuples()):
        log = p.kind == "loguniform"
        bins = (np.logspace(math.log10(p.low), math.log10(p.high), 21) if log
                else np.linspace(p.low, p.high, 21))
        ax.hist(last[p.name], bins=bins, weights=last["weight"], density=True, color="C0",
                alpha=0.7, label="posterior")
        width = (math.log(p.high) - math.log(p.low)) if log else (p.high - p.low)
        xs = np.logspace(math.log10(p.low), math.log10(p.high), 200) if log else np.linspace(p.low, p.high, 200)
        prior_pdf = 1.0 / (xs * width) if log else np.full_like(xs, 1.0 / width)
        ax.plot(xs, prior_pdf, color="0.4", lw=1, ls="--", label="prior")
        ax.axvspan(s.ci90_low, s.ci90_high, color="C1", alpha=0.15, label="90% CI")
        ax.axvline(s.median, color="C1", lw=1.5, label="median")
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlim(p.low, p.high)
        ax.tick_params(labelsize=7)
        ax.set_xlabel(p.name, fontsize=8)
        ax.set_yticks([])
    axes[0][0].legend(fontsize=7, frameon=False)
    fig.suptitle(f"posterior marginals, generation {int(last['generation'].iloc[0]) + 1}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, folder / "marginals")
    plt.close(fig)
    written.append("marginals")
    # pairs
    if n >= 2:
        fig, axes = plt.subplots(n, n, figsize=(2.4 * n, 2.4 * n), squeeze=False)
        size = 8 + 200 * last["weight"] / last["weight"].max()
        for i, pi in enumerate(spec.priors):
            for j, pj in enumerate(spec.priors):
                ax = axes[i][j]
                if i == j:
                    ax.hist(last[pi.name], bins=15, weights=last["weight"], color="C0", alpha=0.7)
                    ax.set_yticks([])
                elif i > j:
                    ax.scatter(last[pj.name], last[pi.name], s=size, alpha=0.5, color="C0",
                               edgecolors="none")
                    ax.set_ylim(pi.low, pi.high)
                    if pi.kind == "loguniform":
                        ax.set_yscale("log")
                else:
                    ax.axis("off")
                    continue
                ax.set_xlim(pj.low, pj.high)
                if pj.kind == "loguniform":
                    ax.set_xscale("log")
                if i == n - 1:
                    ax.set_xlabel(pj.name, fontsize=7)
                if j == 0 and i > 0:
                    ax.set_ylabel(pi.name, fontsize=7)
                ax.tick_params(labelsize=6)
        fig.suptitle("posterior, pairs (marker area: weight)", fontsize=9)
        fig.tight_layout()
        save_figure(fig, folder / "pairs")
        plt.close(fig)
        written.append("pairs")
    # posterior predictive check
    if len(ppc):
        m = len(spec.targets)
        fig, axes = plt.subplots(1, m, figsize=(2.8 * m, 3.0), squeeze=False)
        for ax, t in zip(axes[0], spec.targets):
            sims = ppc[f"sim:{t.name}"].to_numpy(float)
            sims = sims[np.isfinite(sims)]
            ax.errorbar([0], [t.value], yerr=[[Z90 * t.sd], [Z90 * t.sd]], fmt="s", color="k",
                        capsize=4, label="target (90%)")
            jitter = np.random.default_rng(0).uniform(-0.08, 0.08, len(sims))
            ax.scatter(1 + jitter, sims, s=10, color="C0", alpha=0.6, label="simulated draws")
            if len(sims):
                lo, med, hi = np.quantile(sims, [0.05, 0.5, 0.95])
                ax.errorbar([1.25], [med], yerr=[[med - lo], [hi - med]], fmt="o", color="C1",
                            capsize=4, label="median, 90%")
            ax.set_xticks([0, 1])
            ax.set_xticklabels(["target", "posterior\npredictive"], fontsize=7)
            ax.set_xlim(-0.5, 1.6)
            ax.set_title(t.name, fontsize=7)
            ax.tick_params(labelsize=7)
        axes[0][0].legend(fontsize=6, frameon=False)
        fig.tight_layout()
        save_figure(fig, folder / "ppc")
        plt.close(fig)
        written.append("ppc")
    return written


# -- report ----------------------------------------------------------------------------------
def _md_table(headers, rows) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out + [""]


def _g(v, digits: int = 4) -> str:
    if isinstance(v, (float, np.floating)) and not math.isfinite(v):
        return "n/a" if math.isnan(v) else ("+inf" if v > 0 else "-inf")
    return f"{v:.{digits}g}" if isinstance(v, (float, np.floating)) else str(v)


def render_report(spec: FitSpec, summary: pd.DataFrame, generations: pd.DataFrame,
                  ppc: pd.DataFrame, *, figures: list[str], meta: dict[str, Any]) -> str:
    sim = spec.simulation
    n_gen = len(generations)
    lines = ["# ABC-SMC fit", "",
             f"Targets file: `{spec.path}` (digest {spec.digest()}). "
             f"{overlay_source(spec, n_gen)}; sampler: {meta.get('sampler')}, "
             f"{meta.get('workers')} worker(s); {meta.get('simulations_total')} particles "
             f"simulated in the generations, and {spec.abc.population} from the prior "
             "before them (the calibration sample that sets the first epsilon), each "
             f"{len(sim.arms)} arm(s) x {sim.replicates} replicate(s); "
             f"wall time of this call {meta.get('wall_time_s')} s.", "",
             "## Setup", "",
             f"- simulation: arms {', '.join(sim.arms)}; {sim.replicates} replicate(s) per arm, "
             f"replicate r with seed {sim.seed} + r at every particle (common random numbers); "
             f"{sim.days:g} days; stage {sim.stage or 'of the parameters'}; grid "
             f"{'x'.join(map(str, sim.grid)) if sim.grid else 'of the parameters'}"
             + (f"; overlay {sim.params_file}" if sim.params_file else "")
             + (f"; rules {sim.rules_file}" if sim.rules_file else "")
             + (f"; set {dict(sim.sets)}" if sim.sets else "") + ".",
             f"- ABC-SMC (pyabc): population {spec.abc.population}, {spec.abc.generations} "
             f"generation(s) asked, distance {spec.abc.distance} (p = {spec.abc.p:g}), median "
             f"epsilon, multivariate normal perturbation; seed {spec.abc.seed}. Method and "
             "settings: docs/fitting.md.", "",
             "## Targets", ""]
    lines += _md_table(["target", "value", "sd", "day", "source"],
                       [[t.name, _g(t.value), _g(t.sd), _g(t.day), t.source or "-"]
                        for t in spec.targets])
    lines += ["## Posterior (last generation, weighted)", ""]
    lines += _md_table(
        ["parameter", "prior", "prior range", "median", "90% credible interval",
         "CI width / prior width"],
        [[r.parameter, r.prior, f"[{_g(r.prior_low)}, {_g(r.prior_high)}]", _g(r.median),
          f"[{_g(r.ci90_low)}, {_g(r.ci90_high)}]", f"{r.ci90_fraction_of_prior:.2f}"]
         for r in summary.itertuples()])
    lines += ["The width ratio is on the prior's own scale (log10 for log-uniform priors): "
              "near 1, the targets did not inform the parameter.", ""]
    if "pairs" in figures:
        lines += ["![marginals](figures/marginals.png)", "", "![pairs](figures/pairs.png)", ""]
    else:
        lines += ["![marginals](figures/marginals.png)", ""]
    lines += ["## Generations", "",
              "Epsilon is the median distance of the generation before. With the adaptive "
              "distance the scales of the targets are re-estimated each generation, so "
              "epsilons of different generations are in different units and need not fall.",
              ""]
    lines += _md_table(["generation", "epsilon", "acceptance rate", "accepted", "simulated",
                        "wall time (s)"],
                       [[int(r.t) + 1, _g(r.epsilon), f"{r.particles / r.samples:.3f}",
                         int(r.particles), int(r.samples),
                         _g(float(r.wall_time)) if r.wall_time is not None else "n/a"]
                        for r in generations.itertuples()])
    lines += ["## Posterior predictive check", ""]
    if len(ppc):
        lines += [f"{int(ppc['draws'].max())} particles of the last generation drawn by weight, "
                  "each simulated with fresh seeds. The target's interval is value +- 1.645 "
                  "sd; the simulated one is the 5th to 95th percentile of the draws.", ""]
        lines += _md_table(
            ["target", "value", "target 90%", "simulated median", "simulated 90%",
             "intervals overlap", "value inside simulated 90%"],
            [[r.target, _g(r.value), f"[{_g(r.target_90_low)}, {_g(r.target_90_high)}]",
              _g(r.sim_median), f"[{_g(r.sim_90_low)}, {_g(r.sim_90_high)}]",
              "yes" if r.intervals_overlap else "**no**",
              "yes" if r.value_in_sim_90 else "no"] for r in ppc.itertuples()])
        lines += ["![posterior predictive check](figures/ppc.png)", ""]
    else:
        lines += ["Not run (`[abc] ppc_draws = 0`).", ""]
    lines += ["## What is a fit and what is a prediction", "",
              "The parameters above are fitted: chosen so that the simulated outcomes come "
              "close to the targets, and the posterior predictive check only shows how close "
              "(agreement there is by construction, disagreement means the model cannot reach "
              "a target within the priors). Nothing in this folder tests the model against "
              "the targets. Predictions are what the fitted model says about outcomes that "
              "were not targets (other readouts, days, arms or stages): run them with "
              "`neutrosim run --params params.toml` or `neutrosim deplete --params "
              "params.toml`. Targets marked *assumed* carry assumed sizes, and a fit to them "
              "inherits the assumption.", "",
              "## Files", "",
              "`posterior.parquet` (every generation's particles), `ppc.csv`, `params.toml`, "
              "`figures/`, `history.db` (pyabc's history: `pyabc.History('sqlite:///"
              "history.db')`), `fit.json` (what a resume checks), `manifest.json`.", ""]
    return "\n".join(lines)
