"""Optional dependencies, grouped in the package's extras by job: a command that needs one
says which extra to install instead of failing on an import."""

import importlib.util

from .errors import ParameterError

__all__ = ["EXTRAS", "require"]

#: extra -> the modules its commands import (pyproject.toml's optional dependencies)
EXTRAS = {
    "scrna": ("anndata", "scanpy", "h5py", "sklearn"),
    "fit": ("pyabc",),
}


def require(extra: str, command: str) -> None:
    """ParameterError naming the extra to install unless every module of ``extra`` is
    importable."""
    missing = [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]
    if missing:
        raise ParameterError(f"neutrosim {command} needs {', '.join(missing)}: install the "
                             f"{extra} extra, pip install 'neutrosim[{extra}]' (or "
                             f"pip install -e '.[{extra}]' in a checkout)")
