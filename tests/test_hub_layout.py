"""The dataset opens the way ML users open datasets: Hugging Face `datasets`, polars,
DuckDB and pandas read it table by table, split by split, with keys, units and
categories that describe themselves (issue #24)."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pybamm_factory.dataset.card import TASK_CATEGORIES, hub_configs, size_category
from pybamm_factory.dataset.store import read_table, table_files, table_rows
from pybamm_factory.dataset.tables import DATA_TABLES, TABLES
from tests.dataset_files import first_file


@pytest.fixture(scope="module")
def hub_datasets(tmp_path_factory):
    """`datasets`, offline, with its cache in a temporary folder (the environment restored after)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HF_HUB_OFFLINE", "1")
        env.setenv("HF_DATASETS_OFFLINE", "1")
        env.setenv("HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf-cache")))
        import datasets  # the dev extra: a missing one fails the test, never skips it
        datasets.disable_progress_bars()
        yield datasets


def test_load_dataset_gives_the_default_config_with_the_splits_of_the_splits_table(smoke_dataset, hub_datasets, tmp_path):
    loaded = hub_datasets.load_dataset(str(smoke_dataset), cache_dir=str(tmp_path))
    splits = read_table(smoke_dataset, "splits")
    labels = read_table(smoke_dataset, "labels")
    assert set(loaded) == set(splits.loc[splits["sample_id"].isin(labels["sample_id"]), "split"])
    for split, part in loaded.items():
        frame = part.to_pandas()
        assert set(frame.columns) == set(labels.columns)
        assert set(frame["sample_id"]) == set(splits.loc[splits["split"] == split, "sample_id"]) & set(labels["sample_id"])
    assert sum(len(part) for part in loaded.values()) == len(labels)
    spectra = hub_datasets.load_dataset(str(smoke_dataset), "spectra", split="train", cache_dir=str(tmp_path))
    train = set(splits.loc[splits["split"] == "train", "sample_id"])
    assert set(spectra.unique("sample_id")) == train & set(read_table(smoke_dataset, "spectra")["sample_id"])


def test_polars_and_duckdb_read_one_table_per_folder(smoke_dataset):
    import duckdb
    import polars
    for table in ("labels", "spectra", "impedance_features"):
        pattern = f"{smoke_dataset}/data/{table}/*.parquet"
        assert polars.scan_parquet(pattern).select(polars.len()).collect().item() == table_rows(smoke_dataset, table)
        count, samples = duckdb.sql(f"SELECT count(*), count(DISTINCT sample_id) FROM '{pattern}'").fetchall()[0]
        frame = read_table(smoke_dataset, table)
        assert (count, samples) == (len(frame), frame["sample_id"].nunique())
    assert not list(smoke_dataset.glob("*.parquet"))[1:], "at most timings.parquet beside the card"
    assert not (smoke_dataset / ".parts").exists()


def test_join_keys_are_unique_and_joins_do_not_fan_out(smoke_dataset):
    labels, features = read_table(smoke_dataset, "labels"), read_table(smoke_dataset, "impedance_features")
    joined = features.merge(labels, on=["sample_id", "cycle"], how="left", suffixes=("", "_label"), validate="many_to_one")
    assert len(joined) == len(features) and joined["soh"].notna().all()
    fanned = features.merge(labels, on="sample_id")
    assert len(fanned) > len(features)  # why the keys are stated: sample_id alone multiplies rows
    card = (smoke_dataset / "README.md").read_text()
    for name in DATA_TABLES:
        assert f"| `{name}` |" in card and ", ".join(TABLES[name].keys) in card


def test_categories_are_dictionary_encoded_and_units_in_field_metadata(smoke_dataset):
    for table, column in [("solver_log", "status"), ("splits", "split"), ("labels", "rul_source"),
                          ("labels", "solver_status"), ("manifest", "protocol_id")]:
        field = pq.read_schema(first_file(smoke_dataset, table)).field(column)
        assert pa.types.is_dictionary(field.type), (table, column, field.type)
        assert isinstance(pd.read_parquet(first_file(smoke_dataset, table))[column].dtype, pd.CategoricalDtype)
        assert read_table(smoke_dataset, table)[column].map(type).eq(str).all()  # the factory's loader: plain strings
    card = (smoke_dataset / "README.md").read_text()
    assert "| `ambient_temperature_k` | K |" in card and "| `z_real_ohm` | Ohm |" in card
    assert "°C)" in card and "K (" in card  # conditions in the tables' unit, degC beside


def test_card_yaml_is_a_valid_dataset_card_with_a_default_config(smoke_dataset):
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(smoke_dataset / "README.md")
    data = card.data.to_dict()
    assert data["task_categories"] == list(TASK_CATEGORIES)
    rows = sum(table_rows(smoke_dataset, t) for t in DATA_TABLES)
    assert data["size_categories"] == [size_category(rows)] and rows > 1000 and size_category(rows) == "1K<n<10K"
    assert data["creation_date"] == "2026-12-01"  # SOURCE_DATE_EPOCH (tests/conftest.py)
    configs = {c["config_name"]: c for c in data["configs"]}
    assert [name for name, c in configs.items() if c.get("default")] == ["labels"]
    assert data["configs"] == hub_configs(smoke_dataset)
    for name, config in configs.items():
        files = table_files(smoke_dataset, name)
        assert [f["split"] for f in config["data_files"]] == [p.name.split("-")[0] for p in files]
        for entry in config["data_files"]:
            assert [p.name for p in smoke_dataset.glob(entry["path"])] == [f"{entry['split']}-00000-of-00001.parquet"]
    assert "pulses" not in configs  # a table without rows has no files and no config


def test_size_categories_follow_the_hub_bounds():
    assert [size_category(n) for n in (0, 999, 1000, 9_999, 10_000, 2_000_000)] == \
        ["n<1K", "n<1K", "1K<n<10K", "1K<n<10K", "10K<n<100K", "1M<n<10M"]


def test_creation_date_follows_source_date_epoch(monkeypatch):
    from pybamm_factory.dataset.card import creation_date

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert creation_date() == "1970-01-01"
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    import datetime

    assert creation_date() in {(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=s)).date().isoformat()
                               for s in (-5, 0)}
