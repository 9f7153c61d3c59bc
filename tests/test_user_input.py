"""What a user types never damages a folder, ends in a traceback, or fails after the work.

Every refusal goes through the real command line (``python -m sim``, as ``neutrosim``):
exit status 2, one line on stderr starting ``neutrosim``, no traceback, and the folder the
command ran in is exactly as before (names, sizes, modification times and modes). Then
the cases that are not refusals: what an overwrite may delete, the umask, and the
temporaries a killed process leaves, which the next command into the same place removes.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sim.runs.temporaries import STALE_AFTER_S, remove_stale, temporary

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--grid", "40", "40", "--set", "initial.tumor_radius_um=150", "--days", "0.05",
        "--quiet"]
NO_GRID = TINY[3:]  # for cases that set the grid themselves
EXP = ["--replicates", "2", "--days", "0.25", "--start-day", "0.125", "--set", "domain.nx=40",
       "--set", "domain.ny=40", "--set", "initial.tumor_radius_um=150", "--quiet"]
RULES = (ROOT / "params" / "rules.csv").read_text()
FAST_RULES = "\n".join(
    ",".join(["endothelial", "proangiogenic", "increases", "tip_speed", "50", *line.split(",")[5:]])
    if line.startswith("endothelial,proangiogenic,increases,tip_speed,") else line
    for line in RULES.splitlines())
SPEC = """
[sweep]
design = "morris"
samples = 2
arms = ["control", "depletion"]
days = 0.1
[sweep.set]
"domain.nx" = 40
"domain.ny" = 40
"initial.tumor_radius_um" = 150.0
"intervention.start_day" = 0.05
[parameters]
"tumor.cycle_rate_per_min" = { low = 0.0002, high = 0.0004 }
"""
ARMS = 'arms = ["control", "depletion"]'


def tree(root: Path) -> dict[str, tuple]:
    """Everything below ``root``: kind, size, modification time and mode of each entry."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[p.relative_to(root).as_posix()] = (p.is_dir(), st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def neutrosim(*args, cwd: Path, env: dict | None = None, timeout: float = 600):
    return subprocess.run([sys.executable, "-m", "sim", *map(str, args)], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout, check=False)


def refused(*args, cwd: Path, env: dict | None = None, watch: Path | None = None) -> str:
    """Run the command, assert it is one clear refusal that changed nothing; its message."""
    watch = watch or cwd
    before = tree(watch)
    proc = neutrosim(*args, cwd=cwd, env=env)
    err = proc.stderr
    assert proc.returncode == 2, err
    assert "Traceback" not in err and err.startswith("neutrosim") and err.count("\n") == 1, err
    assert proc.stdout == ""
    assert tree(watch) == before, "the refused command changed the folder"
    return err


