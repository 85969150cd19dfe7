"""Design of experiments: design files and the sample manifest."""

from .manifest import build_manifest, varied_columns
from .spec import Design, DesignError, load_design, packaged_designs, parse_design

__all__ = ["Design", "DesignError", "build_manifest", "load_design", "packaged_designs",
           "parse_design", "varied_columns"]
