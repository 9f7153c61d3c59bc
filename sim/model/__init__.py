"""The Mesa model: ``NeutroModel``, its populations, the initial tissue."""

from .model import NeutroModel

__all__ = ["NeutroModel"]
