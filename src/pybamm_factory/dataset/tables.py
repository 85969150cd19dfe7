"""The table registry: every table of a dataset, what one row is, its keys, where it lies.

This is the one place that names the tables. The simulation writes the per-sample tables
(``SAMPLE_TABLES``), the store compacts and lays them out, the card, ``verify``,
``check``, ``augment``, ``train``, ``sensitivity`` and ``replay`` read them through
:func:`pybamm_factory.dataset.store.read_table`.

Layout of a finished dataset (the Hugging Face Hub's: one folder per table, one file per
split, a config per table in the card)::

    data/<table>/<split>-00000-of-00001.parquet

``split`` is the sample's split in the ``splits`` table (``train``, ``validation``,
``test``, ``excluded``); a split without rows in a table has no file there (the Hub's
loader cannot read a Parquet file without rows), and a table without rows has no folder.
Rows keep the order of the run: manifest order, then the table's ``order`` columns.

Keys: ``keys`` are unique together within a table. Every table joins ``manifest`` on
``sample_id``; tables with a ``cycle`` join ``labels`` on ``(sample_id, cycle)`` (a
reference test). Joining ``labels`` to ``impedance_features`` on ``sample_id`` alone fans
out one row per sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

DATA = "data"
SPLIT_ORDER = ("train", "validation", "test", "excluded")  # file order within a table
SHARD = "00000-of-00001"  # one file per split: large tables hold a row group per 64 samples


@dataclass(frozen=True)
class Table:
    """A table of the dataset. Its columns, keys (``x-keys``), joins (``x-joins``) and
    what one row is (``title``) are in its JSON schema, ``schemas/<name>.schema.json``."""

    name: str
    large: bool = False  # grows with samples x cycles x points: written and read a row group at a time
    per_sample: bool = True  # written by the simulation, one part per sample

    @property
    def schema(self) -> dict:
        from .schemas import load_schema

        return load_schema(self.name)

    @property
    def keys(self) -> tuple[str, ...]:
        """Unique together within the table."""
        return tuple(self.schema["x-keys"])

    @property
    def order(self) -> tuple[str, ...]:
        """The rows of one sample are sorted by these (descending where in ``DESCENDING``)."""
        return tuple(k for k in self.keys if k != "sample_id")

    @property
    def joins(self) -> str:
        return self.schema["x-joins"]

    @property
    def row(self) -> str:
        return self.schema["title"]

    def folder(self) -> PurePosixPath:
        return PurePosixPath(DATA) / self.name

    def file(self, split: str) -> PurePosixPath:
        return self.folder() / f"{split}-{SHARD}.parquet"


DESCENDING = {"frequency_hz"}

TABLES: dict[str, Table] = {t.name: t for t in (
    Table("manifest", per_sample=False),
    Table("solver_log"),
    Table("labels"),
    Table("curves", large=True),
    Table("spectra", large=True),
    Table("impedance_features"),
    Table("pulses"),
    Table("splits", per_sample=False),
)}
DATA_TABLES = tuple(TABLES)
SAMPLE_TABLES = tuple(name for name, t in TABLES.items() if t.per_sample)  # what simulate_sample returns
LARGE_TABLES = tuple(name for name, t in TABLES.items() if t.large)
DEFAULT_CONFIG = "labels"  # what `datasets.load_dataset(DIR)` loads without a config name

# wall and solver times per sample: outside the identity promise, so outside data/ and the configs
TIMINGS = "timings"
TIMINGS_FILE = f"{TIMINGS}.parquet"


def split_of_file(path) -> str:
    """The split a table file holds: ``train`` for ``.../train-00000-of-00001.parquet``."""
    return PurePosixPath(str(path)).name.split("-", 1)[0]


def table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"no table '{name}'; tables: {', '.join(TABLES)}") from None
