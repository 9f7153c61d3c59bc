"""What the view's controls mean: control values -> :class:`~sim.config.params.Params` -> model.

The browser view holds no model logic. Its controls are turned into parameter overrides
and go through :func:`sim.config.params.load_params` exactly as the CLI's ``--set`` does; the
model is then built as :func:`sim.runs.run.build_model` builds it (``NeutroModel(params,
rng=seed)``). :class:`ViewModel` only exists because SolaraViz's Reset re-creates the
model as ``type(model)(**controls)``.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from ..config.errors import ParameterError
from ..config.params import Params, load_params, scenario_names
from ..config.scenarios import efficiency_overrides
from ..config.units import MIN_PER_HOUR
from ..model.model import NeutroModel

__all__ = ["ENV_PARAMS", "RATES", "ViewModel", "view_params", "model_params", "initial_controls",
           "params_file", "parse_seed"]

#: the overlay file given to ``neutrosim viz --params FILE`` reaches the app through this
ENV_PARAMS = "NEUTROSIM_VIZ_PARAMS"
#: the view records every step (at least every 0.1 h) so the plots move with each click
RECORD_MIN_H = 0.1


@dataclass(frozen=True)
class Rate:
    """A main rate as a slider: its dotted parameter key, label with unit, range, step."""

    key: str
    label: str
    lo: float
    hi: float
    step: float


#: slider name (a keyword of ViewModel) -> parameter
RATES = {
    "cycle_rate": Rate("tumor.cycle_rate_per_min", "Tumor division rate [1/min]", 0.0, 0.0012, 0.00005),
    "neutrophil_supply": Rate("neutrophil.circulating_supply", "Neutrophil supply [x advanced tumor]",
                              0.0, 3.0, 0.1),
    "neutrophil_speed": Rate("neutrophil.migration_speed_um_per_min", "Neutrophil speed [um/min]",
                             0.0, 20.0, 0.5),
    "unbinding": Rate("neutrophil.unbinding_per_min", "Neutrophil unbinding [1/min]", 0.0, 0.01, 0.0002),
    "tip_speed": Rate("endothelial.tip_speed_um_per_min", "Vessel tip speed [um/min]", 0.0, 1.0, 0.02),
}
DEFAULT_EFFICIENCY = 0.9


def params_file() -> str | None:
    """The overlay file of ``neutrosim viz --params`` (None when not given)."""
    return os.environ.get(ENV_PARAMS) or None


def parse_seed(seed) -> int:
    """The seed from the seed box (text in the browser), as an int."""
    try:
        return int(str(seed).strip())
    except ValueError:
        raise ParameterError(f"seed {seed!r}: expected a whole number") from None


def view_params(file: str | Path | None = None, *, scenario: str = "control",
                start_day: float | None = None, efficiency: float | None = None,
                rates: dict[str, float] | None = None) -> Params:
    """Parameters of a run from the controls, as ``neutrosim run --scenario ... --set ...``.

    ``start_day`` (day) sets ``intervention.start_day``; ``efficiency`` (0-1) replaces the
    strength of the scenario's intervention(s), as ``neutrosim deplete --efficiency``;
    ``rates`` are ``{slider name: value}`` of :data:`RATES`. The only view-specific
    setting is ``time.record_every_h``: every step (>= 0.1 h), which changes no dynamics.
    """
    overrides: dict[str, float] = {}
    if start_day is not None:
        overrides["intervention.start_day"] = float(start_day)
    if efficiency is not None:
        overrides.update(efficiency_overrides(scenario, efficiency))
    for name, value in (rates or {}).items():
        if name not in RATES:
            raise ParameterError(f"unknown rate control {name!r}; allowed: {', '.join(RATES)}")
        overrides[RATES[name].key] = float(value)
    p = load_params(file, scenario=scenario, overrides=overrides)
    record_h = max(RECORD_MIN_H, p.time.dt_min / MIN_PER_HOUR)
    return p.replace({"time.record_every_h": record_h}, origin="browser view: record every step")


class ViewModel(NeutroModel):
    """The model a Reset in the view builds: ``NeutroModel(view_params(...), rng=seed)``.

    Keywords are the view's controls (see :func:`model_params`); rates left at None keep
    their parameter value. The scenario keyword is ``scenario_name``: Mesa 3.5 models own
    a ``scenario`` attribute, and SolaraViz's Reset passes a Mesa ``Scenario`` object as
    ``scenario=`` to any model that takes that keyword (or ``**kwargs``).

    The view ends where a CLI run ends: :class:`NeutroModel` turns ``running`` False at
    ``time.days`` (21 by default), and SolaraViz then disables Play and Step (Reset starts
    again). This is deliberate: the view shows the run ``neutrosim run`` makes with the same
    parameters, and Play would otherwise step on without end; to watch longer, give a
    larger ``time.days`` (``neutrosim viz --params FILE``).
    """

    def __init__(self, *, scenario_name: str = "control", start_day: float | None = None,
                 efficiency: float | None = None, seed=1, params_file: str | None = None,
                 cycle_rate: float | None = None, neutrophil_supply: float | None = None,
                 neutrophil_speed: float | None = None, unbinding: float | None = None,
                 tip_speed: float | None = None):
        given = dict(cycle_rate=cycle_rate, neutrophil_supply=neutrophil_supply,
                     neutrophil_speed=neutrophil_speed, unbinding=unbinding, tip_speed=tip_speed)
        params = view_params(params_file, scenario=scenario_name, start_day=start_day,
                             efficiency=efficiency,
                             rates={k: v for k, v in given.items() if v is not None})
        self.seed = parse_seed(seed)
        super().__init__(params, rng=self.seed)


def model_params(file: str | Path | None = None) -> dict:
    """SolaraViz ``model_params``: scenario, treatment start and efficiency, rates, seed.

    Defaults are the values of the default parameters with ``file`` on top.
    """
    base = load_params(file)
    out = {
        "scenario_name": {"type": "Select", "value": "control", "values": scenario_names(),
                     "label": "Scenario (applies on Reset)"},
        "start_day": {"type": "SliderFloat", "value": base.intervention.start_day, "min": 0.0,
                      "max": max(21.0, base.time.days), "step": 0.5,
                      "label": "Treatment start [day]"},
        "efficiency": {"type": "SliderFloat", "value": DEFAULT_EFFICIENCY, "min": 0.0, "max": 1.0,
                       "step": 0.05, "label": "Treatment efficiency [0-1]"},
    }
    for name, r in RATES.items():
        section, key = r.key.split(".")
        value = float(getattr(getattr(base, section), key))
        out[name] = {"type": "SliderFloat", "value": value, "min": r.lo, "max": max(r.hi, value),
                     "step": r.step, "label": r.label}
    out["seed"] = {"type": "InputText", "value": "1", "label": "Seed"}
    out["params_file"] = str(file) if file else None
    return out


def initial_controls(params: dict) -> dict:
    """The keywords a Reset would pass with every control at its default value."""
    return {k: (v["value"] if isinstance(v, dict) else v) for k, v in params.items()}
