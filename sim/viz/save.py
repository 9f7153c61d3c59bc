"""The view's Save button: the current picture and time series into a new folder."""

import json
import os
import time
from pathlib import Path

import numpy as np

from ..plots.state import plot_final_state
from ..runs.output import write_atomic
from ..runs.provenance import provenance
from ..runs.snapshot import final_state
from .picture import render

__all__ = ["ENV_OUT", "save_snapshot"]

#: folder under which snapshots go (default runs/viz, relative to the working directory)
ENV_OUT = "NEUTROSIM_VIZ_OUT"


def _new_folder(root: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out, k = root / stamp, 1
    while out.exists():
        k += 1
        out = root / f"{stamp}-{k}"
    return out


def save_snapshot(model, field: str = "oxygen", root: str | Path | None = None) -> Path:
    """Write ``view.png`` (the picture as shown), ``figure.png`` (the static figure, with
    legend and colour bar), ``timeseries.csv``, ``state.npz`` and ``manifest.json`` into
    ``<root>/<timestamp>/`` (root: $NEUTROSIM_VIZ_OUT or runs/viz); return the folder."""
    root = Path(root or os.environ.get(ENV_OUT) or "runs/viz")
    state = final_state(model)
    seed = getattr(model, "seed", None)
    ts = model.datacollector.get_model_vars_dataframe().reset_index(drop=True)

    def fill(tmp: Path) -> None:
        (tmp / "view.png").write_bytes(render(state, field).png)
        fig = plot_final_state(state, field if field != "none" else "proangiogenic",
                               title=f"{model.p.scenario}, seed {seed}")
        fig.savefig(tmp / "figure.png", dpi=130)
        ts.to_csv(tmp / "timeseries.csv", index=False)
        np.savez_compressed(tmp / "state.npz", **state)
        manifest = {"scenario": model.p.scenario, "seed": seed, "time_h": model.time_h,
                    "steps": model.steps, "field": field, "parameters": model.p.to_dict(),
                    "parameter_sources": list(model.p.sources), **provenance()}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))

    return write_atomic(_new_folder(root), fill)
