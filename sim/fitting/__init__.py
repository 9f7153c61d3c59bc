"""``neutrosim fit``: ABC-SMC (pyabc) of model parameters to target outcomes.

The data path, one module a step: ``spec.py`` (the targets file, checked) ->
``particle.py`` (one particle: every arm x replicate run) -> ``outcomes.py`` (the outcomes
the targets name) -> ``abc.py`` (pyabc's ABC-SMC, history, samplers) -> ``outputs.py``
(posterior, figures, posterior predictive check, overlay, report); ``fit.py`` runs them in
one folder and ``command.py`` is the command. Format and method: docs/fitting.md.
"""
