"""The browser view (Mesa SolaraViz): watch and steer a run.

``neutrosim viz`` serves :mod:`sim.viz.app`; the pieces are usable on their own:
:mod:`~sim.viz.controls` (controls -> parameters -> model), :mod:`~sim.viz.picture` (one
PNG of a field with agents), :mod:`~sim.viz.plots` (SVG time series),
:mod:`~sim.viz.components` (Solara components) and :mod:`~sim.viz.save` (Save button).
Importing this package does not import Solara; the components and app modules do.
"""

__all__ = ["DEFAULT_PORT"]

DEFAULT_PORT = 8765
