"""The quality gate names exactly the injected defect; splits keep cell designs whole."""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from pybamm_factory.dataset.store import read_table
from pybamm_factory.design import build_manifest, load_design
from pybamm_factory.design.spec import SplitSettings
from pybamm_factory.quality import make_splits, report, run_checks
from tests.dataset_files import first_file, rebuild_parts

TABLES = ("manifest", "solver_log", "labels", "spectra", "impedance_features", "splits")


@pytest.fixture(scope="module")
def clean(smoke_dataset):
    return {t: read_table(smoke_dataset, t) for t in TABLES}


def _failed(tables):
    return set(report(run_checks(tables))["failed_blocking_checks"])


def test_clean_dataset_passes(clean):
    assert _failed(clean) == set()


def _copy(clean):
    return {k: v.copy() for k, v in copy.copy(clean).items()}


def _dup_sample(t):
    extra = t["manifest"].iloc[[0]].assign(sample_id="s-duplicate", sample_index=99)
    t["manifest"] = pd.concat([t["manifest"], extra], ignore_index=True)
    t["solver_log"] = pd.concat([t["solver_log"], t["solver_log"].iloc[[0]].assign(sample_id="s-duplicate")])
    t["labels"] = pd.concat([t["labels"], t["labels"][t["labels"]["sample_id"] == t["manifest"]["sample_id"][0]]
                             .assign(sample_id="s-duplicate")])
    t["splits"] = pd.concat([t["splits"], t["splits"].iloc[[0]].assign(sample_id="s-duplicate")])


def _dup_point(t):
    t["spectra"] = pd.concat([t["spectra"], t["spectra"].iloc[[5]]], ignore_index=True)


def _null_label(t):
    t["labels"].loc[1, "lli_pct"] = None


def _soh(t):
    t["labels"].loc[1, "soh"] = 1.3


def _resistance(t):
    t["labels"].loc[2, "resistance_ohm"] *= -1


def _design_two_splits(t):
    sid = t["splits"]["sample_id"].iloc[0]
    design = t["splits"]["cell_design_id"].iloc[0]
    other = "test" if t["splits"]["split"].iloc[0] != "test" else "train"
    mates = t["splits"][(t["splits"]["cell_design_id"] == design) & (t["splits"]["sample_id"] != sid)].index
    t["splits"].loc[mates[0], "split"] = other


def _split_sweep(t):
    sweep = t["spectra"]["sweep_id"].iloc[0]
    owner = t["spectra"]["sample_id"].iloc[0]
    split_of = dict(zip(t["splits"]["sample_id"], t["splits"]["split"]))
    other = next(s for s in t["splits"]["sample_id"] if split_of[s] != split_of[owner])
    rows = t["spectra"].index[t["spectra"]["sweep_id"] == sweep][:5]
    t["spectra"].loc[rows, "sample_id"] = other


def _every_sample_failed(t):
    t["solver_log"]["status"] = "failed"
    t["splits"]["split"] = "excluded"


def _infinite_parameter(t):
    column = t["manifest"].select_dtypes("number").columns.drop("sample_index", errors="ignore")[0]
    t["manifest"].loc[0, column] = float("inf")


DEFECTS = [
    (_every_sample_failed, "no_usable_samples"),
    (_infinite_parameter, "manifest_not_finite"),
    (_dup_sample, "duplicate_samples"),
    (_dup_point, "duplicate_spectrum_points"),
    (_null_label, "missing_labels"),
    (_soh, "soh_out_of_range"),
    (_resistance, "negative_resistance"),
    (_design_two_splits, "cell_design_in_two_splits"),
    (_split_sweep, "sweep_straddles_splits"),
]


def test_a_factor_that_a_sample_s_protocol_lacks_is_not_a_defect_but_a_missing_parameter_is(clean):
    """Mixed protocols leave a factor column empty where a protocol has no such factor (a
    calendar sample has no charge rate); a missing varied parameter is still refused."""
    tables = {name: frame.copy() for name, frame in clean.items()}
    tables["manifest"]["storage_soc"] = float("nan")
    tables["manifest"].loc[0, "storage_soc"] = 0.5
    assert _failed(tables) == set()
    varied = [c for c in tables["manifest"].columns if " " in c][0]
    tables["manifest"].loc[1, varied] = float("nan")
    assert _failed(tables) == {"manifest_not_finite"}


@pytest.mark.parametrize("inject,name", DEFECTS, ids=[d[1] for d in DEFECTS])
def test_gate_names_exactly_the_injected_defect(clean, inject, name):
    tables = _copy(clean)
    inject(tables)
    assert _failed(tables) == {name}


