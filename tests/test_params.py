"""Parameters: defaults documented and valid; every kind of bad input gets one clear error."""

import tomllib

import pytest

from sim.config.errors import ParameterError
from sim.config.params import describe, load_params, params_dir, scenario_names


def test_every_default_has_value_unit_meaning_source():
    rows = describe()
    assert len(rows) > 60
    for row in rows:
        for field in ("value", "unit", "meaning", "source"):
            assert str(row.get(field, "")).strip(), f"{row['key']} lacks {field}"
        src = row["source"].lower()
        cited = any(ch.isdigit() for ch in src) or "physicell" in src or "rh_mocafe" in src
        assert src.startswith(("assumed", "calibrated from")) or cited, \
            f"{row['key']}: source is neither a citation nor 'assumed'"


def test_sources_cite_no_file_missing_from_the_project():
    """A source naming a document (``docs/numerics.md``) names one a user of the project has."""
    import csv
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    with open(params_dir() / "rules.csv", newline="") as fh:
        sources = [r["source"] for r in csv.DictReader(fh)] + [r["source"] for r in describe()]
    sources.append((params_dir() / "default.toml").read_text())  # its header's references too
    cited = {name for text in sources for name in re.findall(r"[\w./-]+\.md\b", text)}
    assert cited, "no document is cited at all: the pattern no longer matches"
    missing = sorted(n for n in cited if not (root / n).is_file() and not (root / "docs" / n).is_file())
    assert not missing, f"sources cite files not in the project: {missing}"


def test_defaults_load_into_frozen_typed_config():
    p = load_params()
    assert p.domain.nx == 200 and isinstance(p.domain.nx, int)
    assert p.oxygen.diffusion_um2_per_min == 1e5
    with pytest.raises(Exception):
        p.domain.nx = 10  # frozen


def test_overrides_in_order_and_types_coerced(tmp_path):
    overlay = tmp_path / "o.toml"
    overlay.write_text("[tumor]\ncycle_rate_per_min = 0.001\n[domain]\nnx = 120\n")
    p = load_params(overlay, overrides={"domain.nx": "150", "neutrophil.chemotaxis_bias": 0.5})
    assert p.tumor.cycle_rate_per_min == 0.001
    assert p.domain.nx == 150 and isinstance(p.domain.nx, int)  # --set wins over the file
    assert p.neutrophil.chemotaxis_bias == 0.5


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"tumor.nonsense": 1}, ["tumor.nonsense", "allowed"]),
        ({"nosection.x": 1}, ["unknown section", "allowed"]),
        ({"tumor.cycle_rate_per_min": -0.1}, ["tumor.cycle_rate_per_min", "-0.1", "[0.0, 1.0]"]),
        ({"neutrophil.chemotaxis_bias": 1.5}, ["neutrophil.chemotaxis_bias", "1.5", "[0.0, 1.0]"]),
        ({"domain.nx": 5}, ["domain.nx", "[20, 4000]"]),
        ({"domain.nx": 12.5}, ["domain.nx", "whole number"]),
        ({"tumor.cycle_rate_per_min": "fast"}, ["tumor.cycle_rate_per_min", "expected a number"]),
        ({"tumor.cycle_rate_per_min": True}, ["expected a number"]),
        ({"tumor.migration_speed_um_per_min": 5.0}, ["time.dt_min = 6.0 is too long", "<= 4"]),
        ({"time.record_every_h": 0.25}, ["record_every_h", "whole number of model steps"]),
        ({"domain.nx": 40, "domain.ny": 40}, ["too small", "tumor_radius_um"]),
        ({"intervention.neutrophil_depletion": 1.2}, ["intervention.neutrophil_depletion", "[0.0, 1.0]"]),
    ],
)
def test_bad_values_name_key_value_and_range(overrides, words):
    with pytest.raises(ParameterError) as err:
        load_params(overrides=overrides)
    msg = str(err.value)
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"


def test_bad_files_are_named(tmp_path):
    with pytest.raises(ParameterError, match="missing.toml: file not found"):
        load_params(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[tumor\ncycle = 1\n")
    with pytest.raises(ParameterError, match="bad.toml: not valid TOML"):
        load_params(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[tumor]\ncycle_rate = 0.1\n")
    with pytest.raises(ParameterError, match=r"unknown.toml: unknown key 'tumor.cycle_rate'"):
        load_params(unknown)


def test_unknown_scenario_lists_the_known_ones():
    with pytest.raises(ParameterError) as err:
        load_params(scenario="cure")
    assert "cure" in str(err.value) and "depletion" in str(err.value)


def test_scenarios_change_only_what_they_claim():
    control = load_params().flat()
    claims = {
        "depletion": {"intervention.neutrophil_depletion"},
        "cxcr2_inhibition": {"intervention.cxcr2_inhibition"},
        "macrophage_depletion": {"intervention.macrophage_depletion"},
        "contact_blockade": {"intervention.contact_blockade"},
        "control": set(),
    }
    assert set(scenario_names()) == set(claims)
    for name, keys in claims.items():
        flat = load_params(scenario=name).flat()
        changed = {k for k in flat if flat[k] != control[k]}
        assert changed == keys, name
        for k in keys:
            assert 0 < flat[k] <= 1


def test_schema_and_default_file_agree():
    with open(params_dir() / "default.toml", "rb") as fh:
        tree = tomllib.load(fh)
    flat = load_params().flat()
    assert {f"{s}.{k}" for s, d in tree.items() for k in d} == set(flat)


def test_parameter_reference_in_docs_is_current():
    from sim.config.paramdoc import render

    doc = params_dir().parent / "docs" / "parameters.md"
    if not doc.is_file():
        pytest.skip("docs/ not present (installed package without checkout)")
    assert doc.read_text() == render(), "run: neutrosim params > docs/parameters.md"


def test_every_field_of_the_registry_has_its_parameters_and_is_a_signal():
    """One table of fields: each has a parameter section with transport coefficients (and
    a boundary choice if transient), is a signal of every cell type in its unit, and has a
    label for figures; the model builds exactly these fields."""
    from sim.config.field_registry import FIELD_NAMES, FIELDS, TRANSIENT
    from sim.config.rules import SIGNALS

    p = load_params()
    for f in FIELDS:
        section = getattr(p, f.name)
        assert section.diffusion_um2_per_min >= 0 and section.decay_per_min >= 0
        assert hasattr(section, "boundary") == (f.solver == TRANSIENT), f.name
        assert (f.tolerance is None) == (f.solver == TRANSIENT), f.name
        for cell_type, signals in SIGNALS.items():
            assert signals[f.name] == f.unit, (cell_type, f.name)
        assert f.axis_label == f"{f.label} [{f.unit}]"
    assert len(set(FIELD_NAMES)) == len(FIELD_NAMES)


def test_readme_names_exactly_the_sourced_parameters():
    """The README's honesty note lists every value with a citation, and no other."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    note = readme.split("**Honesty about the parameters.**")[1].split("\n\n")[0]
    named = set(re.findall(r"`([a-z_]+\.[A-Za-z0-9_]+)`", note)) - {"default.toml", "rules.csv"}
    sourced = {r["key"] for r in describe()
               if not r["source"].lower().startswith(("assumed", "calibrated from"))}
    assert named == sourced
