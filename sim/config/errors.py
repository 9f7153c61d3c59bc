"""The one exception type for bad user input (parameters, rules, scenarios, options)."""

from contextlib import contextmanager
from pathlib import Path

__all__ = ["ParameterError", "reading"]


class ParameterError(ValueError):
    """Bad user input; the message names the file, key, value and allowed range."""


@contextmanager
def reading(path: Path, noun: str = "file", expected: str = "a TOML file",
            error: type[ParameterError] = ParameterError):
    """Turn the ways a user's input file cannot be read into one ``error`` naming it:
    missing, a folder, not UTF-8, or refused by the system."""
    try:
        yield
    except FileNotFoundError:
        raise error(f"{path}: {noun} not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, expected {expected}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read: {exc.strerror}") from None
