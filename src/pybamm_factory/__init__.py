"""pybamm-factory: physics-based synthetic lithium-ion battery datasets for machine learning."""

from importlib.metadata import PackageNotFoundError, version

from .api import check, run, write_manifest
from .dataset import verify
from .design import build_manifest, load_design

try:
    __version__ = version("pybamm-factory")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0.0.0"

__all__ = ["build_manifest", "check", "load_design", "run", "verify", "write_manifest"]
