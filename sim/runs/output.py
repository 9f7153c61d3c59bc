"""Files written whole or not at all: a temporary sibling, then one rename.

Readers (and a resumed experiment or sweep) never see a partial file, whatever moment a
run is interrupted. :func:`sim.runs.run.write_atomic` does the same for a whole folder.
"""

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["replace_into", "write_json", "save_figure"]


def replace_into(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it to ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON (values JSON does not know are written as strings)."""
    replace_into(path, lambda p: p.write_text(json.dumps(obj, indent=2, default=str)))


def save_figure(fig, stem: Path, dpi: int = 150) -> None:
    """A matplotlib figure as ``stem.png`` and ``stem.svg`` (for publication)."""
    for ext in ("png", "svg"):
        replace_into(Path(stem).with_suffix(f".{ext}"),
                     lambda p, ext=ext: fig.savefig(p, format=ext, dpi=dpi))
