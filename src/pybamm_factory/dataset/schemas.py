"""JSON Schemas of the tables (one row = one JSON object) and checks of frames against them.

The schemas in ``schemas/`` are the contract: column names, types, units, allowed
values and bounds. ``validate_frame`` checks a whole column at a time (fast on a
million spectrum points) and also runs ``jsonschema`` on a deterministic sample of rows.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import jsonschema
import numpy as np
import pandas as pd
import pyarrow as pa

_ARROW = {"number": pa.float64(), "integer": pa.int64(), "string": pa.string(), "boolean": pa.bool_()}


GENERATED_PREFIX = "generated_"
NOT_GENERATED = ("kk_residual",)  # generators do not produce a KK test of a spectrum they never made


@lru_cache(maxsize=None)
def load_schema(table: str) -> dict:
    """A table's JSON schema; ``generated_<table>`` is <table> plus the generation flags."""
    if table.startswith(GENERATED_PREFIX):
        return _generated_schema(load_schema(table.removeprefix(GENERATED_PREFIX)))
    path = resources.files("pybamm_factory") / "schemas" / f"{table}.schema.json"
    schema = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def _generated_schema(base: dict) -> dict:
    schema = json.loads(json.dumps(base))
    schema["title"] = "Generated rows: " + base["title"]
    for name in NOT_GENERATED:
        if name in schema["properties"]:
            schema["properties"][name]["type"] = ["number", "null"]
    schema["properties"]["is_generated"] = {"type": "boolean", "description": "true: made by a generator, not by physics"}
    schema["properties"]["generator_id"] = {"type": "string", "description": "Which trained generator made the row"}
    schema["properties"].setdefault("protocol_id", {"type": "string", "description": "Protocol of the conditions"})
    schema["required"] = list(base["required"]) + ["is_generated", "generator_id"]
    schema["additionalProperties"] = {"type": "number", "description": "A condition the row was generated at"}
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def table_names() -> list[str]:
    root = resources.files("pybamm_factory") / "schemas"
    return sorted(p.name.removesuffix(".schema.json") for p in root.iterdir()
                  if p.name.endswith(".schema.json"))


def _types(prop: dict) -> list[str]:
    t = prop.get("type", "number")
    return [t] if isinstance(t, str) else list(t)


# a column's unit from its name's suffix where its description ends in none
UNIT_SUFFIXES = {"_s": "s", "_h": "h", "_ah": "A.h", "_a": "A", "_v": "V", "_k": "K", "_c": "degC", "_ohm": "Ohm",
                 "_hz": "Hz", "_pct": "%", "_m": "m"}


def column_unit(column: str, description: str) -> str:
    """The unit of a column: the description's trailing '[unit]', else the name's suffix
    ('capacity_ah' -> 'A.h'), else '' (a count, an id, a fraction or a ratio)."""
    import re

    bracket = re.search(r"\[([^\]]+)\]\s*$", description)
    if bracket:
        return bracket.group(1)
    return next((unit for suffix, unit in UNIT_SUFFIXES.items() if column.endswith(suffix)), "")


def arrow_schema(schema: dict, frame: pd.DataFrame) -> pa.Schema:
    """Arrow types for the frame's columns: from the schema, else number for extras; a
    string column marked ``"x-dictionary": true`` (a category: status, split, source,
    protocol) is dictionary-encoded, so pandas reads it as a categorical. Each
    field carries its description and unit as Parquet field metadata, and the table its
    name and what a row is, so a file describes itself without the repository's schemas."""
    extra = schema.get("additionalProperties", {})
    fields = []
    for col in frame.columns:
        prop = schema["properties"].get(col) or _pattern_property(schema, col) or (extra if isinstance(extra, dict) else {})
        kind = next(t for t in _types(prop) if t != "null") if _types(prop) != ["null"] else "string"
        description = str(prop.get("description", ""))
        arrow_type = pa.dictionary(pa.int32(), pa.string()) if prop.get("x-dictionary") else _ARROW[kind]
        fields.append(pa.field(col, arrow_type, metadata={b"description": description.encode(),
                                                            b"unit": column_unit(col, description).encode()}))
    table = str(schema.get("$id", "")).rsplit("/", 1)[-1].removesuffix(".schema.json")
    metadata = {b"pybamm_factory.table": table.encode(), b"pybamm_factory.row": str(schema.get("title", "")).encode()}
    if "x-keys" in schema:  # unique together; and how the table joins the others
        metadata[b"pybamm_factory.keys"] = ",".join(schema["x-keys"]).encode()
        metadata[b"pybamm_factory.joins"] = str(schema.get("x-joins", "")).encode()
    return pa.schema(fields, metadata=metadata)


