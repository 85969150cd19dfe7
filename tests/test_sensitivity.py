"""Global sensitivity (`pybamm-factory sensitivity`): Sobol' indices of a real Saltelli run,
rbd_fast on given data, and the one-line refusals (failed samples, reordered manifests, too
few samples)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from pybamm_factory import api
from pybamm_factory.analysis.sensitivity import (
    FINAL,
    SensitivityError,
    analyse,
    card_section,
    sensitivity,
    write,
)
from pybamm_factory.dataset.store import read_table
from pybamm_factory.dataset.tables import TABLES

SMOKE = Path(__file__).resolve().parents[1] / "src" / "pybamm_factory" / "designs" / "smoke.yaml"
SEI = "SEI solvent diffusivity [m2.s-1]"
# PyBaMM uses a separator's density only in thermal models: the isothermal SPMe ignores it
IGNORED = "Separator density [kg.m-3]"
NAMES = ["x1 [-]", "x2 [-]", "x3 [-]"]  # synthetic parameters: x1 dominant, x2 small, x3 unused
CYCLES = (0, 10, 20)


def _final(table: pd.DataFrame, label: str) -> pd.DataFrame:
    return table[(table["label"] == label) & (table["rpt"] == FINAL)].set_index("parameter")


# ---------------------------------------------------------------- a real Saltelli run


@pytest.fixture(scope="module")
def saltelli_dataset(tmp_path_factory) -> Path:
    """The smoke design as a Saltelli sample of two parameters (the SEI diffusivity, which
    drives its fade, and one the model ignores), one condition, base N = 4: 16 samples."""
    raw = yaml.safe_load(SMOKE.read_text())
    raw.update(name="smoke-sobol", sampler="sobol", conditions_per_cell_design=1, ambient_temperatures_c=[25])
    raw["varied"] = {SEI: {"distribution": "log-uniform", "low": 2.5e-21, "high": 2.5e-18},
                     IGNORED: {"distribution": "uniform", "low": 100.0, "high": 5000.0}}
    raw["protocols"][0].update(charge_c_rate=1.0, discharge_c_rate=1.0)
    raw["aging"].update(max_cycles=4, rpt_interval_cycles=2)
    folder = tmp_path_factory.mktemp("sobol")
    design = folder / "smoke-sobol.yaml"
    design.write_text(yaml.safe_dump(raw, sort_keys=False))
    return api.run(design, samples=16, workers=2, seed=7, out=folder / "run", quiet=True)


def test_saltelli_run_finds_dominant_and_ignored_parameter(saltelli_dataset):
    manifest = read_table(saltelli_dataset, "manifest")
    assert len(manifest) == 16  # N * (D + 2) with N = 4, D = 2
    # the check the test relies on: rows A and AB_2 of each block differ only in the ignored
    # parameter, and their labels are the same numbers
    labels = read_table(saltelli_dataset, "labels").set_index("sample_id")
    for block in range(4):
        a, ab2 = manifest["sample_id"].iloc[4 * block], manifest["sample_id"].iloc[4 * block + 2]
        assert manifest[IGNORED].iloc[4 * block] != manifest[IGNORED].iloc[4 * block + 2]
        np.testing.assert_array_equal(labels.loc[a, ["soh", "lli_pct", "resistance_ohm"]].to_numpy(),
                                      labels.loc[ab2, ["soh", "lli_pct", "resistance_ohm"]].to_numpy())

    result = analyse(saltelli_dataset)
    table = result.table
    assert result.method == "sobol" and set(table["method"]) == {"sobol"}
    assert list(table.columns[:9]) == ["label", "rpt", "parameter", "S1", "S1_conf", "ST", "ST_conf", "method", "n"]
    soh = _final(table, "soh")
    assert soh.loc[SEI, "ST"] > 0.5
    assert abs(soh.loc[IGNORED, "ST"]) < 0.05 and abs(soh.loc[IGNORED, "S1"]) < 0.05
    assert soh.loc[IGNORED, "ST"] == 0.0  # Y does not depend on it at all: exactly zero
    assert (soh["n"] == 16).all()
    # per-RPT view: RPT 0 (fresh cell, SOH = 1 for all) is a constant output, later RPTs are analysed
    per_rpt = table[(table["label"] == "soh") & (table["parameter"] == SEI)].set_index("rpt")
    assert list(per_rpt.index) == ["0", "1", "2", FINAL]
    assert per_rpt.loc["0", "note"] == "constant output" and per_rpt.loc["2", "ST"] > 0.5
    assert _final(table, "r_ct_ohm").loc[IGNORED, "ST"] == 0.0
    # base 4 is below the stated minimum: one warning line says so
    assert any("below the stated minimum" in w for w in result.warnings)


def test_sensitivity_cli_writes_table_figures_and_card(saltelli_dataset, tmp_path):
    out = tmp_path / "sens"
    result = CliRunner().invoke(sensitivity, [str(saltelli_dataset), "--labels", "soh,lli_pct,r_ct_ohm", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("sensitivity.parquet", "heatmap.png", "soh_by_rpt.png"):
        assert (out / name).stat().st_size > 0
    table = pd.read_parquet(out / "sensitivity.parquet")
    assert set(table["label"]) == {"soh", "lli_pct", "r_ct_ohm"}
    assert "rpt = final" in result.stdout and SEI in result.stdout and "sensitivity.parquet" in result.stdout
    assert "warning: n = 16" in result.stderr
    card = card_section(table)
    assert card.startswith("## Global sensitivity") and f"| soh | **{SEI}** |" in card
    # the default output folder lies inside the dataset: the card gains the table, and the
    # dataset still verifies (the folder is derived, outside checksums.sha256)
    assert CliRunner().invoke(sensitivity, [str(saltelli_dataset), "--labels", "soh"]).exit_code == 0
    assert (saltelli_dataset / "sensitivity" / "sensitivity.parquet").exists()
    readme = (saltelli_dataset / "README.md").read_text()
    assert "## Global sensitivity" in readme and f"| soh | **{SEI}** |" in readme and "Not computed" not in readme
    from pybamm_factory.dataset import verify

    assert verify(saltelli_dataset) == []


# ---------------------------------------------------------------- LHS datasets


def test_small_lhs_dataset_is_refused_in_one_line(smoke_dataset):
    result = CliRunner().invoke(sensitivity, [str(smoke_dataset)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "too few samples" in result.stderr and "4 of 4 solved" in result.stderr and "rbd_fast" in result.stderr


# ---------------------------------------------------------------- synthetic datasets (no physics)


def _put(root: Path, name: str, frame: pd.DataFrame) -> None:
    """Write a table where a dataset keeps it (one split file)."""
    path = root / TABLES[name].file("train")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path)


def _dataset(root: Path, x: np.ndarray, sampler: str, failed=()) -> Path:
    """A dataset folder with the tables the analysis reads: SOH fades at a rate set by x1
    (strongly) and x2 (weakly); x3 is never used."""
    root.mkdir(parents=True)
    ids = [f"s-{i:04d}" for i in range(len(x))]
    manifest = pd.DataFrame({"sample_id": ids, "cell_design_id": [f"c-{i:04d}" for i in range(len(x))],
                             "sample_index": np.arange(len(x)), **{n: x[:, j] for j, n in enumerate(NAMES)},
                             "protocol_id": "cccv-cc", "ambient_temperature_k": 298.15})
    _put(root, "manifest", manifest)
    status = ["failed" if i in failed else "ok" for i in range(len(x))]
    _put(root, "solver_log", pd.DataFrame({"sample_id": ids, "status": status}))
    rate = 1e-3 * (1 + 9 * x[:, 0] + 0.5 * x[:, 1])
    rows = [{"sample_id": s, "cycle": c, "soh": 1 - r * c, "lli_pct": 100 * r * c, "eol_cycle": 0.2 / r}
            for s, r, st in zip(ids, rate, status) if st == "ok" for c in CYCLES]
    _put(root, "labels", pd.DataFrame(rows))
    (root / "metadata.json").write_text(json.dumps({"design": {"sampler": sampler, "conditions_per_cell_design": 1}}))
    return root


def _saltelli_x(base: int) -> np.ndarray:
    from SALib.sample import sobol as salib_sobol

    problem = {"num_vars": 3, "names": NAMES, "bounds": [[0.0, 1.0]] * 3}
    return salib_sobol.sample(problem, base, calc_second_order=False, seed=7)


def test_saltelli_synthetic_indices_and_per_rpt_view(tmp_path):
    root = _dataset(tmp_path / "d", _saltelli_x(64), "sobol")
    result = analyse(root, ["soh", "eol_cycle"])
    soh = _final(result.table, "soh")
    assert soh.loc["x1 [-]", "ST"] > 0.9 and soh.loc["x1 [-]", "S1"] > 0.8
    assert 0 < soh.loc["x2 [-]", "ST"] < 0.05
    assert soh.loc["x3 [-]", ["S1", "ST", "S1_conf", "ST_conf"]].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert (soh["n"] == 64 * 5).all() and soh["stable"].all()
    assert not result.warnings  # base 64 meets the stated minimum; every label has a clear index
    assert list(result.table.loc[result.table["label"] == "eol_cycle", "rpt"].unique()) == [FINAL]
    assert set(result.table.loc[result.table["label"] == "soh", "rpt"]) == {"0", "1", "2", FINAL}


def test_saltelli_failed_samples_refused_or_blocks_dropped(tmp_path):
    root = _dataset(tmp_path / "d", _saltelli_x(32), "sobol", failed=(3, 12))
    with pytest.raises(SensitivityError, match=r"^2 of 160 samples did not solve .*--drop-incomplete .* 30 of 32 blocks"):
        analyse(root, ["soh"])
    result = analyse(root, ["soh"], drop_incomplete=True)
    soh = _final(result.table, "soh")
    assert (soh["n"] == 30 * 5).all() and soh.loc["x1 [-]", "ST"] > 0.9 and soh.loc["x3 [-]", "ST"] == 0.0
    assert any("below the stated minimum" in w for w in result.warnings)


def test_saltelli_reordered_manifest_refused(tmp_path):
    x = _saltelli_x(8)
    root = _dataset(tmp_path / "d", x[np.random.default_rng(0).permutation(len(x))], "sobol")
    with pytest.raises(SensitivityError, match="not in SALib's Saltelli order"):
        analyse(root, ["soh"])


def test_saltelli_small_sample_warns_when_intervals_overlap_zero(tmp_path):
    x = _saltelli_x(2)
    root = _dataset(tmp_path / "d", x, "sobol")
    labels = read_table(root, "labels")
    labels["soh"] = 1 - np.random.default_rng(1).normal(size=len(labels)) ** 2 * 1e-3  # noise: no parameter explains it
    _put(root, "labels", labels)
    result = analyse(root, ["soh"])
    assert any(w.startswith("warning: soh: at rpt") and "overlaps zero" in w for w in result.warnings)
    assert not _final(result.table, "soh")["stable"].any()


def test_lhs_synthetic_uses_rbd_fast(tmp_path):
    from scipy.stats import qmc

    root = _dataset(tmp_path / "d", qmc.LatinHypercube(d=3, rng=np.random.default_rng(0)).random(200), "lhs")
    result = analyse(root, ["soh"])
    soh = _final(result.table, "soh")
    assert result.method == "rbd_fast" and (soh["n"] == 200).all()
    assert soh.loc["x1 [-]", "S1"] > 0.8 and abs(soh.loc["x3 [-]", "S1"]) < 0.1
    assert soh["ST"].isna().all()  # rbd_fast has no total-order index
    paths = write(result, tmp_path / "out")
    assert [p.name for p in paths] == ["sensitivity.parquet", "heatmap.png", "soh_by_rpt.png"]
    assert "rbd_fast" in card_section(result.table)


def test_bad_requests_are_one_line_errors(tmp_path):
    root = _dataset(tmp_path / "d", _saltelli_x(4), "sobol")
    runner = CliRunner()
    for args, message in [(["--labels", "soh,nope"], "unknown label 'nope'"),
                          (["--labels", ","], "--labels: give at least one label"),
                          ([], None)]:
        result = runner.invoke(sensitivity, [str(root), *args])
        if message is None:
            assert result.exit_code == 0, result.output
            continue
        assert result.exit_code == 2 and result.stderr.startswith("error: ") and message in result.stderr
        assert result.stderr.count("\n") == 1
    missing = runner.invoke(sensitivity, [str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "no such dataset directory" in missing.stderr


def test_saltelli_conditions_per_cell_design_are_averaged(tmp_path):
    x = np.repeat(_saltelli_x(16), 2, axis=0)  # two conditions per cell design
    root = _dataset(tmp_path / "d", x, "sobol")
    manifest = read_table(root, "manifest")
    manifest["ambient_temperature_k"] = np.where(np.arange(len(x)) % 2, 313.15, 298.15)  # the same pair for every cell
    _put(root, "manifest", manifest)
    (root / "metadata.json").write_text(json.dumps({"design": {"sampler": "sobol", "conditions_per_cell_design": 2}}))
    result = analyse(root, ["soh"])
    assert "note: a cell design's output is the mean over its 2 conditions" in result.notes
    assert not any("operating conditions" in w for w in result.warnings)
    assert (_final(result.table, "soh")["n"] == 16 * 5 * 2).all()
    manifest["ambient_temperature_k"] = np.random.default_rng(0).uniform(290, 320, len(x))  # differ from cell to cell
    _put(root, "manifest", manifest)
    assert any("operating conditions (ambient_temperature_k) differ" in w for w in analyse(root, ["soh"]).warnings)
