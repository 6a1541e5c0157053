"""Thin Ray actors around the domain objects. Ray options live in ``wiring`` only."""
