"""Dataset: Parquet tables with JSON schemas, the data card, checksums and verify."""

from .card import verify
from .schemas import load_schema, validate_frame
from .store import read_table

__all__ = ["load_schema", "read_table", "validate_frame", "verify"]
