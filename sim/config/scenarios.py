"""Scenarios as experiment arms: which arms exist, and how an efficiency sets an arm's treatment.

The scenarios themselves are the files in ``params/scenarios/``
(:func:`sim.config.params.scenario_names`, :func:`sim.config.params.scenario_interventions`).
The depletion experiment, sweeps and the browser view name their arms and set treatment
strengths through the two functions here.
"""

from collections.abc import Iterable

from .errors import ParameterError
from .params import scenario_interventions, scenario_names

__all__ = ["check_arms", "efficiency_overrides"]


def check_arms(arms: Iterable[str], where: str, *, as_list: bool = False) -> None:
    """Refuse arms that are not scenarios: one :class:`ParameterError` naming the unknown
    ones and the allowed names.

    The message reads ``{where}: unknown arm 'a', 'b'; allowed: ...``, or with ``as_list``
    (arms given as a list, as in a sweep spec) ``{where}: unknown ['a', 'b']; allowed: ...``.
    """
    known = scenario_names()
    bad = [a for a in arms if a not in known]
    if bad:
        names = str(bad) if as_list else "arm " + ", ".join(map(repr, bad))
        raise ParameterError(f"{where}: unknown {names}; allowed: {', '.join(known)}")


def efficiency_overrides(scenario: str, efficiency: float) -> dict[str, float]:
    """``{"intervention.KEY": efficiency}`` for every intervention the scenario sets (none
    for control): the overrides that give its treatment that strength (0-1)."""
    return {key: float(efficiency) for key in scenario_interventions(scenario)}
