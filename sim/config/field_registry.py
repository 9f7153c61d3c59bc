"""The fields of the tissue: oxygen and the four secreted factors, one record each.

The parameters (one section per field), the rules (each field is a signal every cell type
senses), the model and its field solvers, the figures and the browser view all read this
table, so a field is added or renamed in one place.
"""

from dataclasses import dataclass

__all__ = ["FieldInfo", "FIELDS", "FIELD_NAMES", "BOUNDARIES", "STEADY", "TRANSIENT",
           "field_info", "transient_names"]

#: solved to its quasi-steady state each model step (multigrid, :mod:`sim.fields.multigrid`)
STEADY = "steady"
#: advanced in time by LOD sub-steps (:mod:`sim.fields.lod`)
TRANSIENT = "transient"
#: what a field does at the window's edge: held at a value, or closed (zero gradient)
BOUNDARIES = ("dirichlet", "noflux")


@dataclass(frozen=True)
class FieldInfo:
    """One field.

    Attributes:
        name: its key: the parameter section ``[name]``, ``model.fields[name]``, and the
            signal the rules name.
        unit: concentration unit of its values.
        label: what it stands for, for figure labels.
        menu: its entry in the browser view's field menu (None: not offered there).
        solver: :data:`STEADY` or :data:`TRANSIENT`.
        tolerance: relative residual a steady solve reaches each step (None if transient).
    """

    name: str
    unit: str
    label: str
    menu: str | None
    solver: str
    tolerance: float | None = None

    @property
    def axis_label(self) -> str:
        """'label [unit]', for colour bars and axes."""
        return f"{self.label} [{self.unit}]"


FIELDS: tuple[FieldInfo, ...] = (
    # oxygen relaxes in well under a minute: solved to its quasi-steady state each step. Its
    # tolerance: errors <= 0.06 mmHg, and 21-day readouts within 0.15 seed-to-seed SD of a
    # 1e-6 solve (docs/numerics.md, "Oxygen tolerance").
    FieldInfo("oxygen", "mmHg", "oxygen", "oxygen", STEADY, 1e-4),
    FieldInfo("chemoattractant", "ng/mL", "chemoattractant (CXCL1/2-like)", "chemoattractant",
              TRANSIENT),
    FieldInfo("proangiogenic", "ng/mL", "pro-angiogenic factor (VEGF-like)", "pro-angiogenic",
              TRANSIENT),
    FieldInfo("proinvasive", "ng/mL", "pro-invasive factor (OSM/MMP9-like)", "pro-invasive",
              TRANSIENT),
    FieldInfo("tumor_signal", "a.u.", "macrophage-activating tumor signal", None, TRANSIENT),
)

#: field names in the table's order (the order of the model's fields and outputs)
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
_BY_NAME = {f.name: f for f in FIELDS}


def field_info(name: str) -> FieldInfo:
    """The record of field ``name`` (KeyError naming the known fields otherwise)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown field {name!r}; known: {', '.join(FIELD_NAMES)}") from None


def transient_names() -> tuple[str, ...]:
    """The fields advanced in time by LOD sub-steps, in the table's order."""
    return tuple(f.name for f in FIELDS if f.solver == TRANSIENT)