def validate_frame(frame: pd.DataFrame, table: str, max_row_checks: int = 200) -> list[str]:
    """Problems of a frame against its table schema (empty list when it conforms)."""
    schema = load_schema(table)
    problems = []
    props = schema["properties"]
    for col in schema.get("required", []):
        if col not in frame.columns:
            problems.append(f"{table}: missing column '{col}'")
    if schema.get("additionalProperties") is False:
        for col in frame.columns:
            if col not in props:
                problems.append(f"{table}: unexpected column '{col}'")
    for col in frame.columns:
        prop = props.get(col) or _pattern_property(schema, col)
        if prop is None and isinstance(schema.get("additionalProperties"), dict):
            prop = schema["additionalProperties"]
        if not prop:
            continue
        problems += _check_column(table, col, frame[col], prop)
    if len(frame) and not problems:
        idx = np.unique(np.linspace(0, len(frame) - 1, min(max_row_checks, len(frame))).astype(int))
        validator = jsonschema.Draft202012Validator(schema)
        for record in frame.iloc[idx].to_dict("records"):
            record = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in record.items()}
            record = {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}
            for err in validator.iter_errors(record):
                problems.append(f"{table}: row check: {err.message}")
                break
    return problems


def _pattern_property(schema: dict, col: str) -> dict | None:
    import re

    for pattern, prop in schema.get("patternProperties", {}).items():
        if re.search(pattern, col):
            return prop
    return None


def _check_column(table, col, series, prop) -> list[str]:
    types = _types(prop)
    nullable = "null" in types
    kind = next((t for t in types if t != "null"), "string")
    out = []
    nulls = series.isna()
    if nulls.any() and not nullable:
        out.append(f"{table}: column '{col}' has {int(nulls.sum())} null values but is not nullable")
    values = series[~nulls]
    if kind in ("number", "integer"):
        if len(values) and not pd.api.types.is_numeric_dtype(values):
            return out + [f"{table}: column '{col}' should be {kind}, found {series.dtype}"]
        arr = values.to_numpy(dtype=float)
        if kind == "integer" and len(arr) and not np.all(np.mod(arr, 1) == 0):
            out.append(f"{table}: column '{col}' should hold integers")
        if len(arr) and not np.all(np.isfinite(arr)):
            out.append(f"{table}: column '{col}' has non-finite values")
        if "minimum" in prop and len(arr) and arr.min() < prop["minimum"]:
            out.append(f"{table}: column '{col}' below minimum {prop['minimum']} (min {arr.min():g})")
        if "maximum" in prop and len(arr) and arr.max() > prop["maximum"]:
            out.append(f"{table}: column '{col}' above maximum {prop['maximum']} (max {arr.max():g})")
        if "exclusiveMinimum" in prop and len(arr) and arr.min() <= prop["exclusiveMinimum"]:
            out.append(f"{table}: column '{col}' not above {prop['exclusiveMinimum']} (min {arr.min():g})")
    elif kind == "string":
        if len(values) and not all(isinstance(v, str) for v in values.head(1000)):
            out.append(f"{table}: column '{col}' should hold strings")
        if "enum" in prop:
            bad = sorted(set(values) - set(prop["enum"]))
            if bad:
                out.append(f"{table}: column '{col}' has values {bad[:3]} outside {prop['enum']}")
    elif kind == "boolean" and len(values) and not pd.api.types.is_bool_dtype(values):
        out.append(f"{table}: column '{col}' should be boolean, found {series.dtype}")
    return out