def dead_pid() -> int:
    """The pid of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def stale(folder: Path, target: str, kind: str, *, pid: int) -> Path:
    """A temporary as neutrosim names it, left by process ``pid``."""
    path = folder / f".{target}.{pid}-0badcafe.{kind}"
    if kind == "partial":
        path.mkdir()
        (path / "timeseries.csv").write_text("half")
    else:
        path.write_bytes(b"half a file")
    return path


# -- refusals that need only files -----------------------------------------------------

CASES = {
    # issue cases (numbered as in the issue)
    "2 NUMBA_NUM_THREADS=abc": (["run", "--out", "o", *TINY], {"NUMBA_NUM_THREADS": "abc"}, {},
                                ["NUMBA_NUM_THREADS='abc'", "whole number >= 1"]),
    "2 sweep arms = 5": (["sweep", "spec.toml", "--out", "o"], {},
                         {"spec.toml": SPEC.replace(ARMS, "arms = 5")},
                         ["[sweep] arms = 5: expected a non-empty list of names"]),
    "2 sweep arms a string": (["sweep", "spec.toml", "--out", "o"], {},
                              {"spec.toml": SPEC.replace(ARMS, 'arms = "control"')},
                              ["[sweep] arms = 'control': expected a non-empty list"]),
    "2 sweep set = 5": (["sweep", "spec.toml", "--out", "o"], {},
                        {"spec.toml": SPEC.split("[sweep.set]")[0] + "set = 5\n"
                         + "[parameters]" + SPEC.split("[parameters]")[1]},
                        ["[sweep] set = 5: expected a table"]),
    "2 sweep params = 5": (["sweep", "spec.toml", "--out", "o"], {},
                           {"spec.toml": SPEC.replace(ARMS, ARMS + "\nparams = 5")},
                           ["[sweep] params = 5: expected the path of a TOML overlay file"]),
    "2 experiment.json setup bogus": (["deplete", "--resume", "--out", "d", "--quiet"], {},
                                      {"d/experiment.json": '{"setup": {"bogus": 1}}'},
                                      ["experiment.json: unknown setup keys ['bogus']"]),
    "3 --out /proc/x": (["run", "--out", "/proc/neutrosim-x", *TINY], {}, {},
                        ["--out /proc/neutrosim-x: cannot create it"]),
    "3 --out . --overwrite": (["run", "--out", ".", "--overwrite", *TINY], {},
                              {"keep.txt": "mine"}, ["--out .: is the current folder"]),
    "4 --overwrite a folder neutrosim did not write": (
        ["run", "--out", "mydata", "--overwrite", *TINY], {}, {"mydata/notes.txt": "mine"},
        ["--out mydata: not a folder neutrosim wrote"]),
    "4 --overwrite a run folder holding the user's file": (
        ["run", "--out", "r", "--overwrite", *TINY], {},
        {"r/manifest.json": '{"written_by": "neutrosim"}', "r/notes.txt": "mine"},
        ["--out r: holds files neutrosim did not write there (notes.txt)"]),
    "7 a rules file's speed": (["run", "--rules", "fast.csv", "--out", "o", *TINY], {},
                               {"fast.csv": FAST_RULES},
                               ["fast.csv: the endothelial tip_speed rule saturates at 50.0",
                                "allowed saturation <= 3.33"]),
    "7 --start-day -1": (["deplete", "--start-day", "-1", "--out", "o", "--quiet"], {}, {},
                         ["--start-day -1: intervention.start_day = -1.0 is out of range"]),
    "8 --set domain.nx=100.5": (["run", "--set", "domain.nx=100.5", "--out", "o", *NO_GRID], {}, {},
                                ["domain.nx = '100.5': expected a whole number"]),
    "8 nx = 100.5 in a file": (["run", "--params", "p.toml", "--out", "o", *NO_GRID], {},
                               {"p.toml": "[domain]\nnx = 100.5\n"},
                               ["p.toml: domain.nx = 100.5: expected a whole number"]),
    "9 a rules file with no rows": (["run", "--rules", "empty.csv", "--out", "o", *TINY], {},
                                    {"empty.csv": RULES.splitlines()[0] + "\n"},
                                    ["empty.csv: holds a header and no rules"]),
    "9 --scenario ../default": (["run", "--scenario", "../default", "--out", "o", *TINY], {}, {},
                                ["unknown scenario '../default'", "--params FILE"]),
    "9 --scenario a file": (["run", "--scenario", "mine.toml", "--out", "o", *TINY], {},
                            {"mine.toml": "[tumor]\ncycle_rate_per_min = 0.001\n"},
                            ["unknown scenario 'mine.toml'"]),
    "9 viz --port 99999": (["viz", "--port", "99999"], {}, {}, ["a port is 1 to 65535"]),
    # more of the same kind
    "NUMBA_NUM_THREADS=0 (numba itself stops on it)": (["run", "--out", "o", *TINY],
                                                       {"NUMBA_NUM_THREADS": "0"}, {},
                                                       ["NUMBA_NUM_THREADS='0'"]),
    "sweep days a string": (["sweep", "spec.toml", "--out", "o"], {},
                            {"spec.toml": SPEC.replace("days = 0.1", 'days = "3"')},
                            ["[sweep] days = '3': must be a number > 0"]),
    "sweep outcomes a string": (["sweep", "spec.toml", "--out", "o"], {},
                                {"spec.toml": SPEC.replace(ARMS, ARMS + '\noutcomes = "tumor_cells"')},
                                ["[sweep] outcomes = 'tumor_cells': expected a non-empty list"]),
    "sweep [sweep] not a table": (["sweep", "spec.toml", "--out", "o"], {},
                                  {"spec.toml": 'sweep = 5\n[parameters]\n"tumor.cycle_rate_per_min" = { low = 0.1, high = 0.2 }\n'},
                                  ["[sweep] = 5: expected a table"]),
    "sweep into a folder with a broken sweep.json": (["sweep", "spec.toml", "--out", "d"], {},
                                                     {"spec.toml": SPEC, "d/sweep.json": "[1, 2"},
                                                     ["sweep.json: not a readable sweep record"]),
    "analyze a folder that is not a sweep": (["analyze", "d"], {}, {"d/notes.txt": "mine"},
                                             ["sweep.json not found"]),
    "analyze a broken sweep.json": (["analyze", "d"], {}, {"d/sweep.json": '{"spec": {"design": 1}}'},
                                    ["sweep.json: not a readable sweep record"]),
    "resume a folder that is not an experiment": (["deplete", "--resume", "--out", "d"], {},
                                                  {"d/notes.txt": "mine"},
                                                  ["experiment.json not found"]),
    "resume with experiment.json not JSON": (["deplete", "--resume", "--out", "d"], {},
                                             {"d/experiment.json": "{not json"},
                                             ["experiment.json: not a readable experiment record"]),
    "resume with a setup value of the wrong type": (
        ["deplete", "--resume", "--out", "d"], {},
        {"d/experiment.json": '{"setup": {"replicates": "two"}}'},
        ["setup.replicates = 'two': expected a whole number"]),
    "resume with arms as one string": (
        ["deplete", "--resume", "--out", "d"], {},
        {"d/experiment.json": '{"setup": {"arms": "control,depletion"}}'},
        ["setup.arms = 'control,depletion': expected a list of scenario names"]),
    "--grid with a fraction": (["run", "--grid", "60.5", "60", "--out", "o"], {}, {},
                               ["argument --grid: expected a whole number, got '60.5'"]),
    "--seed with a fraction": (["deplete", "--seed", "1.5", "--out", "o"], {}, {},
                               ["argument --seed: expected a whole number, got '1.5'"]),
    "--days nan": (["run", "--days", "nan", "--out", "o"], {}, {},
                   ["--days nan: time.days = nan: must be finite"]),
    "--days shorter than one model step": (["run", "--days", "0.001", "--out", "o"], {}, {},
                                           ["time.days = 0.001 is shorter than one model step"]),
    "deplete --rules with no rows": (["deplete", "--rules", "empty.csv", "--out", "o"], {},
                                     {"empty.csv": RULES.splitlines()[0] + "\n"},
                                     ["empty.csv: holds a header and no rules"]),
    "sweep --rules missing": (["sweep", "spec.toml", "--rules", "none.csv", "--out", "o"], {},
                              {"spec.toml": SPEC}, ["none.csv: rules file not found"]),
    "--stage that does not exist": (["run", "--stage", "late", "--out", "o"], {}, {},
                                    ["argument --stage: invalid choice: 'late'"]),
    "initial.stage set to an unknown stage": (["run", "--set", "initial.stage=late", "--out", "o"],
                                              {}, {}, ["initial.stage = 'late': allowed"]),
    "--set with no value": (["run", "--set", "time.days=", "--out", "o"], {}, {},
                            ["time.days = '': expected a number"]),
    "a parameter section that is not a table": (["run", "--params", "p.toml", "--out", "o"], {},
                                                {"p.toml": "tumor = 5\n"},
                                                ["p.toml: [tumor] must be a table"]),
    "viz on a host that does not exist": (["viz", "--host", "no-such-host.invalid"], {}, {},
                                          ["--host no-such-host.invalid", "cannot listen there"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(tmp_path, case):
    args, env, files, words = CASES[case]
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    err = refused(*args, cwd=tmp_path, env=env)
    for w in words:
        assert w in err, err
    if "7" in case.split()[0]:  # blamed on what the user typed, not on what it was made into
        assert "default.toml" not in err and "--set" not in err


def test_a_port_in_use_is_refused_before_starting(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        err = refused("viz", "--host", "127.0.0.1", "--port", port, cwd=tmp_path)
    assert f"--port {port}: cannot listen there (Address already in use)" in err


def test_whole_numbers_read_alike_from_set_files_and_options(tmp_path):
    """``100.0`` for an integer key is 100 wherever it is typed."""
    (tmp_path / "p.toml").write_text("[domain]\nnx = 60.0\n")
    for name, args in {"set": ["--set", "domain.nx=60.0"], "file": ["--params", "p.toml"],
                       "grid": ["--grid", "60.0", "40"]}.items():
        proc = neutrosim("run", "--out", name, *NO_GRID, "--set", "domain.ny=40", *args,
                         cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())
        assert manifest["parameters"]["domain"]["nx"] == 60


# -- an experiment's folder ------------------------------------------------------------

@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    """A finished tiny depletion experiment (2 arms x 2 replicates)."""
    out = tmp_path_factory.mktemp("exp") / "D"
    proc = neutrosim("deplete", *EXP, "--workers", "2", "--out", out, cwd=out.parent)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture
def folder(experiment, tmp_path) -> Path:
    copy = tmp_path / "D"
    shutil.copytree(experiment, copy)
    return copy


def test_a_refused_resume_changes_nothing_and_the_plain_resume_still_works(folder):
    """Issue case 1: a resume that would change the runs is refused before experiment.json
    (or anything else) is rewritten, so the folder resumes as it was."""
    err = refused("deplete", "--resume", "--days", "0.5", "--out", "D", "--quiet",
                  cwd=folder.parent)
    assert "runs/control-r00.parquet: made with different parameters" in err
    err = refused("deplete", "--resume", "--seed", "3", "--out", "D", cwd=folder.parent)
    assert "made with seed 1, now 3" in err
    parts = {p.name: p.stat().st_mtime_ns for p in (folder / "runs").iterdir()}
    proc = neutrosim("deplete", "--resume", "--out", "D", "--quiet", cwd=folder.parent)
    assert proc.returncode == 0, proc.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (folder / "runs").iterdir()} == parts
    assert json.loads((folder / "manifest.json").read_text())["runs_resumed_from_disk"] == 4


def test_a_damaged_run_part_is_named_not_a_traceback(folder):
    (folder / "runs" / "depletion-r01.parquet").write_bytes(b"PAR1 this is not parquet")
    err = refused("deplete", "--resume", "--out", "D", cwd=folder.parent)
    assert "runs/depletion-r01.parquet: not a readable run part" in err


def test_overwrite_never_replaces_an_experiment_folder(folder):
    err = refused("run", "--out", "D", "--overwrite", *TINY, cwd=folder.parent)
    assert "holds files neutrosim did not write there (experiment.json, failures" in err


def test_killed_while_writing_a_part_then_resumed_leaves_no_temporary(folder):
    """SIGKILL in the middle of writing a run's part (a real kill, of the process that
    writes), then --resume: the run is done again and no temporary survives."""
    for p in (folder / "runs").glob("control-r01*"):
        p.unlink()
    for name in ("runs.parquet", "manifest.json", "report.md"):
        (folder / name).unlink()
    kill_mid_write = (
        "import os, signal, sys\n"
        "import sim.runs.ensemble as e\n"
        "def half(table, path, **kw):\n"
        "    open(path, 'wb').write(b'PAR1 half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "e.pq.write_table = half\n"
        "from sim.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    log = folder.parent / "killed.log"
    with open(log, "w") as fh:  # not a pipe: the orphaned pool worker would hold it open
        proc = subprocess.Popen([sys.executable, "-c", kill_mid_write, "deplete", "--resume",
                                 "--workers", "1", "--out", "D", "--quiet"], cwd=folder.parent,
                                stdout=fh, stderr=fh, start_new_session=True)
        try:
            assert proc.wait(timeout=600) == -signal.SIGKILL, log.read_text()
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # its pool worker, orphaned by the kill
    log.unlink()
    left = [p.name for p in (folder / "runs").iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1 and left[0].startswith(".control-r01.parquet.")
    mine = folder / "runs" / ".notes.tmp"  # the user's own hidden file: not ours to remove
    mine.write_text("mine")
    resumed = neutrosim("deplete", "--resume", "--out", "D", "--quiet", cwd=folder.parent)
    assert resumed.returncode == 0, resumed.stderr
    assert not [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".partial", ".old"))
                and p != mine]
    assert mine.read_text() == "mine"
    runs = pd.read_parquet(folder / "runs.parquet")
    assert len(runs.groupby(["arm", "replicate"])) == 4


# -- a single run's folder -------------------------------------------------------------

def test_killed_while_writing_a_run_then_rerun_leaves_no_temporary(tmp_path):
    """SIGKILL while the run folder is being written leaves a hidden ``.partial`` folder
    beside --out; the next run into the same place removes it, and only it."""
    kill_mid_write = (
        "import os, signal, sys\n"
        "import sim.runs.run as r\n"
        "r.np.savez = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
        "from sim.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, "-c", kill_mid_write, "run", "--out", "r", *TINY],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    partial = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert len(partial) == 1 and (partial[0] / "timeseries.csv").is_file()
    assert not (tmp_path / "r").exists()
    live = tmp_path / temporary(Path("r"), "partial").name  # this test's pid: alive
    live.mkdir()
    other = stale(tmp_path, "other-run", "partial", pid=dead_pid())  # another folder's
    again = neutrosim("run", "--out", "r", *TINY, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["r", live.name, other.name])


def test_stale_means_its_process_is_gone_or_it_is_a_day_old(tmp_path):
    dead, me = dead_pid(), os.getpid()
    gone = stale(tmp_path, "a.parquet", "tmp", pid=dead)
    fresh = stale(tmp_path, "b.parquet", "tmp", pid=me)
    old = stale(tmp_path, "c.parquet", "tmp", pid=me)
    day_ago = time.time() - STALE_AFTER_S - 60
    os.utime(old, (day_ago, day_ago))
    user = tmp_path / ".d.parquet.123.tmp"  # not our pattern (no token): never touched
    user.write_text("mine")
    assert sorted(remove_stale(tmp_path)) == sorted([gone, old])
    assert fresh.exists() and user.exists()


def test_run_folders_follow_the_umask(tmp_path):
    for umask, dirmode, filemode in ((0o022, 0o755, 0o644), (0o027, 0o750, 0o640)):
        out = tmp_path / f"u{umask:o}"
        proc = subprocess.run([sys.executable, "-m", "sim", "run", "--out", str(out), *TINY],
                              capture_output=True, text=True, check=False,
                              preexec_fn=lambda u=umask: os.umask(u))
        assert proc.returncode == 0, proc.stderr
        assert out.stat().st_mode & 0o777 == dirmode
        assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {filemode}


def test_the_end_of_a_run_is_recorded_whatever_the_interval(tmp_path):
    """Issue case 10: --days that is not a whole number of recording intervals."""
    proc = neutrosim("run", "--out", "r", *TINY[:-3], "--days", "0.25", "--record-every", "24",
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ts = pd.read_csv(tmp_path / "r" / "timeseries.csv")
    assert list(ts["time_h"]) == [0.0, 6.0]
    assert ": day 0.25," in proc.stdout
