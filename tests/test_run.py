"""The spine end to end: run, tables, schemas, card, verify, resume, determinism."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pybamm_factory import api
from pybamm_factory.dataset import validate_frame, verify
from pybamm_factory.dataset.card import DATA_TABLES
from pybamm_factory.dataset.store import read_table
from tests.dataset_files import first_file, table_digests


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_table_is_written_filled_and_matches_its_schema(smoke_dataset):
    for table in DATA_TABLES:
        frame = read_table(smoke_dataset, table)
        # the smoke design has no pulse test in its RPTs (tests/test_protocols.py runs one that does)
        assert (len(frame) == 0) if table == "pulses" else (len(frame) > 0), f"{table}: {len(frame)} rows"
        assert validate_frame(frame, table) == [], table
    log = read_table(smoke_dataset, "solver_log")
    assert set(log["status"]) <= {"ok", "infeasible", "failed"}
    assert (log["rtol"] > 0).all() and (pd.read_parquet(smoke_dataset / "timings.parquet")["wall_time_s"] > 0).all()
    assert not list((smoke_dataset).rglob("*.tmp-*")), "no temporary files left behind"
    assert not (smoke_dataset / ".parts").exists(), "resume state removed once the dataset is finished"


def test_schema_check_can_fail(smoke_dataset):
    labels = read_table(smoke_dataset, "labels")
    broken = labels.drop(columns=["soh"]).assign(rul_source="guessed")
    problems = validate_frame(broken, "labels")
    assert any("missing column 'soh'" in p for p in problems)
    assert any("rul_source" in p for p in problems)


def test_card_holds_metadata_checksums_and_front_matter(smoke_dataset):
    card = (smoke_dataset / "README.md").read_text()
    assert card.startswith("---\nlicense:")
    assert "The varied parameters are sampled independently" in card
    assert "configs:" in card and "path: data/labels/train-*.parquet" in card
    meta = json.loads((smoke_dataset / "metadata.json").read_text())
    for key in ("model", "model_options", "parameter_set", "parameter_values", "solver", "versions", "seed", "command"):
        assert key in meta
    assert meta["versions"]["pybamm"] and meta["versions"]["casadi"] and meta["versions"]["python"]
    assert meta["parameter_values"]["Nominal cell capacity [A.h]"] == 5.0
    from pybamm_factory.design.manifest import varied_columns

    assert meta["varied_parameters"] == varied_columns(read_table(smoke_dataset, "manifest")) != []
    for line in (smoke_dataset / "checksums.sha256").read_text().splitlines():
        digest, name = line.split("  ")
        # the card lists every digest but its own (README.md is listed in checksums.sha256 only)
        assert (digest in card) == (name != "README.md") and _sha(smoke_dataset / name) == digest
    assert "data/labels/train-00000-of-00001.parquet" in (smoke_dataset / "checksums.sha256").read_text()
    for figure in ("soh_trajectories", "label_distributions", "rpt_curves", "nyquist_fresh_vs_aged", "design_coverage"):
        assert (smoke_dataset / "figures" / f"{figure}.png").stat().st_size > 1000
        assert f"figures/{figure}.png" in card
    assert "## Global sensitivity" in card and "Not computed" in card  # until `sensitivity` runs


def test_verify_catches_a_modified_file(smoke_dataset, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(smoke_dataset, copy)
    assert verify(copy) == []
    path = first_file(copy, "labels")
    labels = pd.read_parquet(path)
    labels.loc[0, "soh"] = 0.5
    labels.to_parquet(path)
    problems = verify(copy)
    assert any(f"{path.relative_to(copy).as_posix()}: sha256 mismatch" in p for p in problems)
    out = subprocess.run([sys.executable, "-m", "pybamm_factory.cli", "verify", str(copy)], capture_output=True, text=True)
    assert out.returncode == 1 and "sha256 mismatch" in out.stdout


def test_same_run_with_one_worker_gives_same_manifest_and_labels(smoke_dataset, tmp_path):
    again = api.run("smoke", samples=4, workers=1, seed=7, out=tmp_path / "w1", quiet=True)
    assert table_digests(again, "manifest") == table_digests(smoke_dataset, "manifest")
    for table in ("labels", "curves", "spectra", "impedance_features", "splits"):
        pd.testing.assert_frame_equal(read_table(again, table),
                                      read_table(smoke_dataset, table), check_exact=True)


def test_rerun_of_a_finished_dataset_changes_nothing_and_other_seed_is_refused(smoke_dataset):
    before = {p: p.stat().st_mtime_ns for p in smoke_dataset.rglob("*") if p.is_file()}
    api.run("smoke", samples=4, workers=1, seed=7, out=smoke_dataset, quiet=True)
    assert {p: p.stat().st_mtime_ns for p in smoke_dataset.rglob("*") if p.is_file()} == before  # nothing rewritten
    assert not (smoke_dataset / ".parts").exists()
    with pytest.raises(api.RunConflictError, match="seed: 7 here, 8 asked"):
        api.run("smoke", samples=4, workers=1, seed=8, out=smoke_dataset, quiet=True)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_uninterrupted(smoke_dataset, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "pybamm_factory.cli", "run", "--design", "smoke", "--samples", "4",
           "--workers", "1", "--seed", "7", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True)
    parts = out / ".parts" / "solver_log"
    deadline = time.time() + 240
    while time.time() < deadline and len(list(parts.glob("*.parquet"))) < 1:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = len(list(parts.glob("*.parquet")))
    assert 1 <= finished < 4, "the run was killed mid-way"
    assert not (out / "data").exists()
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for table in DATA_TABLES:
        a = read_table(out, table)
        b = read_table(smoke_dataset, table)
        pd.testing.assert_frame_equal(a, b, check_exact=True)  # timings live apart, in timings.parquet
    assert table_digests(out) == table_digests(smoke_dataset)
