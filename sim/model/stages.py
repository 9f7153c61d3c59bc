"""The stages of one model step, in order: a tuple of named functions of the model.

    treatment -> fields: begin -> vessels -> tumor cells -> immune cells -> fields: end
    -> record

Each cell stage senses, applies its rules, and adds its secretion and uptake to the
step's field sources (``m.fields.sources``). With ``time.source_lag_steps = 1`` the
fields over the step are being solved, from the step before's sources, while the cell
stages run ("fields: begin" starts the solves, "fields: end" takes their results); with 0
they are solved at "fields: end" from this step's sources. Equations in docs/model.md.
"""

from collections.abc import Callable
from typing import NamedTuple

from ..cells import endothelial, macrophage, neutrophil, tumor

__all__ = ["Stage", "STAGES", "write_sources"]


class Stage(NamedTuple):
    """One stage of a step: its name (as benchmarks report it) and ``run(model)``."""

    name: str
    run: Callable[..., None]


def treat(m) -> None:
    """The intervention, from its start day (:class:`.treatment.Treatment`)."""
    m.treatment.apply(m)


def begin_fields(m) -> None:
    """This step's sources cleared; with lag 1, the step before's start solving."""
    m.fields.begin_step()


def vessels(m) -> None:
    """Starved unperfused vessel regresses; perfused vessels supply oxygen, all take up the
    pro-angiogenic factor; tips sprout and grow, and connect sprouts to the blood flow."""
    endothelial.step(m, m.fields.sources)


def tumor_cells(m) -> None:
    """Tumor cells sense oxygen, turn hypoxic or die, secrete, move and divide."""
    tumor.step(m, m.fields.sources)


def immune_cells(m) -> None:
    """Macrophages, then neutrophils, around the viable tumor cells as the tumor stage
    left them."""
    viable_at = neutrophil.viable_tumor_map(m)
    macrophage.step(m, m.fields.sources, viable_at)
    neutrophil.step(m, m.fields.sources, viable_at)


def end_fields(m) -> None:
    """The fields over the step, in place."""
    m.fields.end_step()


def record(m) -> None:
    """The Mesa agents' cells follow the arrays (if the Mesa side is built); the
    DataCollector records every ``time.record_every_h`` and at the end of the simulated
    time (``m.end_step``, once even where the two coincide); from the end on,
    ``m.running`` is False."""
    if m.mesa_built:
        m.mirror.sync(m.populations)
    if m.steps == m.end_step or m.steps % m.steps_per_record == 0:
        m.datacollector.collect(m)
    if m.steps >= m.end_step:
        m.running = False


STAGES: tuple[Stage, ...] = (
    Stage("treatment", treat),
    Stage("fields: begin", begin_fields),
    Stage("vessels", vessels),
    Stage("tumor cells", tumor_cells),
    Stage("immune cells", immune_cells),
    Stage("fields: end", end_fields),
    Stage("record", record),
)


def write_sources(m, sources) -> None:
    """The sources of the cells as they are, into ``sources``, changing no cell (the
    field warm-up before t = 0)."""
    tumor.secrete(m, tumor.signals(m), sources)
    viable_at = neutrophil.viable_tumor_map(m)
    neutrophil.secrete(m, neutrophil.signals(m, viable_at), sources)
    macrophage.secrete(m, macrophage.signals(m, viable_at), sources)
    endothelial.absorb(m, sources)
