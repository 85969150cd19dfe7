"""The measurement layer (`pybamm-factory observe`): seeded, reproducible measured copies of a
real smoke dataset; noise, quantisation, gain, offset and drift as the profile states them;
EIS noise growing at low frequency and the lin-KK gate; one-line errors for bad profiles."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from pybamm_factory.cli import main
from pybamm_factory.dataset.store import read_table
from pybamm_factory.observe import (
    OUT_FOLDER,
    PROFILE_COLUMN,
    ProfileError,
    card_section,
    channel_errors,
    first_order_lag,
    kk_failure_share,
    load_profile,
    measure_discharge,
    observe,
    observe_sample_curves,
    packaged_profiles,
    parse_profile,
    sample_rng,
)
from pybamm_factory.observe.profiles import FIELD_NAMES, NUMBER_FIELDS

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = {"curves.parquet", "spectra.parquet", "impedance_features.parquet", "rpt_features.parquet",
           "channel_errors.parquet", "observation.json", "clean_vs_observed.png"}


# the card and its listing are re-rendered after `observe` (its section); every other file stays
REFRESHED = {"README.md", "checksums.sha256"}


def _hashes(root: Path, skip_observed: bool = True) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and not (skip_observed and OUT_FOLDER in p.relative_to(root).parts[:1])
            and p.relative_to(root).as_posix() not in REFRESHED}


def _observe_cli(root: Path, *args) -> object:
    return CliRunner().invoke(main, ["observe", str(root), *map(str, args)])


def _profile(tmp_path: Path, name: str, **values) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"base": "ideal", "name": name, **values}, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def datasets(smoke_dataset, tmp_path_factory) -> tuple[Path, Path]:
    """Two private copies of the session's smoke dataset (4 samples, real PyBaMM solves)."""
    base = tmp_path_factory.mktemp("observe")
    copies = (base / "a", base / "b")
    for copy in copies:
        shutil.copytree(smoke_dataset, copy, symlinks=True)
    return copies


@pytest.fixture(scope="module")
def observed(datasets) -> Path:
    """The first copy, observed with bms-grade, seed 1, through the command line."""
    root = datasets[0]
    before = _hashes(root)
    result = _observe_cli(root, "--profile", "bms-grade", "--seed", "1")
    assert result.exit_code == 0, result.output
    assert _hashes(root) == before  # the physics tables (and every other file but the card) are untouched
    assert "### `bms-grade` (seed 1" in (root / "README.md").read_text()
    return root


# ---------------------------------------------------------------- the dataset-level command


