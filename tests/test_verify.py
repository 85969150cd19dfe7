"""verify covers every file of a dataset; the gate fails a run with no usable sample;
the files under the byte-identity promise come out the same from any run."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from pybamm_factory import api
from pybamm_factory.cli import main
from pybamm_factory.dataset import verify
from pybamm_factory.dataset.card import CARD, LISTING, TIMINGS_FILE, TIMINGS_LISTING
from pybamm_factory.dataset.store import read_table
from pybamm_factory.design import packaged_designs
from pybamm_factory.simulate.sample import TIMING_COLUMNS
from tests.dataset_files import first_file


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _listed(root: Path) -> dict[str, str]:
    return {name: digest for digest, name in (line.split("  ", 1) for line in (root / LISTING).read_text().splitlines())}


@pytest.fixture
def dataset(smoke_dataset, tmp_path) -> Path:
    """A private copy of the session's smoke dataset, free to tamper with."""
    copy = tmp_path / "copy"
    shutil.copytree(smoke_dataset, copy, symlinks=True)
    return copy


def test_intact_dataset_lists_every_file_and_keeps_timings_apart(dataset):
    assert verify(dataset) == []
    listed = _listed(dataset)
    on_disk = {p.relative_to(dataset).as_posix() for p in dataset.rglob("*")
               if p.is_file() and ".parts" not in p.relative_to(dataset).parts}
    assert on_disk == set(listed) | {LISTING, TIMINGS_FILE, TIMINGS_LISTING}
    assert {"design.yaml", "run.json", CARD} <= set(listed)
    card = (dataset / CARD).read_text()
    for name, digest in listed.items():
        assert _sha(dataset / name) == digest
        assert (name == CARD) == (f"| `{name}` | `{digest}` |" not in card), name  # the card lists all but itself
    log = read_table(dataset, "solver_log")
    timings = pd.read_parquet(dataset / TIMINGS_FILE)
    assert not set(TIMING_COLUMNS) & set(log.columns)
    assert list(timings["sample_id"]) == list(log["sample_id"]) and (timings["wall_time_s"] > 0).all()
    assert (dataset / TIMINGS_LISTING).read_text() == f"{_sha(dataset / TIMINGS_FILE)}  {TIMINGS_FILE}\n"


def _append(path: Path, text: str) -> None:
    with open(path, "a") as fh:
        fh.write(text)


def _edit_design(d):
    _append(d / "design.yaml", "# edited after the run\n")
    return "design.yaml"


def _edit_card(d):
    (d / CARD).write_text((d / CARD).read_text().replace("synthetic", "measured", 1))
    return CARD


def _delete_card(d):
    (d / CARD).unlink()
    return CARD


def _stray_table(d):
    shutil.copy(first_file(d, "labels"), d / "data" / "labels" / "extra-00000-of-00001.parquet")
    return "data/labels/extra-00000-of-00001.parquet"


def _split_file_with_another_splits_rows(d):
    """A test file that holds a train sample's rows, listed with a matching checksum: the
    tables say one thing and the splits table another."""
    train, test = (d / f"data/labels/{s}-00000-of-00001.parquet" for s in ("train", "test"))
    shutil.copy(train, test)
    lines = (d / LISTING).read_text().splitlines(keepends=True)
    (d / LISTING).write_text("".join(f"{_sha(test)}  {test.relative_to(d).as_posix()}\n"
                                     if line.endswith(f"  {test.relative_to(d).as_posix()}\n") else line for line in lines))
    (d / CARD).unlink()  # the card's digest would differ too: leave only the split problem to find
    return test.relative_to(d).as_posix()


def _stray_figure(d):
    shutil.copy(next((d / "figures").glob("*.png")), d / "figures" / "extra.png")
    return "figures/extra.png"


def _table_and_its_lines_deleted(d):
    shutil.rmtree(d / "data" / "solver_log")
    lines = (d / LISTING).read_text().splitlines(keepends=True)
    (d / LISTING).write_text("".join(line for line in lines if "  data/solver_log/" not in line))
    return "data/solver_log/"


def _augment_killed_before_checksums(d):
    """What an augment killed after writing its tables, before refresh_card, leaves behind."""
    folder = d / "augment" / "cvae-seed0-0123abcd"
    folder.mkdir(parents=True)
    labels = read_table(d, "labels").assign(is_generated=True, generator_id="cvae-seed0-0123abcd")
    labels.to_parquet(folder / "labels.parquet")
    return "augment/cvae-seed0-0123abcd/labels.parquet"


def _blank_line(d):
    lines = (d / LISTING).read_text().splitlines(keepends=True)
    (d / LISTING).write_text("".join(lines[:3] + ["\n"] + lines[3:]))
    return f"{LISTING} line 4: blank line"


def _truncated_parquet(d):
    path = first_file(d, "labels")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path.relative_to(d).as_posix()


def _edited_timings(d):
    timings = pd.read_parquet(d / TIMINGS_FILE)
    timings["wall_time_s"] *= 2
    timings.to_parquet(d / TIMINGS_FILE)
    return TIMINGS_FILE


def _listed_outside(d):
    secret = d.parent / "outside.txt"
    secret.write_text("not part of the dataset\n")
    _append(d / LISTING, f"{_sha(secret)}  ../outside.txt\n")
    return "../outside.txt"


def _listed_device(d):
    _append(d / LISTING, f"{'0' * 64}  /dev/zero\n")
    return "/dev/zero"


def _listed_link_to_device(d):
    os.symlink("/dev/zero", d / "zero.bin")
    _append(d / LISTING, f"{'0' * 64}  zero.bin\n")
    return "zero.bin"


