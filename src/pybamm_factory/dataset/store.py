"""The dataset directory: atomic Parquet writes, per-sample part files, compaction.

Layout of a run directory::

    run.json                  design hash, seed and sample count (guards resume)
    design.yaml               the design as given
    .parts/manifest.parquet   the samples (written before any solve)
    .parts/<table>/<sample_id>.parquet   one file per sample and table, as it finishes
    data/<table>/<split>-00000-of-00001.parquet   the tables (see dataset/tables.py), rows
                              in manifest order, then the table's order columns; curves
                              and spectra in row groups of up to 64 samples
    timings.parquet           wall and solver times per sample (they differ run to run,
                              so no other table holds them; see dataset/card.py)
    README.md, checksums.sha256, timings.sha256, figures/, ...   written by api.finalise

A sample is finished when its ``solver_log`` part exists; that part is written last,
so a run killed at any moment loses at most the samples still in flight. ``.parts/`` is
resume state: it is removed once the card and checksums of the finished dataset are
written, so it is never uploaded or mistaken for data.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .schemas import arrow_schema, load_schema
from .tables import DESCENDING, LARGE_TABLES, SPLIT_ORDER, TABLES, split_of_file, table

PARTS = ".parts"
PARTS_MANIFEST = f"{PARTS}/manifest.parquet"  # the run's samples, for resume (the dataset's copy: data/manifest/)
SAMPLES_PER_ROW_GROUP = 64
__all__ = ["LARGE_TABLES", "PARTS", "read_table", "iter_table", "table_rows", "table_files"]


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
    keys = ["_order"] + [k for k in TABLES[table].order if k in frame.columns] if table in TABLES else ["_order"]
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


def _split_paths(root: Path, name: str, splits: Iterable[str]) -> dict[str, Path]:
    return {split: Path(root) / table(name).file(split) for split in splits}


def _remove_other_files(root: Path, name: str, keep: Iterable[Path]) -> None:
    """Files of a table's folder that this write did not produce (a split that has no rows now)."""
    folder, keep = Path(root) / table(name).folder(), {Path(p).name for p in keep}
    if folder.is_dir():
        for path in folder.glob("*.parquet"):
            if path.name not in keep:
                path.unlink()


def write_table(root: Path, name: str, frame: pd.DataFrame, split_of: dict[str, str]) -> dict[str, int]:
    """Write a table held in memory as one file per split (``split_of``: sample_id -> split),
    in split order; a split without rows gets no file. Returns rows per split."""
    split = frame["sample_id"].map(split_of) if len(frame) else pd.Series([], dtype=object)
    rows, written = {}, []
    for name_split, path in _split_paths(root, name, SPLIT_ORDER).items():
        part = frame[(split == name_split).to_numpy()]
        if len(part):
            atomic_write_parquet(part.reset_index(drop=True), path, name)
            rows[name_split] = len(part)
            written.append(path)
    _remove_other_files(root, name, written)
    return rows


