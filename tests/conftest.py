"""Shared fixtures: small configurations that keep the suite fast on CI's 2 cores."""

import os
import re
import sys
import warnings
from pathlib import Path

import pytest

from sim.config.params import load_params

#: a 1.6 x 1.6 mm window with a 300 um tumor: same rules, ~6x cheaper than the default
SMALL = {
    "domain.nx": 80,
    "domain.ny": 80,
    "initial.tumor_radius_um": 300.0,
    "initial.host_vessels": 4,
    "time.warmup_steps": 5,
}

#: nothing placed at t=0: tests put agents where they want them
EMPTY = {
    **SMALL,
    "initial.tumor_packing": 0.0,
    "initial.host_vessels": 0,
    "initial.tumor_vessel_density_per_mm2": 0.0,
    "initial.macrophages_per_mm2": 0.0,
    "initial.neutrophils_per_mm2_tumor": 0.0,
    "time.warmup_steps": 0,
}


def planted_rules(folder: Path, **saturations: float) -> Path:
    """A copy of params/rules.csv in ``folder`` whose rows named by ``saturations`` (keys
    "cell__signal__direction__behaviour") have the given saturation; returns its path."""
    from sim.config.params import params_dir

    rules = (params_dir() / "rules.csv").read_text()
    for key, value in saturations.items():
        row = ",".join(key.split("__")) + ","
        rules, n = re.subn(rf"^{re.escape(row)}[^,]*,", f"{row}{value},", rules, flags=re.M)
        assert n == 1, f"no rule row {row}"
    path = folder / "rules.csv"
    path.write_text(rules)
    return path


#: the kill rule's key for :func:`planted_rules`
KILL_RULE = "neutrophil__tumor_contact__increases__kill"


@pytest.fixture
def small_params():
    return load_params(overrides=SMALL)


@pytest.fixture
def empty_model():
    """A model with no cells, built from any extra overrides."""
    from sim.model.model import NeutroModel

    def make(seed=0, scenario=None, **overrides):
        p = load_params(scenario=scenario, overrides={**EMPTY, **overrides})
        return NeutroModel(p, rng=seed)

    return make


@pytest.fixture(autouse=True)
def _quiet_mesa():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="mesa")
        yield


NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def execute_notebook(name: str, monkeypatch, **env: str) -> list[dict]:
    """Run ``notebooks/<name>`` top to bottom in a fresh kernel of this interpreter (as CI
    does) with ``env`` set; return every code cell's outputs. A failing cell raises."""
    import nbclient
    import nbformat

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # the kernel is started as "python": make that this interpreter
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def images(outputs: list[dict]) -> list[dict]:
    return [o for o in outputs if "image/png" in o.get("data", {})]
