"""The Ishigami function, whose Sobol indices are known in closed form, as a sweep's simulation.

The sweep tests run it through the real runner and analysis (``run_sweep(...,
simulate=simulate_ishigami)``, then ``analyze``) on ``tests/data/ishigami.toml``. Its three
factors are model parameters (:data:`INPUTS`), so the spec is read and validated as any
other; each is mapped linearly onto the function's input range [-pi, pi] (which leaves the
Sobol indices unchanged), and the value is reported as the outcome ``tumor_cells``.

``python -m tests.ishigami sweep SPEC --out DIR ...`` is the ``neutrosim`` command whose
sweeps evaluate this function instead of the model.
"""

import math

import numpy as np
import pandas as pd

__all__ = ["ishigami", "simulate_ishigami", "INPUTS", "OUTCOME", "ISHIGAMI_INDICES"]

A, B = 7.0, 0.1

#: input -> (the model parameter that carries it, that parameter's low and high in the spec)
INPUTS = {"x1": ("tumor.cycle_rate_per_min", 0.0002, 0.0004),
          "x2": ("neutrophil.chemotaxis_bias", 0.1, 0.5),
          "x3": ("neutrophil.unbinding_per_min", 0.001, 0.002)}
#: the readout the function's value is reported as
OUTCOME = "tumor_cells"


def ishigami(x1: float, x2: float, x3: float, a: float = A, b: float = B) -> float:
    """Ishigami & Homma (1990): sin x1 + a sin^2 x2 + b x3^4 sin x1, each x_i in [-pi, pi]."""
    return math.sin(x1) + a * math.sin(x2) ** 2 + b * x3**4 * math.sin(x1)


def _indices(a: float = A, b: float = B) -> dict[str, dict[str, float]]:
    """Closed-form first-order and total Sobol indices of the Ishigami function."""
    pi = math.pi
    v1 = 0.5 * (1 + b * pi**4 / 5) ** 2
    v2 = a**2 / 8
    v13 = b**2 * pi**8 * (1 / 18 - 1 / 50)
    var = v1 + v2 + v13
    return {"S1": {"x1": v1 / var, "x2": v2 / var, "x3": 0.0},
            "ST": {"x1": (v1 + v13) / var, "x2": v2 / var, "x3": v13 / var}}


#: known indices for a = 7, b = 0.1 (S1 = 0.314, 0.442, 0; ST = 0.558, 0.442, 0.244), keyed
#: by the parameter that carries each input
ISHIGAMI_INDICES = {which: {INPUTS[x][0]: v for x, v in by_input.items()}
                    for which, by_input in _indices().items()}


def _input(params, name: str) -> float:
    """Input ``name`` in [-pi, pi] from the value of the parameter that carries it."""
    key, low, high = INPUTS[name]
    section, field = key.split(".")
    value = getattr(getattr(params, section), field)
    return -math.pi + 2.0 * math.pi * (value - low) / (high - low)


def simulate_ishigami(spec) -> tuple[pd.DataFrame, None]:
    """A one-row 'time series' with the function value at time 0 (seed unused)."""
    y = ishigami(*(_input(spec.params, name) for name in INPUTS))
    return pd.DataFrame({"time_h": [0.0], OUTCOME: [np.float64(y)]}), None


if __name__ == "__main__":
    import functools
    import sys

    import sim.experiments.sweep as sweep
    from sim.cli import main
    from tests.ishigami import (
        simulate_ishigami as by_name,  # workers import it by this name
    )

    sweep.run_sweep = functools.partial(sweep.run_sweep, simulate=by_name)
    sys.exit(main())