def test_outputs_are_labelled_and_physics_tables_untouched(observed, smoke_dataset):
    folder = observed / OUT_FOLDER / "bms-grade"
    assert {p.name for p in folder.iterdir()} == OUTPUTS
    assert _hashes(observed) == _hashes(smoke_dataset)  # every file outside observed/ as the run wrote it
    for name in OUTPUTS - {"observation.json", "clean_vs_observed.png"}:
        frame = pd.read_parquet(folder / name)
        assert len(frame) and set(frame[PROFILE_COLUMN]) == {"bms-grade"}, name
    clean = read_table(observed, "curves")
    curves = pd.read_parquet(folder / "curves.parquet")
    assert len(curves) == len(clean)
    assert set(clean.columns) <= set(curves.columns) and "temperature_k" in curves
    # the observed voltage differs from the clean one by millivolts, not by volts
    diff = (curves["voltage_v"] - clean["voltage_v"]).abs()
    assert 0 < diff.median() < 0.01
    spectra = pd.read_parquet(folder / "spectra.parquet")
    assert len(spectra) == len(read_table(observed, "spectra"))
    record = json.loads((folder / "observation.json").read_text())
    assert record["profile"] == "bms-grade" and record["seed"] == 1 and record["package_version"]
    assert record["profile_values"]["source"] and record["rows"]["curves"] == len(curves)
    assert {name for name in record["files_sha256"]} == OUTPUTS - {"observation.json"}
    for name, digest in record["files_sha256"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    # the quality gate ran on both: bms-grade's on-board EIS noise makes lin-KK fail more often
    assert record["quality"]["observed"]["kk_inconsistent"]["count"] > record["quality"]["clean"]["kk_inconsistent"]["count"]


def test_same_seed_same_bytes_other_seed_other_bytes(observed, datasets):
    other = datasets[1]
    first = _hashes(observed / OUT_FOLDER, skip_observed=False)
    assert _observe_cli(other, "--profile", "bms-grade", "--seed", "1", "-q").exit_code == 0
    assert _hashes(other / OUT_FOLDER, skip_observed=False) == first  # byte for byte, in another directory
    assert _observe_cli(other, "--profile", "bms-grade", "--seed", "2", "-q").exit_code == 0
    second = _hashes(other / OUT_FOLDER, skip_observed=False)
    for name in ("curves.parquet", "spectra.parquet", "rpt_features.parquet", "channel_errors.parquet"):
        assert second[f"bms-grade/{name}"] != first[f"bms-grade/{name}"], name


def test_a_sample_alone_gives_the_same_rows(observed):
    """Per-sample generators: observing one sample alone equals its rows in the full run."""
    clean = read_table(observed, "curves")
    full = pd.read_parquet(observed / OUT_FOLDER / "bms-grade" / "curves.parquet")
    sample_id = clean["sample_id"].unique()[-1]
    labels = read_table(observed, "labels")
    mine = labels[labels["sample_id"] == sample_id]
    meta = json.loads((observed / "metadata.json").read_text())
    current = meta["design"]["aging"]["rpt_discharge_c_rate"] * meta["parameter_values"]["Nominal cell capacity [A.h]"]
    ambient = read_table(observed, "manifest").set_index("sample_id").loc[sample_id, "ambient_temperature_k"]
    alone, _ = observe_sample_curves(clean[clean["sample_id"] == sample_id], load_profile("bms-grade"), 1, current,
                                     dict(zip(mine["cycle"], mine["elapsed_days"])),
                                     dict(zip(mine["cycle"], mine["resistance_ohm"])), ambient)
    expected = full[full["sample_id"] == sample_id].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone.reset_index(drop=True), expected, check_exact=True)


def test_ideal_profile_reproduces_clean_features(datasets):
    """No error at all: capacity, SOH, resistance and every impedance feature come out as the
    physics tables hold them (the same code computes both); ICA/DVA move only by resampling."""
    root = datasets[1]
    observe(root, "ideal", seed=0)
    folder = root / OUT_FOLDER / "ideal"
    rpt = pd.read_parquet(folder / "rpt_features.parquet")
    labels = read_table(root, "labels").set_index(["sample_id", "cycle"]).loc[rpt.set_index(["sample_id", "cycle"]).index]
    np.testing.assert_allclose(rpt["capacity_ah"], labels["capacity_ah"], rtol=1e-10)
    np.testing.assert_allclose(rpt["soh"], labels["soh"], rtol=1e-10)
    np.testing.assert_allclose(rpt["resistance_ohm"], labels["resistance_ohm"], rtol=1e-9)
    np.testing.assert_allclose(rpt["ica_peak1_v"], labels["ica_peak1_v"], atol=0.003)
    feats = pd.read_parquet(folder / "impedance_features.parquet")
    clean = read_table(root, "impedance_features")
    for column in ("r_ohm_ohm", "r_ct_ohm", "kk_residual", "f_peak_hz"):
        np.testing.assert_allclose(feats[column], clean[column], rtol=1e-12, err_msg=column)
    curves = pd.read_parquet(folder / "curves.parquet")
    ambient = read_table(root, "manifest").set_index("sample_id")["ambient_temperature_k"]
    np.testing.assert_allclose(curves["temperature_k"], curves["sample_id"].map(ambient))


