"""Replay: one sample of the smoke dataset solved again in a fresh process from the
dataset's own metadata and manifest row, compared table by table."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from pybamm_factory.dataset.replay import REPLAY_RTOL, ReplayError, _compare, replay_sample
from pybamm_factory.dataset.store import read_table


def test_a_smoke_sample_replays_bit_for_bit_in_a_fresh_process(smoke_dataset, tmp_path):
    copy = tmp_path / "dataset"
    shutil.copytree(smoke_dataset, copy, ignore=shutil.ignore_patterns(".parts"))
    (copy / "design.yaml").unlink()  # the replay must not need the design file
    sample_id = read_table(copy, "manifest")["sample_id"].iloc[-1]
    out = subprocess.run([sys.executable, "-m", "pybamm_factory.cli", "replay", str(copy), sample_id],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{sample_id}: reproduced" in out.stdout
    assert "labels              identical (bit for bit)" in out.stdout
    assert "impedance_features  identical (bit for bit)" in out.stdout


def test_a_changed_value_is_reported_with_its_column(smoke_dataset):
    labels = read_table(smoke_dataset, "labels")
    one = labels[labels["sample_id"] == labels["sample_id"].iloc[0]].reset_index(drop=True)
    assert _compare("labels", one, one.copy()).identical
    nudged = one.copy()
    nudged.loc[len(nudged) - 1, "soh"] *= 1 + 10 * REPLAY_RTOL
    result = _compare("labels", one, nudged)
    assert not result.identical and not result.within_tolerance and result.worst_column == "soh"
    assert result.max_relative_difference == pytest.approx(10 * REPLAY_RTOL, rel=0.01)
    assert not _compare("labels", one, one.iloc[:-1]).within_tolerance  # a row missing
    with pytest.raises(ReplayError, match="no sample 's-none'"):
        replay_sample(smoke_dataset, "s-none")
