"""The dataset directory: atomic Parquet writes, per-sample part files, compaction.

Layout of a run directory::

    manifest.parquet          the samples (written before any solve)
    run.json                  design hash, seed and sample count (guards resume)
    design.yaml               the design as given
    .parts/<table>/<sample_id>.parquet   one file per sample and table, as it finishes
    <table>.parquet           compacted tables, sorted by sample_index, then row keys;
                              curves and spectra in row groups of 64 samples
    timings.parquet           wall and solver times per sample (they differ run to run,
                              so no other table holds them; see dataset/card.py)
    README.md, checksums.sha256, timings.sha256, figures/, ...   written by api.finalise

A sample is finished when its ``solver_log`` part exists; that part is written last,
so a run killed at any moment loses at most the samples still in flight.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .schemas import arrow_schema, load_schema

PARTS = ".parts"
# rows within one sample are ordered by these keys (when present)
ROW_KEYS = {
    "labels": ["cycle"],
    "curves": ["cycle", "capacity_fraction"],
    "spectra": ["cycle", "soc", "frequency_hz"],
    "impedance_features": ["cycle", "soc"],
    "pulses": ["cycle", "soc"],
}
DESCENDING = {"frequency_hz"}
# tables that grow with samples x cycles x points: compacted and checked in slices
LARGE_TABLES = ("curves", "spectra")
SAMPLES_PER_ROW_GROUP = 64


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, sync it, then rename it over
    ``path``. On a full disk (or file size limit, or quota) the temporary file is removed
    and :class:`~.rundir.DiskFullError` names the folder and the space needed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        from .rundir import DiskFullError, is_disk_full

        if isinstance(exc, OSError) and is_disk_full(exc):
            raise DiskFullError(path, len(data)) from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_parquet(frame: pd.DataFrame, path: Path, table: str | None = None) -> None:
    """Write a frame as Parquet (cast to the table's schema when named), atomically."""
    schema = arrow_schema(load_schema(table), frame) if table else None
    arrow = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(arrow, sink, compression="zstd")
    atomic_write_bytes(Path(path), sink.getvalue().to_pybytes())


def write_sample_parts(root: Path, sample_id: str, tables: dict[str, pd.DataFrame]) -> None:
    """Write every table of one finished sample; solver_log goes last (the marker)."""
    for name, frame in tables.items():
        if name != "solver_log":
            atomic_write_parquet(frame, root / PARTS / name / f"{sample_id}.parquet", name)
    atomic_write_parquet(tables["solver_log"], root / PARTS / "solver_log" / f"{sample_id}.parquet", "solver_log")


def finished_samples(root: Path) -> set[str]:
    folder = Path(root) / PARTS / "solver_log"
    if not folder.exists():
        return set()
    return {p.stem for p in folder.glob("*.parquet")}


def _gather(folder: Path, sample_ids) -> list[pd.DataFrame]:
    frames = []
    for sample_id in sample_ids:
        path = folder / f"{sample_id}.parquet"
        if path.exists():
            frame = pd.read_parquet(path)
            if len(frame):
                frames.append(frame)
    return frames


def _ordered(frames: list[pd.DataFrame], table: str, manifest: pd.DataFrame) -> pd.DataFrame:
    """Rows in manifest order, then by the table's row keys; schema columns first."""
    schema = load_schema(table)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in schema["properties"]})
    frame = pd.concat(frames, ignore_index=True)
    order = dict(zip(manifest["sample_id"], manifest["sample_index"]))
    frame["_order"] = frame["sample_id"].map(order)
    keys = ["_order"] + [k for k in ROW_KEYS.get(table, []) if k in frame.columns]
    frame = frame.sort_values(keys, ascending=[k not in DESCENDING for k in keys], kind="mergesort")
    frame = frame.drop(columns="_order").reset_index(drop=True)
    columns = [c for c in schema["properties"] if c in frame.columns]
    return frame[columns + [c for c in frame.columns if c not in columns]]


def _sample_slices(root: Path, table: str, manifest: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """The parts of ``table``, concatenated ``SAMPLES_PER_ROW_GROUP`` manifest samples at a
    time (slices without rows are skipped), so thousands of one-sample frames, each with
    its own overhead, are never held at once."""
    folder, ids = Path(root) / PARTS / table, manifest["sample_id"].tolist()
    for start in range(0, len(ids), SAMPLES_PER_ROW_GROUP):
        frames = _gather(folder, ids[start:start + SAMPLES_PER_ROW_GROUP])
        if frames:
            yield pd.concat(frames, ignore_index=True)


def compact_table(root: Path, table: str, manifest: pd.DataFrame) -> pd.DataFrame:
    """Gather the parts of ``table`` for the manifest's samples, in a fixed order."""
    return _ordered(list(_sample_slices(root, table, manifest)), table, manifest)


def write_compacted(root: Path, table: str, manifest: pd.DataFrame) -> int:
    """Compact a large table to ``<table>.parquet`` a slice of samples at a time.

    Each slice of ``SAMPLES_PER_ROW_GROUP`` manifest samples becomes one row group, so
    memory stays flat in the number of samples and a reader can take one row group
    (whole samples, whole sweeps) at a time.
    Returns the number of rows written.
    """
    path = Path(root) / f"{table}.parquet"
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    writer, rows = None, 0
    try:
        for frame in _sample_slices(root, table, manifest):
            frame = _ordered([frame], table, manifest)
            arrow = pa.Table.from_pandas(frame, schema=arrow_schema(load_schema(table), frame), preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, arrow.schema, compression="zstd")
            writer.write_table(arrow)
            rows += len(frame)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        atomic_write_parquet(_ordered([], table, manifest), path, table)
        return 0
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return rows


def iter_row_groups(path: Path, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """A Parquet file one row group at a time (whole samples for compacted tables)."""
    parquet = pq.ParquetFile(path)
    for i in range(parquet.num_row_groups):
        yield parquet.read_row_group(i, columns=columns).to_pandas()


def table_rows(path: Path) -> int:
    """Rows of a Parquet file, from its footer."""
    return pq.ParquetFile(path).metadata.num_rows


def read_table(root: Path, table: str) -> pd.DataFrame:
    return pd.read_parquet(Path(root) / f"{table}.parquet")


def read_run_info(root: Path) -> dict | None:
    path = Path(root) / "run.json"
    return json.loads(path.read_text()) if path.exists() else None