def test_current_gain_and_offset_move_the_capacity_by_the_stated_fraction(datasets, tmp_path):
    root = datasets[1]
    gain = _profile(tmp_path, "gain-test", current_gain_error_pct=2.0)
    result = _observe_cli(root, "--profile", gain, "--seed", "3", "--no-figure", "-q")
    assert result.exit_code == 0, result.output
    rpt = pd.read_parquet(root / OUT_FOLDER / "gain-test" / "rpt_features.parquet")
    labels = read_table(root, "labels").set_index(["sample_id", "cycle"]).loc[rpt.set_index(["sample_id", "cycle"]).index]
    np.testing.assert_allclose(rpt["capacity_ah"].to_numpy() / labels["capacity_ah"].to_numpy(), 1.02, rtol=1e-9)
    np.testing.assert_allclose(rpt["soh"], labels["soh"], rtol=1e-9)  # a gain error cancels in the ratio
    assert not (root / OUT_FOLDER / "gain-test" / "clean_vs_observed.png").exists()
    # an offset adds offset x discharge time: capacity x (1 + offset / current)
    meta = json.loads((root / "metadata.json").read_text())
    current = meta["design"]["aging"]["rpt_discharge_c_rate"] * meta["parameter_values"]["Nominal cell capacity [A.h]"]
    observe(root, parse_profile({"base": "ideal", "name": "offset-test", "current_offset_a": 0.05}), seed=3, make_figure=False)
    rpt = pd.read_parquet(root / OUT_FOLDER / "offset-test" / "rpt_features.parquet")
    np.testing.assert_allclose(rpt["capacity_ah"].to_numpy() / labels["capacity_ah"].to_numpy(), 1 + 0.05 / current, rtol=1e-9)


def test_eis_noise_grows_at_low_frequency(observed):
    spectra = read_table(observed, "spectra")
    noisy = pd.read_parquet(observed / OUT_FOLDER / "bms-grade" / "spectra.parquet")
    gain = pd.read_parquet(observed / OUT_FOLDER / "bms-grade" / "channel_errors.parquet").set_index("sample_id")["eis_gain"]
    z = spectra["z_real_ohm"] + 1j * spectra["z_imag_ohm"]
    z_obs = noisy["z_real_ohm"] + 1j * noisy["z_imag_ohm"]
    rel = (z_obs - z * (1 + spectra["sample_id"].map(gain))) / np.abs(z)
    parts = pd.DataFrame({"f": spectra["frequency_hz"], "re": rel.map(np.real), "im": rel.map(np.imag)})
    low = parts[parts["f"] < 0.05][["re", "im"]].to_numpy().std()
    high = parts[parts["f"] > 10][["re", "im"]].to_numpy().std()
    profile = load_profile("bms-grade")
    assert high == pytest.approx(profile.eis_noise_pct / 100, rel=0.3)
    assert low > 3 * high  # (1 Hz / f) ** 0.5: about 5x at 0.01-0.03 Hz


def test_lin_kk_fails_more_at_higher_noise(observed):
    spectra = read_table(observed, "spectra")
    white = replace(load_profile("ideal"), eis_noise_low_frequency_exponent=0.0)
    table = kk_failure_share(spectra, white, [0.0, 0.1, 2.0], seeds=range(3)).set_index("level_pct")
    assert table.loc[0.0, "failing"] == 0 and table.loc[0.1, "share"] == 0.0
    assert table.loc[2.0, "share"] == 1.0
    assert table["median_kk_residual"].is_monotonic_increasing


