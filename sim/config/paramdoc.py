"""The parameter reference as Markdown: every parameter and rule with unit, value, source.

``neutrosim params`` prints it; ``docs/parameters.md`` is this text (a test keeps the two
identical).
"""

from .params import describe, load_params, params_dir, read_toml
from .rules import BEHAVIOURS, SIGNALS

__all__ = ["render"]


def _cell(text) -> str:
    return str(text).replace("|", "\\|")


def render() -> str:
    """Markdown tables of params/default.toml and params/rules.csv."""
    rows = describe()
    assumed = sum(r["source"].lower().startswith("assumed") for r in rows)
    out = [
        "# Parameters and rules",
        "",
        "Generated from `params/default.toml` and `params/rules.csv` by `neutrosim params`;",
        "do not edit by hand. Values are the embedded defaults: literature- and study-derived,",
        f"not yet fitted to the study's raw data. {assumed} of {len(rows)} parameters are",
        "*assumed* (no measured source found); the sweep tooling is how to learn which of",
        "them decide the results.",
        "",
        "## Parameters",
        "",
        "| key | value | unit | meaning | source |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        out.append(f"| `{r['key']}` | {r['value']} | {_cell(r['unit'])} | {_cell(r['meaning'])} "
                   f"| {_cell(r['source'])} |")
    out += ["", "## Stages", "",
            "`initial.stage` picks a preset from `params/stages/`; its values replace the "
            "defaults above only where nothing else sets them.", "",
            "| stage | key | value | unit | source |", "| --- | --- | --- | --- | --- |"]
    for path in sorted((params_dir() / "stages").glob("*.toml")):
        preset = read_toml(path)
        entries = [(f"{sec}.{k}", v) for sec, d in preset.items() if isinstance(d, dict)
                   for k, v in d.items()]
        if not entries:
            out.append(f"| `{path.stem}` | (the defaults) | | | |")
        for key, v in entries:
            out.append(f"| `{path.stem}` | `{key}` | {v['value']} | {_cell(v['unit'])} "
                       f"| {_cell(v['source'])} |")
    rules = load_params().rules
    out += [
        "",
        "## Rules (signal -> behaviour, PhysiCell grammar)",
        "",
        "Each row moves the behaviour from its base value (the parameter named below) toward",
        "the saturation value as the signal rises: see `docs/model.md`.",
        "",
        "| cell type | signal | direction | behaviour (unit, base) | saturation | half-max "
        "| Hill power | source |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rules.rules:
        unit, base, _ = BEHAVIOURS[r.cell_type][r.behaviour]
        sig_unit = SIGNALS[r.cell_type][r.signal]
        out.append(
            f"| {r.cell_type} | {r.signal} ({_cell(sig_unit)}) | {r.direction} | {r.behaviour} "
            f"({_cell(unit)}, `{base}`) | {r.saturation:g} | {r.half_max:g} | {r.hill_power:g} "
            f"| {_cell(r.source)} |"
        )
    return "\n".join(out) + "\n"
