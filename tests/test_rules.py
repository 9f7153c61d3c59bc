"""The rules engine: PhysiCell's Hill grammar, evaluated on whole populations; bad rules rejected."""

import numpy as np
import pytest

from sim.config.errors import ParameterError
from sim.config.params import load_params, params_dir
from sim.config.rules import RuleSet, hill, load_rules

HEADER = "cell_type,signal,direction,behaviour,saturation,half_max,hill_power,source\n"


def _rules(tmp_path, *rows) -> RuleSet:
    path = tmp_path / "rules.csv"
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return load_rules(path)


def test_hill_at_planted_signals():
    s = np.array([0.0, 1.0, 2.0, 4.0])
    np.testing.assert_allclose(hill(s, 2.0, 1), [0, 1 / 3, 0.5, 2 / 3])
    np.testing.assert_allclose(hill(s, 2.0, 2), [0, 0.2, 0.5, 0.8])


def test_single_increasing_rule_moves_base_toward_saturation(tmp_path):
    rs = _rules(tmp_path, "tumor,proinvasive,increases,division,0.003,2,2,assumed")
    s = np.array([0.0, 2.0, 1e6])
    out = rs.evaluate("tumor", "division", 0.001, {"proinvasive": s}, 3)
    np.testing.assert_allclose(out, [0.001, 0.002, 0.003], rtol=1e-9)


def test_decreasing_rule_and_physicell_combination(tmp_path):
    rs = _rules(
        tmp_path,
        "tumor,oxygen,decreases,necrosis,0,3.75,8,PhysiCell",
        "tumor,bound_neutrophils,increases,division,0.002,1,1,assumed",
        "tumor,proinvasive,increases,division,0.002,1,1,assumed",
    )
    nec = rs.evaluate("tumor", "necrosis", 0.01, {"oxygen": np.array([0.0, 3.75, 40.0])}, 3)
    np.testing.assert_allclose(nec, [0.01, 0.005, 0.01 / (1 + (40 / 3.75) ** 8)], rtol=1e-9, atol=1e-15)
    # two increasing signals: x = 1 + 1 = 2 -> U = 2/3 (multivariate Hill)
    div = rs.evaluate("tumor", "division", 0.001,
                      {"bound_neutrophils": np.array([1.0]), "proinvasive": np.array([1.0])}, 1)
    np.testing.assert_allclose(div, [0.001 + 0.001 * 2 / 3])


def test_behaviour_without_rules_is_its_base(tmp_path):
    rs = _rules(tmp_path, "tumor,proinvasive,increases,division,0.003,2,2,assumed")
    np.testing.assert_array_equal(rs.evaluate("neutrophil", "binding", 0.3, {}, 4), [0.3] * 4)


@pytest.mark.parametrize(
    "row, words",
    [
        ("tumour,oxygen,increases,division,0.1,1,1,x", ["row 2", "unknown cell_type 'tumour'"]),
        ("tumor,glucose,increases,division,0.1,1,1,x", ["row 2", "unknown signal 'glucose'", "oxygen"]),
        ("tumor,oxygen,increases,flying,0.1,1,1,x", ["row 2", "unknown behaviour 'flying'"]),
        ("tumor,oxygen,raises,division,0.1,1,1,x", ["direction", "increases, decreases"]),
        ("tumor,oxygen,increases,division,0.1,0,1,x", ["half_max = 0.0", "> 0"]),
        ("tumor,oxygen,increases,division,0.1,-2,1,x", ["half_max = -2.0"]),
        ("tumor,oxygen,increases,division,abc,1,1,x", ["saturation = 'abc'", "not a number"]),
        ("neutrophil,tumor_contact,increases,chemotaxis_bias,1.5,1,1,x", ["saturation = 1.5", "[0, 1.0]"]),
        ("tumor,oxygen,increases,division,0.1,1,1,", ["source is empty"]),
        ("tumor,oxygen,increases,division,0.1,1", ["expected 8 columns"]),
    ],
)
def test_bad_rule_rows_are_named(tmp_path, row, words):
    with pytest.raises(ParameterError) as err:
        _rules(tmp_path, row)
    msg = str(err.value)
    assert "rules.csv" in msg
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"


def test_inconsistent_saturations_and_duplicates_rejected(tmp_path):
    with pytest.raises(ParameterError, match="share one saturation"):
        _rules(tmp_path, "tumor,oxygen,increases,division,0.1,1,1,x",
               "tumor,proinvasive,increases,division,0.2,1,1,x")
    with pytest.raises(ParameterError, match="repeats row 2"):
        _rules(tmp_path, "tumor,oxygen,increases,division,0.1,1,1,x",
               "tumor,oxygen,increases,division,0.1,2,1,x")


def test_default_rules_load_with_sources():
    rs = load_rules(params_dir() / "rules.csv")
    assert len(rs.rules) >= 15
    assert all(r.source for r in rs.rules)
    cells = {r.cell_type for r in rs.rules}
    assert cells == {"tumor", "neutrophil", "macrophage", "endothelial"}


def test_rules_file_option_replaces_the_table(tmp_path):
    rs_path = tmp_path / "rules.csv"
    rs_path.write_text(HEADER + "tumor,proinvasive,increases,division,0.003,2,2,assumed\n")
    p = load_params(rules=rs_path)
    assert len(p.rules.rules) == 1
    with pytest.raises(ParameterError, match="rules file not found"):
        load_params(rules=tmp_path / "nope.csv")


def test_a_rule_groups_saturation_is_set_like_a_parameter(tmp_path):
    """``rules.CELL.BEHAVIOUR.DIRECTION`` sets the shared saturation of that group of rows,
    through --set, sweeps and Params.replace alike; the digest follows; bad keys and values
    get one message naming the option."""
    from sim.config.params import load_params
    from sim.config.rules import RuleError

    base = load_params()
    key = "rules.tumor.division.increases"  # two rows (bound_neutrophils, proinvasive)
    p = load_params(overrides={key: 0.004})
    rows = [r for r in p.rules.rules if r.behaviour == "division" and r.direction == "increases"]
    assert len(rows) == 2 and all(r.saturation == 0.004 for r in rows)
    untouched = [(a, b) for a, b in zip(base.rules.rules, p.rules.rules) if a not in rows]
    assert all(a == b for a, b in untouched if a.behaviour != "division")
    assert p.rules.saturations()[key] == 0.004 and p.digest() != base.digest()
    assert base.replace({key: 0.004}, origin="sweep point").digest() == p.digest()
    assert base.replace({key: base.rules.saturations()[key]}).digest() == base.digest()
    with pytest.raises(RuleError, match=r"--set rules.tumor.divison.increases=1: .*did you mean rules.tumor.division.increases"):
        load_params(overrides={"rules.tumor.divison.increases": 1})
    with pytest.raises(RuleError, match=r"rules.tumor.division.increases = 2.0 \(1/min\); allowed \[0, 1.0\]"):
        load_params(overrides={key: 2})