def test_card_section_and_figure(observed):
    text = card_section(observed)
    assert text.startswith("## Observed data (measurement layer)")
    assert "### `bms-grade` (seed 1," in text and "LTC6811" in text
    assert "| feature | n | clean median | observed median |" in text and "| capacity_ah | " in text
    assert "Sweeps failing the lin-KK gate:" in text
    png = (observed / OUT_FOLDER / "bms-grade" / "clean_vs_observed.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


# ---------------------------------------------------------------- the pure functions


def _one_curve(smoke_dataset) -> tuple[np.ndarray, np.ndarray]:
    curves = read_table(smoke_dataset, "curves")
    first = curves[(curves["sample_id"] == curves["sample_id"].iloc[0]) & (curves["cycle"] == 0)]
    return first["discharged_capacity_ah"].to_numpy(), first["voltage_v"].to_numpy()


def test_voltage_and_current_noise_match_the_profile(smoke_dataset):
    q, v = _one_curve(smoke_dataset)
    profile = parse_profile({"base": "ideal", "name": "noise", "voltage_noise_sigma_v": 0.002, "current_noise_sigma_a": 0.01})
    d = measure_discharge(q, v, 2.5, profile, channel_errors(profile, 0, "s"), sample_rng(0, "s", "t"))
    assert len(d.time_s) > 5000  # a C/2 discharge logged every second
    assert np.std(d.voltage_v - d.true_voltage_v) == pytest.approx(0.002, rel=0.2)
    assert np.std(d.current_a - 2.5) == pytest.approx(0.01, rel=0.2)
    assert abs(np.mean(d.voltage_v - d.true_voltage_v)) < 0.0003  # noise, no offset
    bms = load_profile("bms-grade")
    channel = channel_errors(bms, 0, "s")
    d = measure_discharge(q, v, 2.5, bms, channel, sample_rng(0, "s", "t"))
    # with a 1 mV step the reading's scatter about the channel's systematic error is the
    # noise and the rounding together
    expected = np.hypot(bms.voltage_noise_sigma_v, bms.voltage_step_v / np.sqrt(12))
    residual = d.voltage_v - ((1 + channel.voltage_gain) * d.true_voltage_v + channel.voltage_offset_v)
    assert np.std(residual) == pytest.approx(expected, rel=0.2)
    assert abs(np.mean(residual)) < 0.2 * bms.voltage_step_v


def test_quantisation_step_is_visible(smoke_dataset):
    q, v = _one_curve(smoke_dataset)
    profile = parse_profile({"base": "ideal", "name": "coarse", "voltage_step_v": 0.005, "current_step_a": 0.03,
                             "temperature_step_k": 0.5})
    d = measure_discharge(q, v, 2.5, profile, channel_errors(profile, 0, "s"), sample_rng(0, "s", "t"), temperature_k=298.15)
    for values, step in ((d.voltage_v, 0.005), (d.current_a, 0.03), (d.temperature_k, 0.5)):
        np.testing.assert_allclose(values / step, np.round(values / step), atol=1e-6)
    assert np.unique(np.round(d.voltage_v, 9)).size < 0.05 * d.voltage_v.size  # a staircase, not a curve
    np.testing.assert_allclose(d.current_a, 2.49)  # 2.5 A read in 30 mA steps
    assert d.capacity_ah[-1] == pytest.approx(q[-1] * 2.49 / 2.5, rel=1e-9)


def test_drift_grows_with_elapsed_time(smoke_dataset):
    curves = read_table(smoke_dataset, "curves")
    sample = curves[curves["sample_id"] == curves["sample_id"].iloc[0]]
    cycles = sorted(sample["cycle"].unique())
    profile = parse_profile({"base": "ideal", "name": "drift", "current_offset_drift_a_per_month": 0.01,
                             "voltage_drift_v_per_month": 0.001})
    days = {c: 30.4375 * i for i, c in enumerate(cycles)}  # one month between RPTs
    out, feats = observe_sample_curves(sample, profile, 0, 2.5, days)
    clean = sample.groupby("cycle")["discharged_capacity_ah"].max()
    gained = feats.set_index("cycle")["capacity_ah"] / clean - 1
    np.testing.assert_allclose(gained.to_numpy(), [0.01 * i / 2.5 for i in range(len(cycles))], atol=1e-12)
    first_v = out.groupby("cycle")["voltage_v"].first() - sample.groupby("cycle")["voltage_v"].first()
    np.testing.assert_allclose(first_v.to_numpy(), [0.001 * i for i in range(len(cycles))], atol=1e-12)


def test_uniform_channel_errors_stay_within_bounds_and_fixed_are_exact():
    profile = load_profile("lab-cycler")
    draws = pd.DataFrame([channel_errors(profile, 7, f"s-{i}").as_dict() for i in range(400)])
    assert (draws["current_gain"].abs() <= profile.current_gain_error_pct / 100).all()
    assert draws["current_gain"].std() == pytest.approx(profile.current_gain_error_pct / 100 / np.sqrt(3), rel=0.15)
    assert channel_errors(profile, 7, "s-3") == channel_errors(profile, 7, "s-3")
    assert channel_errors(profile, 7, "s-3") != channel_errors(profile, 8, "s-3")
    fixed = replace(profile, systematic_errors="fixed")
    assert channel_errors(fixed, 1, "x").voltage_offset_v == profile.voltage_offset_v


def test_temperature_sensor_lag_is_first_order():
    t = np.arange(0.0, 400.0, 1.0)
    step = np.where(t >= 100, 1.0, 0.0)
    reading = first_order_lag(t, step, 45.0)
    assert reading[100] == 0.0
    assert reading[101 + 45] == pytest.approx(1 - np.exp(-1), abs=0.01)  # 63 % one time constant after the step
    assert first_order_lag(t, step, 0.0).tolist() == step.tolist()


# ---------------------------------------------------------------- profiles


def test_packaged_profiles_cite_sources_and_ship_as_package_data():
    names = packaged_profiles()
    assert {"lab-cycler", "bms-grade", "ideal"} <= set(names)
    for name in names:
        profile = load_profile(name)
        assert profile.name == name and profile.source
        assert set(profile.typical_figures) <= set(NUMBER_FIELDS)
        raw = yaml.safe_load(names[name].read_text())
        assert set(raw) == set(FIELD_NAMES), name  # a packaged profile states every field
    assert load_profile("bms-grade").temperature_lag_time_constant_s >= 30
    assert "observe/profiles/*.yaml" in (REPO / "pyproject.toml").read_text()


@pytest.mark.parametrize("values, message", [
    ({"voltage_noise_sigma_v": -1}, "voltage_noise_sigma_v: must be a number >= 0, got -1"),
    ({"voltage_noise_sigma_v": "loud"}, "voltage_noise_sigma_v: must be a number >= 0, got 'loud'"),
    ({"systematic_errors": "sometimes"}, "systematic_errors: must be one of uniform, fixed"),
    ({"voltage_noise": 0.001}, "voltage_noise: unknown field; allowed: base, name,"),
    ({"sample_period_s": 0}, "sample_period_s: must be a number > 0"),
    ({"current_gain_error_pct": 80}, "current_gain_error_pct: must be a number in [0, 50) (percent)"),
    ({"typical_figures": ["source"]}, "typical_figures: 'source' is not a numeric field"),
    ({"name": "Bad Name"}, "name: must be lower-case letters"),
])
def test_bad_profile_is_one_line_naming_file_and_field(tmp_path, smoke_dataset, values, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"base": "lab-cycler", "name": "bad", **values}))
    result = _observe_cli(smoke_dataset, "--profile", path)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {path}: ")
    assert message in result.stderr, result.stderr
    assert not (smoke_dataset / OUT_FOLDER).exists()


