"""pybamm-factory: physics-based synthetic lithium-ion battery datasets for machine learning."""

import importlib
from importlib.metadata import PackageNotFoundError, version

from .errors import FactoryError

# The API is imported when first used, not with the package: `pybamm-factory --help`, `read`
# and a notebook's `import pybamm_factory` do not load PyBaMM (about 6 s of CPU).
_LAZY = {"check": ".api", "run": ".api", "write_manifest": ".api", "verify": ".dataset",
         "build_manifest": ".design", "load_design": ".design"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

try:
    __version__ = version("pybamm-factory")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0.0.0"

__all__ = ["FactoryError", "build_manifest", "check", "load_design", "run", "verify", "write_manifest"]
