"""The sign of a neutrophil depletion is earned, not built in.

With the default rules depleting neutrophils shrinks the tumor. Editing rows of the rules
table alone can reverse that: let naive neutrophils kill tumor cells they touch (the kill
row's saturation) and educate them ten times more slowly (the activation and binding
rows), and the same depletion, on the same seeds, makes the tumor larger. Both go
through ``neutrosim deplete``'s own path (``run_depletion`` with ``rules_file``).
"""

import pytest

from sim.config.params import params_dir
from sim.experiments.depletion import DepletionSetup, run_depletion
from sim.readouts import at_time
from sim.runs.ensemble import load_runs

pytestmark = pytest.mark.experiment  # 16 runs of 14 days of the default advanced tumor


def anti_tumor_rules(path) -> str:
    """The default rules with naive neutrophils killing (kill saturation 0.05/min) and
    education (activation, binding) ten times slower: the rows that decide the sign."""
    rows = []
    for row in (params_dir() / "rules.csv").read_text().splitlines():
        f = row.split(",")
        if row.startswith("neutrophil,tumor_contact,increases,kill,"):
            f[4] = "0.05"
        elif f[0] == "neutrophil" and f[2] == "increases" and f[3] in ("activation", "binding"):
            f[4] = repr(float(f[4]) / 10)
        rows.append(",".join(f))
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def _tumor_change(tmp_path, name, rules_file=None) -> list[float]:
    """Depletion vs control tumor cells at day 14 of the default advanced tumor, per seed
    (treatment from day 7, as in the default experiment)."""
    setup = DepletionSetup(replicates=4, days=14, start_day=7, rules_file=rules_file)
    result = run_depletion(setup, tmp_path / name, workers=2, progress=False)
    assert not result.failures
    end = at_time(load_runs(result.out), 14 * 24.0).set_index(["arm", "replicate"])["tumor_cells"]
    return [end["depletion", r] / end["control", r] - 1 for r in range(4)]


def test_depletion_shrinks_the_tumor_by_default_and_grows_it_when_naive_neutrophils_kill(tmp_path):
    default = _tumor_change(tmp_path, "default")
    flipped = _tumor_change(tmp_path, "flipped", anti_tumor_rules(tmp_path / "rules.csv"))
    assert all(c < 0 for c in default), default
    assert all(c > 0.03 for c in flipped), flipped
