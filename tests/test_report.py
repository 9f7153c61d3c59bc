"""The depletion experiment's report.md, rendered from planted runs (no simulation)."""

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from sim.experiments.depletion import DepletionSetup
from sim.experiments.report import render_report
from sim.experiments.stats import summarise
from sim.readouts import READOUTS

START_H, END_H = 162.0, 504.0  # the last record before day 7, and day 21


@pytest.fixture
def report():
    """report.md of planted runs: 8 pairs, control and depletion (efficiency 0.9), identical
    before treatment; at day 21 depletion has 500 fewer tumor cells, give or take 1-3."""
    return _render("depletion")


def _render(arm: str):
    setup = DepletionSetup(arms=("control", arm), replicates=8)
    params = setup.arm_params()
    r = np.arange(8)
    control = 1000.0 + 10.0 * r
    diff = -500.0 + np.array([1, -2, 3, -1, 2, -3, 1, -1])
    rows = [{"arm": arm, "replicate": i, "time_h": t, "tumor_cells": v}
            for arm, end in (("control", control), (arm, control + diff))
            for t, values in ((START_H, control), (END_H, end))
            for i, v in enumerate(values)]
    summary = summarise(pd.DataFrame(rows), {"treatment_start": START_H, "endpoint": END_H},
                        readouts={"tumor_cells": READOUTS["tumor_cells"]})
    manifest = {"arms": {arm: {"intervention": asdict(p.intervention)}
                         for arm, p in params.items()},
                "versions": {}, "wall_time_s": 1.0}
    return render_report(setup, params, summary, manifest, figures=[]), diff


def test_report_states_intervention_strengths_as_parameters(report):
    text, _ = report
    depletion = next(line for line in text.splitlines() if line.startswith("- `depletion`"))
    assert depletion.endswith("Efficiency: `intervention.neutrophil_depletion` = 0.9 (90%).")
    assert "{" not in text and "'neutrophil_depletion'" not in text
    control = next(line for line in text.splitlines() if line.startswith("- `control`"))
    assert "Efficiency" not in control  # nothing to state for the untreated arm


def test_report_explains_why_the_paired_effect_size_is_large(report):
    text, diff = report
    dz = diff.mean() / diff.std(ddof=1)  # -500 / 2.07 = -242: the planted pairs barely differ
    row = next(line for line in text.splitlines()
               if line.startswith("| viable tumor cells") and "depletion" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[7] == f"{dz:,.0f}" == "-242"  # the d_z column
    assert ("the arms are identical run by run until the treatment starts (same seeds), so "
            "the differences spread little and d_z can be large") in text
    assert "not comparable to an unpaired Cohen's d" in text


def test_only_the_studys_own_intervention_agrees_with_it():
    said = [line for line in _render("depletion")[0].splitlines()
            if line.startswith("- `depletion`: ") and "pairs:" in line]
    assert said and "**agrees with the study**" in said[0]
    text, _ = _render("cxcr2_inhibition")
    line = next(line for line in text.splitlines()
                if line.startswith("- `cxcr2_inhibition`: ") and "pairs:" in line)
    assert "**prediction: down, significant, the same direction as" in line
    assert "agrees with the study" not in text