def test_strict_cli_exits_nonzero_and_names_the_check(smoke_dataset, tmp_path):
    import shutil

    from click.testing import CliRunner

    from pybamm_factory.cli import main

    copy_dir = tmp_path / "d"
    shutil.copytree(smoke_dataset, copy_dir)
    assert CliRunner().invoke(main, ["check", str(copy_dir), "--strict"]).exit_code == 0
    path = first_file(copy_dir, "labels")
    labels = pd.read_parquet(path)
    labels.loc[0, "soh"] = 1.3
    labels.to_parquet(path)
    result = CliRunner().invoke(main, ["check", str(copy_dir), "--strict"])
    assert result.exit_code == 1
    assert "soh_out_of_range (1 rows)" in result.output


def _manifest(n=60):
    design = load_design("default")
    m = build_manifest(design, n, 3)
    log = pd.DataFrame({"sample_id": m["sample_id"], "status": "ok"})
    return m, log


def test_splits_keep_cell_designs_whole_and_are_deterministic():
    m, log = _manifest()
    assert m["cell_design_id"].value_counts().min() >= 2
    splits = make_splits(m, log, SplitSettings(), seed=7)
    assert (splits.groupby("cell_design_id")["split"].nunique() == 1).all()
    assert set(splits["split"]) == {"train", "validation", "test"}
    assert splits.equals(make_splits(m, log, SplitSettings(), seed=7))
    assert not splits.equals(make_splits(m, log, SplitSettings(), seed=8))


def test_failed_samples_are_excluded():
    m, log = _manifest()
    log.loc[3, "status"] = "failed"
    splits = make_splits(m, log, SplitSettings(), seed=7)
    assert splits.loc[3, "split"] == "excluded"


def test_stratified_and_extrapolation_splits():
    m, log = _manifest(90)
    strat = make_splits(m, log, SplitSettings(stratify="ambient_temperature_k"), seed=1)
    assert (strat.groupby("cell_design_id")["split"].nunique() == 1).all()
    hold = make_splits(m, log, SplitSettings(train=0.8, val=0.2, test=0.0,
                                             holdout={"column": "ambient_temperature_k", "side": "high", "fraction": 0.3}), seed=1)
    hottest = m["ambient_temperature_k"].max()
    assert (hold.loc[m["ambient_temperature_k"] == hottest, "split"] == "test").all()
    trainval = hold[hold["split"].isin(["train", "validation"])]
    assert (m.loc[trainval.index, "ambient_temperature_k"] < hottest).all()
    used = hold[hold["split"] != "excluded"]
    assert (used.groupby("cell_design_id")["split"].nunique() == 1).all()


def test_sliced_compaction_and_gate_equal_whole_tables(smoke_dataset, tmp_path, monkeypatch):
    """Large tables are compacted and gated a slice of samples at a time: same rows, same verdicts."""

    import pyarrow.parquet as pq

    from pybamm_factory.dataset import store

    copy_dir = tmp_path / "d"
    rebuild_parts(smoke_dataset, copy_dir, drop=0)  # the per-sample parts, as a run leaves them
    manifest = read_table(smoke_dataset, "manifest")
    monkeypatch.setattr(store, "SAMPLES_PER_ROW_GROUP", 1)
    splits = read_table(smoke_dataset, "splits")
    split_of = dict(zip(splits["sample_id"], splits["split"]))
    store.write_table(copy_dir, "manifest", manifest, split_of)  # read_table orders split files by it
    for table in store.LARGE_TABLES:
        rows = store.write_compacted(copy_dir, table, manifest, split_of)
        whole = store.compact_table(copy_dir, table, manifest)
        sliced = read_table(copy_dir, table)
        per_split = splits.set_index("sample_id").loc[whole["sample_id"], "split"].value_counts().to_dict()
        assert sum(rows.values()) == len(whole) and rows == per_split
        assert sum(pq.ParquetFile(p).num_row_groups for p in store.table_files(copy_dir, table)) == manifest["sample_id"].nunique()
        pd.testing.assert_frame_equal(sliced, whole, check_dtype=False)
    tables = {t: read_table(smoke_dataset, t) for t in TABLES}
    # a repeated spectrum point in the last slice only, and a non-monotone grid in the first
    spectra = tables["spectra"]
    last = spectra["sample_id"] == spectra["sample_id"].iloc[-1]
    bad = pd.concat([spectra, spectra[last].tail(1)], ignore_index=True)
    bad.loc[1, "frequency_hz"] = bad.loc[3, "frequency_hz"] * 0.9
    slices = [g for _, g in bad.groupby("sample_id", sort=False)]
    whole_report = report(run_checks({**tables, "spectra": bad}))
    sliced_report = report(run_checks({k: v for k, v in tables.items() if k != "spectra"}, spectra_slices=slices))
    assert set(sliced_report["failed_blocking_checks"]) == set(whole_report["failed_blocking_checks"]) \
        == {"duplicate_spectrum_points", "non_monotone_frequency"}
    counts = lambda r: {c["name"]: c["count"] for c in r["checks"]}  # noqa: E731
    assert counts(sliced_report) == counts(whole_report)
