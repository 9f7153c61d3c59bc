"""Types of command-line arguments that the commands share: each parses one option's text
or raises argparse's error naming what was expected."""

import argparse
import math

__all__ = ["whole_number", "number_in"]


def whole_number(lowest: int):
    """A whole number >= ``lowest`` (``3``, ``3.0`` and ``3e0`` alike, as for integer
    parameters: :mod:`sim.config.numbers`)."""
    def parse(text: str) -> int:
        from .config.numbers import whole_number as read

        try:
            value = read(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"must be >= {lowest}, got {value}")
        return value
    return parse


def number_in(lo: float, hi: float, what: str = "a number"):
    """A finite number in [lo, hi] (``hi`` may be infinite: no upper bound)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (math.isfinite(value) and lo <= value <= hi):
            upper = "" if math.isinf(hi) else f" and <= {hi:g}"
            raise argparse.ArgumentTypeError(f"{what} must be finite, >= {lo:g}{upper}; "
                                             f"got {text}")
        return value
    return parse
