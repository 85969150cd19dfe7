"""Helpers for tests that look at a dataset's files (data/<table>/<split>-*.parquet)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pybamm_factory.dataset.store import table_files
from pybamm_factory.dataset.tables import DATA_TABLES


def table_digests(root: Path, tables=DATA_TABLES) -> dict[str, str]:
    """sha256 of every file of the named tables, by path relative to the dataset."""
    tables = (tables,) if isinstance(tables, str) else tables
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for t in tables for p in table_files(root, t)}


def first_file(root: Path, table: str) -> Path:
    """The table's first split file (train, as a rule)."""
    files = table_files(root, table)
    assert files, f"{root}: no files of {table}"
    return files[0]


def rebuild_parts(done: Path, out: Path, drop: int = 1) -> list[str]:
    """The run directory a run killed mid-way leaves: run record, design, the manifest and
    the per-sample parts of all but the last ``drop`` samples (rebuilt from the finished
    dataset ``done``, whose own parts were removed when it was finalised), nothing
    compacted. Returns the dropped sample ids."""
    import shutil

    import pandas as pd

    from pybamm_factory.dataset import store
    from pybamm_factory.dataset.tables import SAMPLE_TABLES, TIMINGS, TIMINGS_FILE

    out.mkdir(parents=True)
    for name in ("run.json", "design.yaml"):
        shutil.copy2(done / name, out / name)
    manifest = store.read_table(done, "manifest")
    store.atomic_write_parquet(manifest, out / store.PARTS_MANIFEST, "manifest")
    tables = {t: store.read_table(done, t) for t in SAMPLE_TABLES}
    tables[TIMINGS] = pd.read_parquet(done / TIMINGS_FILE)
    ids = manifest["sample_id"].tolist()
    for sample_id in ids[: len(ids) - drop]:
        store.write_sample_parts(out, sample_id, {t: f[f["sample_id"] == sample_id].reset_index(drop=True) for t, f in tables.items()})
    return ids[len(ids) - drop:]
