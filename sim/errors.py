"""The one exception type for bad user input (parameters, rules, scenarios, options)."""

__all__ = ["ParameterError"]


class ParameterError(ValueError):
    """Bad user input; the message names the file, key, value and allowed range."""
