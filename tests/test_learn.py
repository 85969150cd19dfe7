"""train / predict on a small real factory dataset, and predictions for real measured cells."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pybamm_factory import api
from pybamm_factory.cli import main
from pybamm_factory.dataset.store import read_table
from pybamm_factory.design import parse_design
from pybamm_factory.design.spec import load_design
from pybamm_factory.learn import predict, train
from pybamm_factory.learn.features import add_relative, spectrum_observables
from pybamm_factory.learn.models import UntrustedModelError, load_estimator
from tests.physics_designs import BASE


@pytest.fixture(scope="module")
def learn_dataset(tmp_path_factory):
    """10 SPMe cells with fast SEI growth at 25 and 40 degC: 5 RPTs each with EIS at 50 % SOC."""
    raw = copy.deepcopy(BASE)
    raw.update(name="learn", conditions_per_cell_design=1, ambient_temperatures_c=[25, 40])
    raw["model_options"] = {"SEI": "solvent-diffusion limited"}
    raw["varied"] = {"SEI solvent diffusivity [m2.s-1]": {"distribution": "log-uniform", "low": 1e-20, "high": 2e-18}}
    raw["aging"].update({"max_cycles": 24, "rpt_interval_cycles": 6, "stop_soh": 0.5})
    raw["splits"] = {"train": 0.6, "val": 0.2, "test": 0.2}
    out = tmp_path_factory.mktemp("learn") / "run"
    return api.run(parse_design(raw, "learn.yaml"), samples=10, workers=2, seed=3, out=out, quiet=True)


def test_spectrum_features_read_a_known_circuit():
    """R0 + (R1 || C) + Warburg tail: intercept R0, arc width R1, apex at 1/(2 pi R1 C)."""
    f = np.logspace(4, -2, 61)
    w = 2 * np.pi * f
    r0, r1, c, sigma = 0.010, 0.020, 0.5, 0.002
    z = r0 + r1 / (1 + 1j * w * r1 * c) + sigma * (1 - 1j) / np.sqrt(w)
    feats = spectrum_observables(f, z.real, z.imag)
    assert feats["eis_r_ohm_ohm"] == pytest.approx(r0, rel=0.05)
    assert feats["eis_r_ct_ohm"] == pytest.approx(r1, rel=0.25)
    assert 10 ** feats["eis_log10_f_peak_hz"] == pytest.approx(1 / (2 * np.pi * r1 * c), rel=0.3)
    assert feats["eis_zmod_1000hz_ohm"] == pytest.approx(abs(np.interp(3, np.log10(f[::-1]), np.abs(z[::-1]))), rel=0.02)
    frame = add_relative(pd.DataFrame({"cell_id": ["a", "a"], "cycle": [0, 1],
                                       "eis_r_ohm_ohm": [0.01, 0.015], "eis_log10_f_peak_hz": [1.0, 0.5]}))
    assert frame["eis_r_ohm_ohm_ratio"].tolist() == pytest.approx([1.0, 1.5])
    assert frame["eis_log10_f_peak_hz_shift"].tolist() == pytest.approx([0.0, -0.5])


@pytest.mark.slow
def test_train_writes_every_artefact_and_beats_shuffled_labels(learn_dataset, tmp_path):
    result = train(learn_dataset, target="soh", features="both", out=tmp_path / "true", seed=0)
    for name in ("model.json", "metrics.csv", "predictions.csv", "feature_importance.csv", "features.md",
                 "figure.png", "domain.json", "domain_reference.npy", "estimators/random_forest.skops",
                 "estimators/linear.skops", "estimators/gradient_boosting.skops"):
        assert (result.model_dir / name).stat().st_size > 0, name
    metrics = result.metrics
    assert set(metrics["scheme"]) >= {"grouped", "random", "extrapolate_temperature"}
    meta = json.loads((result.model_dir / "model.json").read_text())
    assert meta["features"] and all(c in (result.model_dir / "features.md").read_text() for c in meta["features"])
    shuffled = train(learn_dataset, target="soh", features="both", out=tmp_path / "shuffled", seed=0, shuffle_labels=True)

    def grouped_test_mae(m):
        rows = m[(m.scheme == "grouped") & (m.split == "test")].set_index("estimator")["mae"]
        return rows.min()

    assert grouped_test_mae(metrics) < 0.5 * grouped_test_mae(shuffled.metrics)
    # predictions.csv holds the held-out rows of the grouped test split, true and predicted
    preds = pd.read_csv(result.model_dir / "predictions.csv")
    grouped_test = preds[(preds.scheme == "grouped") & (preds.split == "test")]
    splits = read_table(learn_dataset, "splits")
    test_cells = set(splits.loc[splits.split == "test", "sample_id"])
    assert set(grouped_test["cell_id"]) == test_cells


@pytest.mark.slow
def test_predict_flags_a_file_outside_the_training_domain(learn_dataset, tmp_path, realdata):
    """An absolute-feature model: a spectrum of one of the dataset's own cells, written as a
    file, is in domain; a coin cell's spectra (ohms 100x larger) are flagged."""
    model_dir = train(learn_dataset, target="soh", features="eis", normalise="absolute", out=tmp_path / "abs").model_dir
    spectra = read_table(learn_dataset, "spectra")
    first = spectra[(spectra.sample_id == spectra.sample_id.iloc[0]) & (spectra.cycle == 0)]
    own = tmp_path / "own_cell.csv"
    first[["frequency_hz", "z_real_ohm", "z_imag_ohm"]].to_csv(own, index=False)
    frame, _ = predict(model_dir, [own])
    assert frame["in_domain"].all(), frame["domain_note"].tolist()
    coin = realdata / "eis_example" / "impedance_example.csv"
    frame, _ = predict(model_dir, [coin])
    assert not frame["in_domain"].any()
    assert "outside" in frame["domain_note"].iloc[0]


