"""What a process pays once: the command line imports no heavy library until a command
needs it, pool workers start warm (the model's modules and numba's kernels loaded in the
fork server they are forked from), and warm workers give the same results as a serial run."""

import gc
import subprocess
import sys

import pandas as pd
import pytest

from sim import load_params
from sim.cli import main
from sim.runs.ensemble import RunSpec, execute_run
from sim.runs.executors import ProcessExecutor
from sim.runs.warm import loaded_kernels

#: what a run imports and a mere look at the command line must not
HEAVY = ("numpy", "numba", "pandas", "mesa", "matplotlib", "scipy", "pyarrow", "tqdm",
         "networkx")
TINY = {"domain.nx": 50, "domain.ny": 50, "initial.tumor_radius_um": 200.0}


def _imported_by(code: str) -> list[str]:
    """The heavy libraries a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport sys\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    return eval(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [[], ["--help"], ["run", "--help"], ["deplete", "--help"],
                                  ["sweep", "--help"]])
def test_the_command_line_imports_no_heavy_library_before_a_command_runs(argv):
    """``import sim.cli`` and ``neutrosim ... --help`` (as ``python -m sim``) stay light."""
    code = ("import runpy, sys\n"
            f"sys.argv = ['neutrosim', *{argv!r}]\n"
            "try:\n"
            "    runpy.run_module('sim', run_name='__main__')\n"
            "except SystemExit:\n"
            "    pass\n") if argv else "import sim.cli"
    assert _imported_by(code) == []


#: what the run command must not import: pyplot (its figure is a plain Figure), what the
#: scale bar used to come from, and what only the other commands or the browser view use
NOT_FOR_A_RUN = ("matplotlib.pyplot", "mpl_toolkits.axes_grid1", "scipy.stats", "statsmodels",
                 "SALib", "dask", "distributed", "tabulate", "solara", "IPython",
                 "sim.experiments", "sim.viz")


def test_the_run_command_imports_only_what_a_run_needs(tmp_path):
    """``neutrosim run`` as its own process (``python -m sim``), run to the end: it wrote
    its folder, and none of :data:`NOT_FOR_A_RUN` is in ``sys.modules``."""
    argv = ["neutrosim", "run", "--out", str(tmp_path / "r"), "--quiet", "--days", "0.05",
            "--grid", "40", "40", "--set", "initial.tumor_radius_um=200"]
    code = ("import runpy, sys\n"
            f"sys.argv = {argv!r}\n"
            "try:\n"
            "    runpy.run_module('sim', run_name='__main__')\n"
            "except SystemExit as exc:\n"
            "    assert not exc.code, exc.code\n"
            f"print(sorted(m for m in {NOT_FOR_A_RUN!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert (tmp_path / "r" / "final_state.png").is_file()
    assert eval(done.stdout.strip().splitlines()[-1]) == []


def _probe(spec: RunSpec):
    """An ensemble task: what the worker had when the task began, then the run itself."""
    had = {m: m in sys.modules for m in ("mesa", "sim.model.model")}  # unpickling the spec
    kernels = loaded_kernels()  # imports numba and the config, never the model
    return had, kernels, gc.get_freeze_count(), execute_run(spec)


def test_pool_workers_start_warm_and_give_the_serial_results_bit_for_bit():
    params = load_params(overrides=TINY)
    specs = [RunSpec(f"r{s}", params, s, days=0.25) for s in (1, 2, 3, 4)]
    for _ in range(2):  # a second pool is forked from the same, already warm, fork server
        with ProcessExecutor(2) as pool:
            got = {spec.key: (out, exc) for spec, out, exc in pool.imap_unordered(_probe, specs)}
        for spec in specs:
            (had, kernels, frozen, outcome), exc = got[spec.key]
            assert exc is None and outcome.error is None
            assert all(had.values()), f"the worker imported the model at its run: {had}"
            assert any(k.startswith("sim.fields.") for k in kernels)  # the field solvers
            assert any(k.startswith("sim.cells.") for k in kernels)  # and the cells' kernels
            assert frozen > 0  # the fork server froze what it imported before forking
            serial = execute_run(spec)
            pd.testing.assert_frame_equal(outcome.table, serial.table, check_exact=True)


def test_warm_imports_with_the_collector_paused_freezes_and_restores_it():
    """In a fresh interpreter (a freeze is for the whole process): the modules are imported,
    what is alive is frozen, and the collector is left on or off as it was."""
    code = ("import gc, sys\n"
            "from sim.runs.warm import warm\n"
            "gc.disable()\n"
            "warm(['json'])\n"
            "off = gc.isenabled()\n"
            "gc.enable()\n"
            "warm(['sim.config.params'])\n"
            "print(off, gc.isenabled(), gc.get_freeze_count() > 0, 'numba' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["False", "True", "True", "True"]


def test_main_called_with_arguments_leaves_the_collector_alone(tmp_path):
    """A library call (tests, notebooks) is not the command's own process: nothing is frozen."""
    frozen = gc.get_freeze_count()
    argv = ["run", "--out", str(tmp_path / "r"), "--quiet", "--days", "0.05", "--grid", "40",
            "40", "--set", "initial.tumor_radius_um=200"]
    assert main(argv) == 0
    assert gc.get_freeze_count() == frozen and gc.isenabled()
