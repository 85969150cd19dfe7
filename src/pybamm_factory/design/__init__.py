"""Design of experiments: design files and the sample manifest."""

from .manifest import build_manifest, varied_columns
from .spec import MAX_SAMPLES, Design, DesignError, DesignLoader, load_design, load_yaml, packaged_designs, parse_design, read_design_file

__all__ = ["MAX_SAMPLES", "Design", "DesignError", "DesignLoader", "build_manifest", "load_design", "load_yaml",
           "packaged_designs", "parse_design", "read_design_file", "varied_columns"]