TAMPERINGS = [_edit_design, _edit_card, _delete_card, _stray_table, _stray_figure, _table_and_its_lines_deleted,
              _split_file_with_another_splits_rows,
              _augment_killed_before_checksums, _blank_line, _truncated_parquet, _edited_timings, _listed_outside,
              _listed_device, _listed_link_to_device]


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=[t.__name__.strip("_") for t in TAMPERINGS])
def test_verify_fails_in_one_line_naming_the_file(dataset, tamper):
    name = tamper(dataset)
    result = CliRunner().invoke(main, ["verify", str(dataset)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    lines = result.output.splitlines()
    assert lines and all(line.startswith("FAIL ") for line in lines), result.output
    assert any(line.startswith(f"FAIL {name}") for line in lines), result.output


def test_verify_command_refuses_paths_out_of_the_dataset_without_hanging(dataset):
    """A listed path outside the dataset is never read, a device never opened (the
    command returns at once), and the answer is FAIL lines, not a traceback."""
    _listed_outside(dataset)
    _listed_device(dataset)
    out = subprocess.run([sys.executable, "-m", "pybamm_factory.cli", "verify", str(dataset)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "FAIL ../outside.txt: refused" in out.stdout and "FAIL /dev/zero: refused: absolute path" in out.stdout


def _smoke_raw(name: str) -> dict:
    raw = yaml.safe_load(packaged_designs()["smoke"].read_text())
    raw["name"] = name
    return raw


def _upper_cutoff_3v(raw):  # no cell charges to 3.0 V: every sample fails
    raw["protocols"][0]["upper_voltage_v"] = 3.0
    return ["no_usable_samples"]


@pytest.mark.parametrize("spoil", [_upper_cutoff_3v], ids=["upper_3v"])
def test_run_with_no_usable_sample_fails_the_gate_and_says_so_at_the_top_of_the_card(tmp_path, spoil):
    raw = _smoke_raw(f"smoke-{spoil.__name__.strip('_')}")
    failing = spoil(raw)
    design = tmp_path / "design.yaml"
    design.write_text(yaml.safe_dump(raw, sort_keys=False))
    out = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(main, ["run", "--design", str(design), "-n", "2", "--workers", "1", "--out", str(out),
                                  "--quiet", "--strict"])
    assert result.exit_code == 1, result.output
    assert f"quality: FAILED {', '.join(failing)}" in result.output and "quality: passed" not in result.output
    card = (out / CARD).read_text()
    body = card.split("\n---\n", 1)[1].lstrip()  # after the front matter
    assert body.startswith("> **QUALITY GATE FAILED: " + failing[0]), body[:200]
    assert all(name in body.splitlines()[0] for name in failing)
    assert runner.invoke(main, ["check", str(out), "--strict"]).exit_code == 1
    checked = runner.invoke(main, ["verify", str(out)])  # intact files, but never a plain "ok"
    assert not checked.output.startswith("ok"), checked.output
    assert "QUALITY GATE FAILED" in checked.output or checked.exit_code == 1, checked.output


@pytest.mark.slow
def test_killed_one_worker_run_gives_the_same_bytes_as_an_uninterrupted_two_worker_run(smoke_dataset, tmp_path):
    """Every file under the identity promise (everything checksums.sha256 lists, the
    listing and the card) is byte-identical; only timings.parquet may differ."""
    out = tmp_path / "killed"
    code = textwrap.dedent(f"""
        from pybamm_factory import api
        api.run("smoke", samples=4, workers=1, seed=7, out={str(out)!r}, quiet=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    parts = out / ".parts" / "solver_log"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not list(parts.glob("*.parquet")):
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 1 <= len(list(parts.glob("*.parquet"))) < 4, "killed mid-way"
    api.run("smoke", samples=4, workers=1, seed=7, out=out, quiet=True)  # resumes

    listed = _listed(smoke_dataset)
    assert _listed(out).keys() == listed.keys()
    for name in [*listed, LISTING]:
        assert (out / name).read_bytes() == (smoke_dataset / name).read_bytes(), name
    assert verify(out) == []
    pd.testing.assert_frame_equal(pd.read_parquet(out / TIMINGS_FILE)[["sample_id"]],
                                  pd.read_parquet(smoke_dataset / TIMINGS_FILE)[["sample_id"]])


def test_columns_describe_themselves(smoke_dataset):
    """Every Parquet field carries its description and unit, and each table its name and what
    a row is, so a table read without this repository still says what it holds; ok rows
    have a null failure_reason, not an empty string."""
    import pyarrow.parquet as pq

    from pybamm_factory.dataset.tables import TABLES

    for name in ("manifest", "solver_log", "labels", "curves", "spectra", "impedance_features", "splits"):
        schema = pq.read_schema(first_file(smoke_dataset, name))
        assert schema.metadata[b"pybamm_factory.table"] == name.encode()
        assert schema.metadata[b"pybamm_factory.row"].startswith(b"One row per")
        keys = schema.metadata[b"pybamm_factory.keys"].decode().split(",")
        assert tuple(keys) == TABLES[name].keys and not read_table(smoke_dataset, name).duplicated(keys).any(), name
        for field in schema:
            assert field.metadata and b"description" in field.metadata and b"unit" in field.metadata, (name, field.name)
    labels = pq.read_schema(first_file(smoke_dataset, "labels"))
    assert labels.field("capacity_ah").metadata[b"unit"] == b"A.h"
    assert pq.read_schema(first_file(smoke_dataset, "impedance_features")).field("f_peak_hz").metadata[b"unit"] == b"Hz"
    assert pq.read_schema(first_file(smoke_dataset, "manifest")).field("ambient_temperature_k").metadata[b"unit"] == b"K"
    log = read_table(smoke_dataset, "solver_log")
    assert log.loc[log["status"] == "ok", "failure_reason"].isna().all()