def test_other_profile_errors(tmp_path, smoke_dataset):
    with pytest.raises(ProfileError, match=r"--profile 'nope': not a packaged profile .* bms-grade, ideal, lab-cycler"):
        load_profile("nope")
    result = _observe_cli(smoke_dataset, "--profile", "nope")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "lab-cycler" in result.stderr
    partial = tmp_path / "partial.yaml"
    partial.write_text("name: partial\nsource: me\n")
    with pytest.raises(ProfileError, match=r"partial.yaml: description: missing"):
        load_profile(partial)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ProfileError, match=r"broken.yaml: not valid YAML at line"):
        load_profile(broken)
    with pytest.raises(ProfileError, match=r"base: must name a packaged profile"):
        parse_profile({"base": "nope"}, "x.yaml")
    assert not (smoke_dataset / OUT_FOLDER).exists()


def test_observe_refuses_what_is_not_a_dataset(tmp_path):
    result = _observe_cli(tmp_path, "--profile", "ideal")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "not a finished pybamm-factory dataset" in result.stderr


def test_a_design_asking_for_observation_gets_it_with_the_card_section(smoke_dataset, tmp_path):
    """`observe:` in a design: the run writes the measured copy and the card shows it (figure
    included); the dataset still verifies, since observed/ stands outside its checksums."""
    import shutil

    from pybamm_factory import api
    from pybamm_factory.dataset import verify
    from pybamm_factory.design import load_design
    from pybamm_factory.design.spec import parse_design

    copy = tmp_path / "copy"
    shutil.copytree(smoke_dataset, copy)
    raw = dict(load_design("smoke").raw, observe=[{"profile": "bms-grade", "seed": 3}])
    design = parse_design(raw, src=str(tmp_path / "design.yaml"))
    api.observe_requested(copy, design)
    card = (copy / "README.md").read_text()
    assert "### `bms-grade` (seed 3" in card and "![clean vs observed, bms-grade](observed/bms-grade/clean_vs_observed.png)" in card
    assert (copy / "observed" / "bms-grade" / "clean_vs_observed.png").stat().st_size > 1000
    assert verify(copy) == []
    with pytest.raises(Exception, match=r"observe\[0\]\.profile"):
        parse_design(dict(raw, observe=[{"profile": "no-such-profile"}]), src="d.yaml")
