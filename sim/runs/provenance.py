"""Provenance of what a run, an experiment, a sweep or a saved view was made with.

:func:`provenance` gives the fields every manifest carries (the versions of Python and the
main packages, and the git revision of the code); each manifest is its own keys plus these.
"""

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from .destination import MARK

__all__ = ["provenance", "versions", "git_revision"]


def provenance() -> dict[str, Any]:
    """The fields common to every manifest: the mark that neutrosim wrote it (what lets
    ``--overwrite`` replace the folder), ``versions`` and ``git_revision``."""
    return {"written_by": MARK, "versions": versions(), "git_revision": git_revision()}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("neutrosim", "mesa", "numpy", "numba", "scipy", "pandas", "pyarrow", "matplotlib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def git_revision() -> str:
    """The checkout's commit (with '+dirty' if modified), or 'unknown' when this code does
    not run from a git checkout (an installed copy, even one inside a checkout's .venv, says
    nothing about which commit it was built from)."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5).stdout.strip()
        if not rev:
            return "unknown"
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", Path(__file__).name],
                                 cwd=here, capture_output=True, timeout=5).returncode == 0
        if not tracked:
            return "unknown (an installed copy, not a checkout)"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=5).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
