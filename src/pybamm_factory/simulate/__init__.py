"""Physics: PyBaMM aging experiments with reference tests, and EIS at each snapshot."""

from .sample import TABLES, simulate_sample

__all__ = ["TABLES", "simulate_sample"]