@pytest.mark.slow
def test_predict_real_spectra_table_gives_soh_with_intervals(learn_dataset, tmp_path, realdata):
    model_dir = train(learn_dataset, target="soh", features="eis", out=tmp_path / "rel").model_dir
    out = tmp_path / "pred.csv"
    result = CliRunner().invoke(main, ["predict", str(model_dir),
                                       str(realdata / "zhang2020_eis" / "data_eis_zhang2020.csv"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert len(frame) == 1343 and frame["cell_id"].nunique() == 8
    assert ((frame["soh_predicted"] > 0) & (frame["soh_predicted"] <= 1.2)).all()
    assert (frame["soh_low"] <= frame["soh_predicted"]).all() and (frame["soh_predicted"] <= frame["soh_high"]).all()
    # the coin cells fade to SOH 0.18; the dataset's cells stay above 0.8: those late spectra are flagged
    assert not frame.loc[frame["soh_measured"] < 0.6, "in_domain"].any()
    assert "outside the training domain" in result.output


def test_a_model_file_with_foreign_types_is_refused(tmp_path):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "evil.skops"
    sio.dump(FunctionTransformer(func=math.sqrt), path)
    with pytest.raises(UntrustedModelError, match="math.sqrt"):
        load_estimator(path)


@pytest.mark.slow
def test_predict_reads_rpt_tables_and_cycler_files(learn_dataset, tmp_path, realdata):
    model_dir = train(learn_dataset, target="lli_pct", features="curves", out=tmp_path / "curves").model_dir
    # an RPT summary (Kirkaldy et al.): C/10 capacity per RPT, the lowest-rate capacity column
    kirkaldy = next((realdata / "kirkaldy_lgm50t").glob("* cell C *Extracted Data.csv"))
    frame, notes = predict(model_dir, [kirkaldy])
    assert len(frame) == 13 and "C/10 Capacity" in notes[0]
    assert frame["soh_measured"].iloc[-1] == pytest.approx(4436.5 / 4832.3, rel=1e-3)
    assert np.isfinite(frame["lli_pct_predicted"]).all()
    # a Maccor export: 24 CC discharges at 4.7 A of a ~4 A.h cell, where the dataset's RPT is 0.5C
    frame, notes = predict(model_dir, [realdata / "maccor" / "xTESLADIAG_000038.078"])
    assert len(frame) == 24 and frame["cycle"].is_monotonic_increasing
    assert any("discharges at about" in n and "--rpt-design" in n for n in notes), notes
    first_capacity = frame["capacity_measured"].iloc[0]
    # ... and the dataset's design with the file's reference test, to generate a matching dataset
    path = tmp_path / "matched.yaml"
    _, notes = predict(model_dir, [realdata / "maccor" / "xTESLADIAG_000038.078"], rpt_design_path=path)
    assert any(f"wrote {path}" in n for n in notes), notes
    matched = load_design(path)
    assert matched.aging.rpt_discharge_c_rate == pytest.approx(4.7 / first_capacity, rel=0.01)  # 4.7 A, per its first capacity
    assert matched.aging.rpt_lower_voltage_v == pytest.approx(3.0, abs=0.01)  # the file's discharge cut-off
    assert matched.aging.rpt_upper_voltage_v == 4.2  # the file charges to 4.3 V: OKane2022's cut-off is the limit
    assert "outside OKane2022's cut-offs" in matched.description
    assert matched.varied == load_design(learn_dataset / "design.yaml").varied


def test_a_prediction_beyond_the_physical_range_is_clipped_and_flagged():
    # a linear model far outside its inputs' range extrapolates without bound: SOH -9 or 11
    # is never written, the physical limit is, with the model's own number in the note
    from pathlib import Path

    from sklearn.linear_model import LinearRegression

    from pybamm_factory.labels.limits import SOH_MAX
    from pybamm_factory.learn.domain import Domain
    from pybamm_factory.learn.predict import Model, predict_frame

    x = pd.DataFrame({"f": np.linspace(0.0, 1.0, 20)})
    y = 1.0 - 0.2 * x["f"].to_numpy()
    meta = {"target": "soh", "features": ["f"], "interval": {"half_width": {"linear": 0.01}}}
    model = Model(Path("."), meta, "linear", LinearRegression().fit(x.to_numpy(), y), Domain.fit(x, target_values=y))
    out = predict_frame(model, pd.DataFrame({"f": [0.5, 50.0, -50.0]}))
    assert out["soh_predicted"].tolist() == pytest.approx([0.9, 0.0, SOH_MAX])
    assert (out[["soh_low", "soh_high"]].to_numpy() >= 0).all() and (out["soh_high"] <= SOH_MAX).all()
    assert out["in_domain"].tolist() == [True, False, False]
    assert "the model gave -9; clipped to the physical range [0, 1.05]" in out["domain_note"].iloc[1]


def test_usage_of_an_rpt_table_counts_from_the_first_test(realdata, tmp_path):
    """Kirkaldy's RPT summary: equivalent full cycles from the charge throughput and the first
    C/10 capacity, days from 'Days of degradation' (empty at the first RPT: 0), temperature the
    running mean of the ageing sets' average."""
    from pybamm_factory.learn.measured import observations

    path = next((realdata / "kirkaldy_lgm50t").glob("* cell A *Extracted Data.csv"))
    table = pd.read_csv(path)
    frame, notes = observations([path], cell_id="A")
    assert "usage from 'Charge Throughput (A.h)'" in notes[0]
    first_ah = table["C/10 Capacity (mA.h)"].iloc[0] / 1000
    assert frame["usage_efc"].tolist() == pytest.approx((table["Charge Throughput (A.h)"] / (2 * first_ah)).tolist())
    assert frame["usage_elapsed_days"].iloc[0] == 0 and frame["usage_elapsed_days"].iloc[-1] == 258
    temps = table["Age set average temperature (degC)"]
    assert frame["usage_temperature_c"].iloc[-1] == pytest.approx(temps.mean())
    assert frame["usage_temperature_c"].iloc[0] == pytest.approx(temps.iloc[1])
    # another lab's layout: mA.h throughput that is not cumulative from 0, dates instead of days, kelvin
    other = pd.DataFrame({"cycle": [100, 200, 300], "Capacity (mA.h)": [3000.0, 2900.0, 2850.0],
                          "Throughput (mA.h)": [1000.0, 61000.0, 121000.0],
                          "Test date": ["2024-01-01", "2024-01-11", "2024-01-31"], "Temperature (K)": [298.15, 308.15, 318.15]})
    other.to_csv(tmp_path / "other.csv", index=False)
    frame, _ = observations([tmp_path / "other.csv"])
    assert frame["usage_efc"].tolist() == pytest.approx([0.0, 10.0, 20.0])  # 60 A.h moved / (2 x 3 A.h)
    assert frame["usage_elapsed_days"].tolist() == pytest.approx([0.0, 10.0, 30.0])
    assert frame["usage_temperature_c"].tolist() == pytest.approx([25.0, 30.0, 35.0])
    # a per-set throughput is not a running total (not used, said so); the date with a gap at the
    # first test gives way to the complete one; a kelvin column without a unit in its name
    odd = pd.DataFrame({"cycle": [0, 100, 200], "Capacity (A.h)": [3.0, 2.9, 2.85],
                        "Set throughput (A.h)": [0.0, 600.0, 590.0],
                        "Set start date": [None, "2024-01-02", "2024-01-12"],
                        "RPT date": ["2024-01-01", "2024-01-11", "2024-01-31"],
                        "Max temperature": [330.0, 331.0, 332.0], "Cell temp": [298.15, 298.15, 308.15]})
    odd.to_csv(tmp_path / "odd.csv", index=False)
    frame, notes = observations([tmp_path / "odd.csv"])
    assert frame["usage_efc"].isna().all() and "is not a running total" in notes[0]
    assert frame["usage_elapsed_days"].tolist() == pytest.approx([0.0, 10.0, 30.0])
    assert frame["usage_temperature_c"].tolist() == pytest.approx([25.0, 25.0, 25.0 + 10.0 / 3])
    # one cell's measurements split over two files, each counting from its own start: no usage
    frame, notes = observations([path, path], cell_id="A")
    assert frame["usage_efc"].isna().all() and any("each count from their own start" in n for n in notes)
    # usage is its own relative feature: it appears once in every normalise mode
    from pybamm_factory.learn.features import feature_columns

    for mode in ("relative", "absolute", "both"):
        assert feature_columns(("usage",), mode) == ["usage_efc", "usage_elapsed_days", "usage_temperature_c"]


def test_usage_of_a_cycler_file_is_the_charge_moved_before_each_discharge(realdata):
    from pybamm_factory.learn.measured import observations
    from pybamm_factory.readers import discharge_segments, read_cycler

    path = realdata / "maccor" / "xTESLADIAG_000038.078"
    frame, _ = observations([path])
    efc = frame["usage_efc"].to_numpy()
    assert efc[0] == 0 and np.all(np.diff(efc) > 0)
    # between two reference discharges the cell gives at least the first one's charge back
    # and takes at least as much in: the throughput grows by at least twice that capacity
    moved = efc * 2 * frame["capacity_measured"].iloc[0]
    assert np.all(np.diff(moved) >= 2 * frame["capacity_measured"].to_numpy()[:-1] * 0.99)
    data = read_cycler(path)
    starts = [seg.attrs["start_row"] for seg in discharge_segments(data, min_duration_s=600.0)]
    assert frame["usage_elapsed_days"].iloc[-1] == pytest.approx(
        (data["time_s"].iloc[starts[-1]] - data["time_s"].iloc[starts[0]]) / 86400.0)
    assert frame["usage_temperature_c"].isna().all()  # this export records no temperature: none is made up
    # a file that records one: its time average up to the discharge's start (the integral of
    # T dt over the time, not the mean of the records: a cycler logs densest in its tests)
    path = realdata / "lgm50t_rpt" / "expt2_2_cellC_25degC_BoL_RPT0_short.parquet"
    frame, _ = observations([path])
    data = read_cycler(path)
    start = discharge_segments(data, min_duration_s=600.0)[0].attrs["start_row"]
    t, temp = data["time_s"].to_numpy()[: start + 1], data["temperature_c"].to_numpy()[: start + 1]
    time_average = np.trapezoid(temp, t) / (t[-1] - t[0])
    assert frame["usage_temperature_c"].iloc[0] == pytest.approx(time_average, abs=0.02)
    assert abs(time_average - temp.mean()) > 0.5  # the record mean would be another number here


@pytest.mark.slow
def test_factory_usage_features_count_from_the_first_rpt_and_predict_reads_them(learn_dataset, tmp_path, realdata):
    from pybamm_factory.learn.features import dataset_features
    from pybamm_factory.learn.train import load_dataset

    frame = dataset_features(load_dataset(learn_dataset))
    for _, g in frame.groupby("cell_id"):
        g = g.sort_values("cycle")
        assert g["usage_efc"].iloc[0] == 0 and (np.diff(g["usage_efc"]) > 0).all()
        moved = g["throughput_ah"] - g["throughput_ah"].iloc[0]
        assert g["usage_efc"].to_numpy() == pytest.approx((moved / (2 * g["capacity_ah"].iloc[0])).to_numpy())
        assert g["usage_elapsed_days"].iloc[0] == 0 and (np.diff(g["usage_elapsed_days"]) > 0).all()
    assert set(frame["usage_temperature_c"].round(2)) == {25.0, 40.0}
    # the LLI convention of the Kirkaldy files' analysis (lithium lost over the fresh capacity)
    model_dir = train(learn_dataset, target="lli_capacity_pct", features="capacity,usage", out=tmp_path / "usage").model_dir
    meta = json.loads((model_dir / "model.json").read_text())
    assert {"usage_efc", "usage_elapsed_days", "usage_temperature_c"} <= set(meta["features"])
    assert "equivalent full cycles" in (model_dir / "features.md").read_text()
    # the plumbing of --lli-frame (the correction itself is checked in test_physics with positive
    # LAM): these cells lose no positive material, so nothing leaves below the frame's zero and the
    # target is the same; the frame is recorded
    framed = train(learn_dataset, target="lli_capacity_pct", features="capacity,usage", out=tmp_path / "framed",
                   lli_frame=(0.03, 0.89)).model_dir
    framed_meta = json.loads((framed / "model.json").read_text())
    assert framed_meta["lli_frame"] == [0.03, 0.89] and "positive frame" in framed_meta["target_definition"]
    assert framed_meta["target_train_mean"] == pytest.approx(meta["target_train_mean"], rel=1e-9)
    for kwargs, words in (({"target": "soh", "lli_frame": (0.03, 0.89)}, "applies to --target lli_capacity_pct"),
                          ({"target": "lli_capacity_pct", "lli_frame": (0.9, 0.1)}, "0 <= top < bottom <= 1")):
        with pytest.raises(ValueError, match=words):
            train(learn_dataset, features="capacity", out=tmp_path / "bad", **kwargs)
    kirkaldy = next((realdata / "kirkaldy_lgm50t").glob("* cell C *Extracted Data.csv"))
    frame, _ = predict(model_dir, [kirkaldy])
    assert len(frame) == 13 and np.isfinite(frame["lli_capacity_pct_predicted"]).all()
    # a cycler export without a temperature column lacks a feature the model always had: flagged
    frame, _ = predict(model_dir, [realdata / "maccor" / "xTESLADIAG_000038.078"])
    assert not frame["in_domain"].any() and frame["domain_note"].str.contains("usage_temperature_c").all()
