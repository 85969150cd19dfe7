"""Quality gate and leakage-safe splits."""

from .checks import CheckResult, report, run_checks
from .splits import make_splits

__all__ = ["CheckResult", "make_splits", "report", "run_checks"]
