"""How a number a user typed is read: the one rule for whole numbers.

Integer parameters and options (``domain.nx``, ``--grid``, ``--replicates``, ...) accept a
whole number however it is written: ``100``, ``100.0`` or ``1e2``, in a TOML file, after
``--set`` or as an option. ``100.5``, ``true`` or ``"many"`` are refused alike.
"""

import math

__all__ = ["whole_number"]


def whole_number(value) -> int:
    """``value`` (an int, a float or their text) as an int; ValueError unless it is a finite
    whole number. Booleans are not numbers here."""
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"expected a whole number, got {value!r}") from None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    raise ValueError(f"expected a whole number, got {value!r}")