def write_compacted(root: Path, name: str, manifest: pd.DataFrame, split_of: dict[str, str]) -> dict[str, int]:
    """Compact a large table from its parts into one file per split, a slice of samples at a time.

    Each slice of ``SAMPLES_PER_ROW_GROUP`` manifest samples becomes one row group in each
    split's file that has rows in it, so memory stays flat in the number of samples and a
    reader can take one row group (whole samples, whole sweeps) at a time.
    Returns rows per split.
    """
    paths = _split_paths(root, name, SPLIT_ORDER)
    temps = {s: p.with_name(f".{p.name}.tmp-{os.getpid()}") for s, p in paths.items()}
    writers: dict[str, pq.ParquetWriter] = {}
    rows: dict[str, int] = {}
    try:
        for frame in _sample_slices(root, name, manifest):
            frame = _ordered([frame], name, manifest)
            split = frame["sample_id"].map(split_of).to_numpy()
            for name_split in SPLIT_ORDER:
                part = frame[split == name_split].reset_index(drop=True)
                if not len(part):
                    continue
                arrow = pa.Table.from_pandas(part, schema=arrow_schema(load_schema(name), part), preserve_index=False)
                if name_split not in writers:
                    temps[name_split].parent.mkdir(parents=True, exist_ok=True)
                    writers[name_split] = pq.ParquetWriter(temps[name_split], arrow.schema, compression="zstd")
                writers[name_split].write_table(arrow)
                rows[name_split] = rows.get(name_split, 0) + len(part)
    finally:
        for writer in writers.values():
            writer.close()
    for name_split in writers:
        with open(temps[name_split], "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(temps[name_split], paths[name_split])
    _remove_other_files(root, name, [paths[s] for s in writers])
    return rows


def table_files(root: Path, name: str) -> list[Path]:
    """The files of a table in a finished dataset: one per split, in split order."""
    folder = Path(root) / table(name).folder()
    if not folder.is_dir():
        return []
    order = {split: i for i, split in enumerate(SPLIT_ORDER)}
    files = [p for p in folder.glob("*.parquet") if not p.name.startswith(".")]
    return sorted(files, key=lambda p: (order.get(split_of_file(p), len(order)), p.name))


def iter_row_groups(path: Path, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """A Parquet file one row group at a time (whole samples for compacted tables)."""
    parquet = pq.ParquetFile(path)
    for i in range(parquet.num_row_groups):
        yield plain_strings(parquet.read_row_group(i, columns=columns).to_pandas())


def plain_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Dictionary-encoded (categorical) string columns as plain strings, so frames of
    different files concatenate and compare as the stages expect."""
    for column in frame.columns[[isinstance(t, pd.CategoricalDtype) for t in frame.dtypes]]:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def iter_table(root: Path, name: str, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """A table of a finished dataset a row group (whole samples) at a time, split by split."""
    for path in table_files(root, name):
        yield from iter_row_groups(path, columns)


def has_table(root: Path, name: str) -> bool:
    """Whether a finished dataset holds rows of ``name``."""
    return bool(table_files(root, name))


def table_rows(root: Path, name: str) -> int:
    """Rows of a table, from its files' footers."""
    return sum(pq.ParquetFile(p).metadata.num_rows for p in table_files(root, name))


def _empty(name: str) -> pd.DataFrame:
    schema = load_schema(name)
    frame = pd.DataFrame({c: pd.Series(dtype="object") for c in schema["properties"]})
    return plain_strings(pa.Table.from_pandas(frame, schema=arrow_schema(schema, frame), preserve_index=False).to_pandas())


def read_table(root: Path, name: str, columns: list[str] | None = None, sample_id: str | None = None) -> pd.DataFrame:
    """One table of a finished dataset, whole (or one sample's rows), in the run's row
    order (manifest order, then the table's order columns), whatever split files it lies
    in. The one loader the stages use; categorical columns come back as plain strings. A
    table without rows is an empty frame with the schema's columns."""
    files = table_files(root, name)
    if not files:
        frame = _empty(name)
        return frame[columns] if columns else frame
    filters = [("sample_id", "==", sample_id)] if sample_id is not None else None
    frames = [plain_strings(pq.read_table(p, columns=columns, filters=filters).to_pandas()) for p in files]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if len(files) > 1 and "sample_id" in frame.columns:  # split files interleave in manifest order
        if "sample_index" in frame.columns:
            order = frame["sample_index"]
        else:
            manifest = read_table(root, "manifest", ["sample_id", "sample_index"])
            order = frame["sample_id"].map(dict(zip(manifest["sample_id"], manifest["sample_index"])))
        frame = frame.iloc[order.to_numpy().argsort(kind="stable")].reset_index(drop=True)
    return frame


def varied_parameters(root: Path) -> list[str]:
    """The varied-parameter columns of a dataset's manifest, as ``metadata.json`` records
    them (datasets written before it did: the manifest's PyBaMM-named columns)."""
    path = Path(root) / "metadata.json"
    if path.is_file():
        recorded = json.loads(path.read_text()).get("varied_parameters")
        if isinstance(recorded, list):
            return [str(name) for name in recorded]
    from ..design.manifest import varied_columns

    return varied_columns(read_table(root, "manifest"))


def remove_parts(root: Path) -> None:
    """Remove the resume state of a finished dataset: renamed first, so a kill midway
    leaves a hidden folder that the next run clears, never half a ``.parts/``."""
    parts = Path(root) / PARTS
    if not parts.exists():
        return
    doomed = parts.with_name(f"{PARTS}.removing-{os.getpid()}")
    os.replace(parts, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def clear_removed_parts(root: Path) -> None:
    for doomed in Path(root).glob(f"{PARTS}.removing-*"):
        shutil.rmtree(doomed, ignore_errors=True)


def read_run_info(root: Path) -> dict | None:
    path = Path(root) / "run.json"
    return json.loads(path.read_text()) if path.exists() else None
