"""Replay one sample of a finished dataset from what the dataset itself records.

The design comes from ``metadata.json`` (the design as run, not a file on disk) and the
sample's inputs from its manifest row; nothing is read from a cache. The sample is solved
again and every table it adds to is compared with the dataset's rows, after both pass
through the table's schema as the dataset's writer casts them:

* ``identical``: equal bit for bit (the same solver on the same software gives this);
* within ``REPLAY_RTOL``: every number within that relative difference (another CPU or
  BLAS build moves the last digits of a stiff solve);
* otherwise the table is reported as differing, with the largest relative difference
  and the column it is in.

The software versions the dataset recorded are compared with the installed ones, since
a different PyBaMM or CasADi is the usual reason a replay drifts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import FactoryError
from .schemas import arrow_schema, load_schema

REPLAY_RTOL = 1e-6
REPLAYED_TABLES = ("solver_log", "labels", "curves", "spectra", "impedance_features", "pulses")


class ReplayError(FactoryError, ValueError):
    """The dataset or the sample cannot be replayed (one line naming what is missing)."""


@dataclass
class TableReplay:
    table: str
    rows_recorded: int
    rows_replayed: int
    identical: bool
    max_relative_difference: float
    worst_column: str | None

    @property
    def within_tolerance(self) -> bool:
        return self.identical or (self.rows_recorded == self.rows_replayed
                                  and self.max_relative_difference <= REPLAY_RTOL)


@dataclass
class Replay:
    sample_id: str
    tables: list[TableReplay]
    version_differences: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    @property
    def reproduced(self) -> bool:
        return all(t.within_tolerance for t in self.tables)

    def lines(self) -> list[str]:
        out = []
        for t in self.tables:
            if t.identical:
                verdict = "identical (bit for bit)"
            elif t.rows_recorded != t.rows_replayed:
                verdict = f"DIFFERS: {t.rows_recorded} rows recorded, {t.rows_replayed} replayed"
            else:
                verdict = (f"{'within' if t.within_tolerance else 'DIFFERS beyond'} {REPLAY_RTOL:g} relative: largest "
                           f"{t.max_relative_difference:.2e} in {t.worst_column}")
            out.append(f"{t.table:<19} {verdict}")
        for name, (recorded, installed) in self.version_differences.items():
            out.append(f"version {name}: recorded {recorded}, installed {installed}")
        return out


def _through_schema(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """A frame as the dataset's writer stores it (cast to the table's Arrow schema) and
    ``read_table`` gives it back (categories as plain strings)."""
    from .store import plain_strings

    arrow = pa.Table.from_pandas(frame.reset_index(drop=True), schema=arrow_schema(load_schema(table), frame),
                                 preserve_index=False)
    return plain_strings(arrow.to_pandas())


def _compare(table: str, recorded: pd.DataFrame, replayed: pd.DataFrame) -> TableReplay:
    recorded, replayed = recorded.reset_index(drop=True), replayed.reset_index(drop=True)
    if len(recorded) != len(replayed) or list(recorded.columns) != list(replayed.columns):
        return TableReplay(table, len(recorded), len(replayed), False, np.inf, None)
    identical = recorded.equals(replayed)
    worst, worst_column = 0.0, None
    for column in recorded.columns:
        a, b = recorded[column], replayed[column]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b) and not pd.api.types.is_bool_dtype(a):
            x, y = a.to_numpy(float), b.to_numpy(float)
            same_nan = np.isnan(x) == np.isnan(y)
            scale = np.maximum(np.abs(x), np.abs(y))
            with np.errstate(all="ignore"):
                rel = np.where(scale > 0, np.abs(x - y) / scale, 0.0)
            rel = np.where(np.isnan(x) & np.isnan(y), 0.0, rel)
            difference = np.inf if not same_nan.all() else float(np.nanmax(rel, initial=0.0))
        else:
            difference = 0.0 if a.astype(str).equals(b.astype(str)) else np.inf
        if difference > worst:
            worst, worst_column = difference, column
    return TableReplay(table, len(recorded), len(replayed), identical, worst, worst_column)


def replay_sample(root: str | Path, sample_id: str) -> Replay:
    """Solve ``sample_id`` of the dataset at ``root`` again and compare it with its rows."""
    from ..design.spec import DesignError, parse_design
    from ..simulate.sample import simulate_sample
    from .card import versions
    from .store import has_table, read_table

    root = Path(root)
    meta_path = root / "metadata.json"
    if not meta_path.is_file() or not has_table(root, "manifest"):
        missing = meta_path.name if not meta_path.is_file() else "data/manifest/"
        raise ReplayError(f"{root}: no {missing}; replay needs a finished dataset")
    meta = json.loads(meta_path.read_text())
    if "design" not in meta:
        raise ReplayError(f"{meta_path}: holds no 'design'; this dataset cannot be replayed from its metadata")
    try:
        design = parse_design(meta["design"], src=str(meta_path))
    except DesignError as exc:
        raise ReplayError(f"{meta_path}: its design no longer parses: {exc}") from None
    manifest = read_table(root, "manifest", sample_id=sample_id)
    if manifest.empty:
        known = read_table(root, "manifest", columns=["sample_id"])["sample_id"].tolist()
        raise ReplayError(f"{root}: no sample {sample_id!r} in the manifest (e.g. {', '.join(known[:3])})")
    row = manifest.iloc[0].to_dict()
    replayed = simulate_sample(design, row)
    results = []
    for table in REPLAYED_TABLES:
        if not has_table(root, table):
            continue
        recorded = read_table(root, table, sample_id=sample_id)
        frame = replayed.get(table, pd.DataFrame())
        if recorded.empty and frame.empty:
            continue
        frame = _through_schema(frame, table) if not frame.empty else frame
        results.append(_compare(table, recorded, frame[recorded.columns] if set(recorded.columns) <= set(frame.columns)
                                else frame))
    now = versions()
    recorded_versions = meta.get("versions", {})
    differences = {name: (recorded_versions.get(name), now.get(name)) for name in sorted(set(recorded_versions) | set(now))
                   if recorded_versions.get(name) != now.get(name)}
    return Replay(sample_id, results, differences)
