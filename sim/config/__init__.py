"""Configuration: typed parameters with units and sources, the interaction rules, unit
conversions, and the one error type for bad input."""
