"""Analytic test functions with known sensitivity indices, run through the sweep machinery.

They check the designs, the runner and the analysis end to end in milliseconds per run:
a sweep spec with ``model = "ishigami"`` evaluates :func:`ishigami` instead of the model.
"""

import math

import numpy as np
import pandas as pd

__all__ = ["ishigami", "simulate_ishigami", "ISHIGAMI_INDICES"]

A, B = 7.0, 0.1


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


#: known indices for a = 7, b = 0.1 (S1 = 0.314, 0.442, 0; ST = 0.558, 0.442, 0.244)
ISHIGAMI_INDICES = _indices()


def simulate_ishigami(spec) -> tuple[pd.DataFrame, None]:
    """A one-row 'time series' with the function value ``y`` at time 0 (seed unused)."""
    p = spec.params
    y = ishigami(p["x1"], p["x2"], p["x3"])
    return pd.DataFrame({"time_h": [0.0], "y": [np.float64(y)]}), None
