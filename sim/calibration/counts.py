from ..config.errors import ParameterError


class CalibrationError(ParameterError):
    """Bad single-cell input or mapping."""
