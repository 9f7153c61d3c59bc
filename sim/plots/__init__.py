"""Figures: a model state (agents over a field) and an experiment's curves and panels."""
