"""Calibration on the real LG M50 curves (reduced: SPMe, one curve, two parameters)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pybamm
import pytest
import yaml

from pybamm_factory import api
from pybamm_factory.calibrate import CalibrationError, Curve, VoltageProblem, calibrate, fit_parameters
from pybamm_factory.calibrate.design_writer import simulate_design_cells
from pybamm_factory.dataset.store import read_table
from pybamm_factory.design import load_design
from pybamm_factory.readers import ReaderError
from tests.conftest import REPO

FIT = ["Positive electrode active material volume fraction", "Initial concentration in negative electrode [mol.m-3]",
       "Positive particle diffusivity [m2.s-1] (factor)"]  # a function of state in OKane2022, fitted as a multiplier
WMG = "lgm50_wmg"


@pytest.fixture(scope="module")
def reduced(realdata, tmp_path_factory):
    out = tmp_path_factory.mktemp("cal") / "calibrated.yaml"
    # parameter set and model: the smoke design's (OKane2022, SPMe); temperature: each file's first reading
    report = calibrate([realdata / WMG / "LGM50_25C_0.5C.csv"], FIT, out, held_out=[realdata / WMG / "LGM50_25C_1C.csv"],
                       base_design="smoke", max_evaluations=40)
    return report, out


def test_reduced_calibration_lowers_rmse_threefold(reduced):
    report, _ = reduced
    before = report["rmse_before_mv"]["LGM50_25C_0.5C"]
    after = report["rmse_after_mv"]["LGM50_25C_0.5C"]
    assert before > 50  # uncalibrated Chen2020 is far off this cell's curve
    assert after * 3 <= before, (before, after)
    held = report["rmse_after_mv"]["LGM50_25C_1C (held out)"]
    assert held < report["rmse_before_mv"]["LGM50_25C_1C (held out)"]
    for p in report["parameters"].values():
        assert p["std"] >= 0 and p["fitted"] > 0
        assert p["bounds"][0] <= p["fitted"] <= p["bounds"][1] and p["at_bound"] in (None, "lower", "upper")
    assert report["parameter_set"] == "OKane2022" and report["model"] == "spme" and "notes" not in report
    assert report["thermal"] == "ambient"
    assert report["temperature_source"] == {"LGM50_25C_0.5C": "first reading, 24.5 degC",
                                            "LGM50_25C_1C": "first reading, 24.6 degC"}


def test_calibrated_design_is_centred_on_the_fit_and_runs(reduced, tmp_path):
    report, path = reduced
    raw = yaml.safe_load(path.read_text())
    for name in FIT:
        spec = raw["varied"][name]
        assert spec["distribution"] == "normal"
        assert spec["mean"] == pytest.approx(report["parameters"][name]["fitted"])
        assert spec["low"] < spec["mean"] < spec["high"]
    out = api.run(path, samples=2, workers=1, seed=1, out=tmp_path / "run", quiet=True)
    log = read_table(out, "solver_log")
    assert (log["status"] == "ok").all()
    manifest = read_table(out, "manifest")
    spec = raw["varied"][FIT[0]]
    assert manifest[FIT[0]].between(spec["low"], spec["high"]).all()
    # the fit's correlations travel with the design
    cov = np.array(report["covariance"])
    block = raw["correlations"]
    assert block["names"] == FIT
    assert np.array(block["matrix"]) == pytest.approx(cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov))), abs=1e-5)
    assert f"`{FIT[0]}` with `{FIT[1]}` {block['matrix'][0][1]:+.3f}" in (out / "README.md").read_text()


def test_bad_inputs_fail_clearly(realdata, tmp_path):
    with pytest.raises(ReaderError, match="unrecognised export"):
        Curve.from_file(realdata / "eis_example" / "impedance_example.csv")
    with pytest.raises(CalibrationError, match="'Flux capacitor' is not a parameter of Chen2020"):
        VoltageProblem("Chen2020", ["Flux capacitor"])
    curve = Curve.from_file(realdata / WMG / "LGM50_25C_1C.csv")
    with pytest.raises(CalibrationError, match="'Contact resistance \\[Ohm\\]' does not change the simulated voltage"):
        fit_parameters(VoltageProblem("Chen2020", ["Contact resistance [Ohm]"]), [curve])
    with pytest.raises(CalibrationError, match="'warm' is not allowed; allowed: ambient, mean, measured, lumped"):
        VoltageProblem("Chen2020", ["Contact resistance [Ohm]"], thermal="warm")
    rest_only = tmp_path / "rest.csv"
    rest_only.write_text("time_s,current_a,voltage_v\n" + "".join(f"{k},0.0,{3.9 - 1e-4 * k}\n" for k in range(50)))
    with pytest.raises((CalibrationError, ReaderError)):
        Curve.from_file(rest_only)


def test_fit_recovers_a_known_parameter_from_simulated_data():
    """Identifiability check: simulate with a known value, fit from a wrong start."""
    import numpy as np

    problem = VoltageProblem("Chen2020", ["Positive electrode active material volume fraction"])
    q = np.linspace(0, 4.5, 80)
    truth = Curve("truth", q, np.zeros_like(q), 2.5, 7200.0, 298.15)
    truth.voltage_v = problem.simulate(truth, [0.60])
    keep = truth.voltage_v > 2.6
    truth = Curve("truth", q[keep], truth.voltage_v[keep], 2.5, 7200.0, 298.15)
    result = fit_parameters(problem, [truth], max_evaluations=30)
    assert result.values[0] == pytest.approx(0.60, rel=0.01)


@pytest.mark.slow
def test_aging_fit_to_measured_fade_lowers_error(realdata, tmp_path):
    from pybamm_factory.calibrate import calibrate_aging, measured_fade

    path = realdata / "maccor" / "xTESLADIAG_000038.078"
    fade = measured_fade(path)
    assert fade["first_capacity_ah"] == pytest.approx(3.99, abs=0.01)
    assert fade["discharge_c_rate"] == pytest.approx(4.70 / 3.99, rel=0.02)
    name = "SEI solvent diffusivity [m2.s-1]"
    report = calibrate_aging(path, name, tmp_path / "aged.yaml", base_design="smoke", rpt_interval=10, max_evaluations=8,
                             decades=2.0, starting_value=2.5e-21)
    assert report["rmse_ah_after"] < 0.5 * report["rmse_ah_before"]
    assert report["rmse_ah_after"] < 0.05  # A.h, on a 3.99 A.h cell
    assert report["fitted"] > 2.5e-21
    spec = yaml.safe_load((tmp_path / "aged.yaml").read_text())["varied"][name]
    low, high = report["search_range"]
    assert low <= spec["low"] < report["fitted"] < spec["high"] <= high  # a positive rate, inside the searched decades


def test_factor_scales_a_function_parameter(realdata):
    """'<name> (factor)' keeps the parameter set's function and multiplies it: 1 changes nothing."""
    curve = Curve.from_file(realdata / WMG / "LGM50_25C_2C.csv")
    eps = "Positive electrode active material volume fraction"
    plain = VoltageProblem("OKane2022", [eps])
    scaled = VoltageProblem("OKane2022", [eps, "Positive particle diffusivity [m2.s-1] (factor)"])
    assert scaled.initial[1] == 1.0
    x = plain.initial[0]
    v_plain = plain.simulate(curve, [x])
    np.testing.assert_allclose(scaled.simulate(curve, [x, 1.0]), v_plain, atol=1e-6)
    v_slow = scaled.simulate(curve, [x, 0.1])
    # slower solid diffusion: lower voltage under load and an earlier cut-off
    assert v_slow.mean() < v_plain.mean() - 0.01
    with pytest.raises(CalibrationError, match=r"fit 'Positive particle diffusivity \[m2.s-1\] \(factor\)'"):
        VoltageProblem("OKane2022", ["Positive particle diffusivity [m2.s-1]"])


def test_measured_temperature_trace_drives_the_model(realdata):
    """At 2C the cell logs ~30 K of self-heating; following it lowers the overpotential."""
    curve = Curve.from_file(realdata / WMG / "LGM50_25C_2C.csv")
    assert curve.trace_temperature_k.max() - curve.trace_temperature_k[0] > 10
    names = ["Positive electrode active material volume fraction"]
    measured = VoltageProblem("OKane2022", names, thermal="measured")
    held_at_start = VoltageProblem("OKane2022", names, thermal="ambient")
    assert measured.temperature_source(curve) == "logged trace"
    x = measured.initial
    v_traced, v_start = measured.simulate(curve, x), held_at_start.simulate(curve, x)
    assert v_traced.mean() > v_start.mean() + 0.01  # Arrhenius kinetics and transport in the warmer cell


def test_curve_without_temperature_needs_a_stated_one(tmp_path):
    path = tmp_path / "cc.csv"
    rows = [f"{k * 10},2.5,{4.1 - 0.8 * k / 600:.5f}" for k in range(600)]
    path.write_text("time_s,current_a,voltage_v\n" + "\n".join(rows) + "\n")
    with pytest.raises(CalibrationError, match="cc.csv: the file records no temperature.*--temperature-c cc.csv=DEGC"):
        Curve.from_file(path)  # never a silent 25 degC
    curve = Curve.from_file(path, temperature_c=10.0)
    problem = VoltageProblem("OKane2022", ["Positive electrode active material volume fraction"], thermal="measured")
    assert curve.trace_time_s is None and curve.mean_temperature_k == pytest.approx(283.15)
    assert problem.temperature_source(curve) == "stated 10 degC (no temperature trace in the file)"
    assert curve.current_a == pytest.approx(2.5)
    twice = tmp_path / "two.csv"  # the same discharge twice in one file, 10 minutes apart
    rest = [f"{6000 + k * 10},0,4.1" for k in range(1, 60)]
    again = [f"{6600 + k * 10},2.5,{4.1 - 0.8 * k / 600:.5f}" for k in range(600)]
    twice.write_text("time_s,current_a,voltage_v\n" + "\n".join(rows + rest + again) + "\n")
    curves = Curve.all_from_file(twice, discharge="all", temperature_c=10.0)
    assert [c.name for c in curves] == ["two:1", "two:2"]
    assert [c.name for c in Curve.all_from_file(twice, discharge="2", temperature_c=10.0)] == ["two"]


def test_pybop_optimiser_reaches_the_least_squares_fit(realdata):
    """PyBOP (SciPyMinimize over per-curve PyBOP problems) lands where scipy least squares does."""
    names = ["Positive electrode active material volume fraction", "Initial concentration in negative electrode [mol.m-3]"]
    curve = Curve.from_file(realdata / WMG / "LGM50_25C_0.5C.csv")
    fits = {opt: fit_parameters(VoltageProblem("OKane2022", names), [curve], max_evaluations=40, optimiser=opt)
            for opt in ("least-squares", "pybop-minimize")}
    ls, pb = fits["least-squares"], fits["pybop-minimize"]
    before, after = pb.rmse_before_mv[curve.name], pb.rmse_after_mv[curve.name]
    assert after * 3 <= before, (before, after)
    assert after <= ls.rmse_after_mv[curve.name] + 2.0
    assert pb.as_dict()["optimiser"] == "pybop-minimize" and np.all(pb.std > 0)
    with pytest.raises(CalibrationError, match="'adam' is not allowed; allowed: least-squares, pybop-minimize, pybop-xnes"):
        fit_parameters(VoltageProblem("OKane2022", names), [curve], optimiser="adam")


def test_leave_one_curve_out_scores_each_rate_and_widens_the_design(realdata, tmp_path):
    """Three real 25 degC rates: each refit without one curve predicts it worse than the full fit
    fits it, and the design samples with the larger of the covariance and jackknife spreads."""
    names = ["Positive electrode active material volume fraction", "Initial concentration in negative electrode [mol.m-3]"]
    files = [realdata / WMG / f"LGM50_25C_{rate}.csv" for rate in ("0.1C", "0.5C", "1C")]
    out = tmp_path / "loo.yaml"
    report = calibrate(files, names, out, base_design="smoke", max_evaluations=40)
    loo = report["leave_one_curve_out"]
    assert loo["highest_current_curve"] == "LGM50_25C_1C"
    assert set(loo["rmse_mv_left_out"]) == {"LGM50_25C_0.1C", "LGM50_25C_0.5C", "LGM50_25C_1C"}
    for curve, left_out in loo["rmse_mv_left_out"].items():
        assert left_out >= report["rmse_after_mv"][curve] - 0.5, curve
    raw = yaml.safe_load(out.read_text())
    for name in names:
        p = report["parameters"][name]
        assert p["design_std"] == pytest.approx(max(p["std"], loo["jackknife_std"][name]))
        assert raw["varied"][name]["std"] == pytest.approx(max(p["design_std"], 0.002 * p["fitted"]))
        assert p["bounds"][0] <= raw["varied"][name]["low"] < p["fitted"] < raw["varied"][name]["high"] <= p["bounds"][1]
    c_max = pybamm.ParameterValues("OKane2022")["Maximum concentration in negative electrode [mol.m-3]"]
    assert raw["varied"][names[1]]["high"] <= report["parameters"][names[1]]["bounds"][1] <= c_max  # never fuller than full
    # the rates disagree by more than the residual noise suggests (model error, not noise)
    assert any(loo["jackknife_std"][n] > report["parameters"][n]["std"] for n in names)


def test_fit_correlations_keep_sampled_cells_near_the_measured_curves(realdata, tmp_path):
    """The negative electrode's initial concentration and active-material fraction trade off
    (their product sets its lithium). Sampled with the fit's correlation, cells stay closer
    to the measured curves than the same marginals sampled independently."""
    names = ["Initial concentration in negative electrode [mol.m-3]", "Negative electrode active material volume fraction",
             "Positive electrode active material volume fraction"]
    files = [realdata / WMG / f"LGM50_25C_{rate}.csv" for rate in ("0.1C", "0.5C", "1C")]
    out = tmp_path / "correlated.yaml"
    report = calibrate(files, names, out, base_design="smoke", max_evaluations=40, leave_one_out=False)
    correlated = yaml.safe_load(out.read_text())
    block = load_design(out).correlations
    assert list(block.names) == names
    assert block.matrix[0][1] < -0.8  # more lithium per site, fewer sites
    independent = {k: v for k, v in correlated.items() if k != "correlations"}
    problem = VoltageProblem("OKane2022", names)
    curves = [Curve.from_file(f) for f in files]
    with_corr = simulate_design_cells(problem, curves, correlated, cells=12, seed=5).summary(curves)
    without = simulate_design_cells(problem, curves, independent, cells=12, seed=5).summary(curves)
    assert with_corr["cells"] == without["cells"] == 12 and with_corr["failed"] == 0
    a, b = np.mean(list(with_corr["rmse_mv_median"].values())), np.mean(list(without["rmse_mv_median"].values()))
    assert a < b - 3.0, (a, b)
    # the report scores the written design's own cells the same way
    check = report["sampled_cells"]
    assert check["cells"] == 20 and set(check["rmse_mv_median"]) == {c.name for c in curves}
    for name, median in check["rmse_mv_median"].items():
        assert report["rmse_after_mv"][name] - 1.0 <= median <= check["rmse_mv_p90"][name] + 1e-9
    assert Path(check["figure"]).stat().st_size > 10_000


def test_leave_one_curve_out_is_exact_on_the_models_own_curves():
    """Curves simulated by the model itself at three rates: every left-out curve is predicted
    to within a millivolt and the refits agree (no model error to spread)."""
    from pybamm_factory.calibrate import leave_one_curve_out

    problem = VoltageProblem("Chen2020", ["Positive electrode active material volume fraction"])
    curves = []
    for current_a in (1.0, 2.5, 5.0):
        q = np.linspace(0, 4.0, 60)
        probe = Curve(f"{current_a} A", q, np.zeros_like(q), current_a, 5.0 * 3600 / current_a, 298.15)
        voltage = problem.simulate(probe, [0.60])
        keep = voltage > 2.7
        curves.append(Curve(probe.name, q[keep], voltage[keep], current_a, probe.duration_s, 298.15))
    problem.initial = np.array([0.66])
    full = fit_parameters(problem, curves, max_evaluations=30)
    loo = leave_one_curve_out(problem, curves, full, max_evaluations=30)
    assert loo["highest_current_curve"] == "5.0 A"
    assert max(loo["rmse_mv_left_out"].values()) < 1.0
    assert loo["jackknife_std"]["Positive electrode active material volume fraction"] < 1e-3


def test_fit_correlations_join_the_base_designs_block_and_skip_sobol(tmp_path):
    """The base design's correlations between parameters not refitted stay; the fitted ones
    get the fit's correlation, with nothing assumed between the two groups. A Sobol base
    design gets none (its indices assume independent inputs)."""
    from pybamm_factory.calibrate import FitResult
    from pybamm_factory.calibrate.design_writer import calibrated_design
    from tests.conftest import REPO

    base = yaml.safe_load((REPO / "designs" / "smoke.yaml").read_text())
    kept = list(base["varied"])
    base["correlations"] = {"names": kept, "matrix": [[1.0, 0.3], [0.3, 1.0]], "source": "lab"}
    fitted = ["Positive electrode active material volume fraction", "Negative electrode active material volume fraction"]
    fit = FitResult(fitted, np.array([0.65, 0.75]), np.array([0.66, 0.74]), np.array([0.01, 0.01]),
                    np.array([[1e-4, -5e-5], [-5e-5, 1e-4]]), bounds=[(0.5, 0.8), (0.6, 0.9)])
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(base))
    block = calibrated_design(load_design(path), fit, "OKane2022", ["x"])["correlations"]
    assert block["names"] == kept + fitted
    assert np.array(block["matrix"]) == pytest.approx(np.array([[1, 0.3, 0, 0], [0.3, 1, 0, 0], [0, 0, 1, -0.5], [0, 0, -0.5, 1]]))
    del base["correlations"]
    base["sampler"] = "sobol"
    path.write_text(yaml.safe_dump(base))
    assert "correlations" not in calibrated_design(load_design(path), fit, "OKane2022", ["x"])


def test_a_curve_outside_the_sets_voltage_window_gets_a_note(realdata):
    """The Arbin file is an LFP cell discharged to 2.0 V; OKane2022 is an NMC811 cell with a
    2.5-4.2 V window. The LG M50 curve stays inside it."""
    problem = VoltageProblem("OKane2022", ["Negative electrode active material volume fraction"])
    note = problem.window_mismatch(Curve.from_file(realdata / "arbin" / "arbin_example.csv"))
    assert note.startswith("arbin_example spans 3.50-2.00 V, outside OKane2022's window 4.2-2.5 V")
    assert problem.window_mismatch(Curve.from_file(realdata / WMG / "LGM50_25C_0.5C.csv")) is None


def test_search_never_leaves_the_physical_range():
    """A fraction is searched up to 1 at most, an initial concentration up to its maximum."""
    from pybamm_factory.calibrate.problem import _bounds

    names = ["Negative electrode active material volume fraction", "Initial concentration in negative electrode [mol.m-3]"]
    problem = VoltageProblem("OKane2022", names)
    low, high = _bounds(problem)
    assert problem.initial[0] * 1.5 > 1 and high[0] == 1.0
    assert high[1] == pybamm.ParameterValues("OKane2022")["Maximum concentration in negative electrode [mol.m-3]"]
    assert np.all(low > 0)


def _smaller_cell_csv(path, size: float, current_a: float):
    """A CC discharge of OKane2022's electrodes in a cell ``size`` times the set's (electrode
    width and nominal capacity scaled), simulated with the SPMe and written as a cycler table
    (a minute's rest, then the discharge; negative current = discharge)."""
    pv = pybamm.ParameterValues("OKane2022")
    pv.update({"Electrode width [m]": size * pv["Electrode width [m]"],
               "Nominal cell capacity [A.h]": size * pv["Nominal cell capacity [A.h]"], "Current function [A]": current_a})
    t_end = 1.5 * 3600 * size * 5.0 / current_a
    sol = pybamm.Simulation(pybamm.lithium_ion.SPMe(), parameter_values=pv).solve([0, t_end], t_interp=np.linspace(0, t_end, 400))
    t, v = sol["Time [s]"].entries, sol["Voltage [V]"].entries
    rest = pd.DataFrame({"Test Time (s)": [0.0, 30.0], "Current (A)": 0.0, "Voltage (V)": v[0] + 0.05})
    load = pd.DataFrame({"Test Time (s)": 60.0 + t, "Current (A)": -current_a, "Voltage (V)": v})
    pd.concat([rest, load]).to_csv(path, index=False)
    return path


def test_a_cell_of_another_size_is_scaled_not_fitted_into_the_fractions(tmp_path):
    """A cell of the set's electrodes at 0.4x the size: with capacity scaling (auto) the fit
    stays at the set's fractions and matches the curve, and the design fixes the scaled
    size; without it the fractions are pushed to their bounds and the curve is missed."""
    path = _smaller_cell_csv(tmp_path / "small_cell.csv", 0.4, 0.4)
    fit = ["Negative electrode active material volume fraction", "Positive electrode active material volume fraction"]
    pv = pybamm.ParameterValues("OKane2022")
    scaled = calibrate([path], fit, tmp_path / "scaled.yaml", base_design="smoke", leave_one_out=False, check_cells=0,
                       max_evaluations=30, temperature_c=25.0)  # the simulated file records no temperature
    scaling = scaled["capacity_scaling"]
    assert scaling["applied"] and scaling["ratio"] == pytest.approx(0.4, rel=0.02)
    assert scaled["rmse_after_mv"]["small_cell"] < 5
    for name in fit:
        assert scaled["parameters"][name]["fitted"] == pytest.approx(pv[name], rel=0.03)
    design = yaml.safe_load((tmp_path / "scaled.yaml").read_text())
    assert design["fixed"]["Electrode width [m]"] == pytest.approx(0.4 * pv["Electrode width [m]"], rel=0.02)
    assert design["fixed"]["Nominal cell capacity [A.h]"] == pytest.approx(0.4 * pv["Nominal cell capacity [A.h]"], rel=0.02)
    assert load_design(tmp_path / "scaled.yaml").fixed["Electrode width [m]"] == design["fixed"]["Electrode width [m]"]
    unscaled = calibrate([path], fit, tmp_path / "unscaled.yaml", base_design="smoke", leave_one_out=False, check_cells=0,
                         max_evaluations=30, capacity_scaling_mode="off", temperature_c={"small_cell": 25.0})
    assert unscaled["capacity_scaling"] is None
    assert unscaled["rmse_after_mv"]["small_cell"] > 4 * scaled["rmse_after_mv"]["small_cell"]
    assert any(p["at_bound"] for p in unscaled["parameters"].values())
    # the fractions pushed to their bounds are flagged, in the report and in the written design
    assert set(unscaled["unidentified"]) == {n for n, p in unscaled["parameters"].items() if p["at_bound"]}
    written = yaml.safe_load((tmp_path / "unscaled.yaml").read_text())["varied"]
    for name in unscaled["unidentified"]:
        assert written[name]["source"].startswith("UNIDENTIFIED by these data (stopped at its")
    assert not scaled["unidentified"]


def test_capacity_is_compared_over_the_measured_voltage_window(realdata):
    """The Neware file discharges from 4.34 to 3.9 V: its 0.33 A.h is compared with the
    model's capacity down to 3.9 V, not to the set's 2.5 V cut-off."""
    from pybamm_factory.calibrate.problem import capacity_scaling

    curve = Curve.from_file(realdata / "neware" / "nw_regular_export_ife_example.csv")
    problem = VoltageProblem("OKane2022", ["Negative electrode active material volume fraction"])
    full = problem.capacity_ah(Curve("full", curve.discharged_ah, np.full_like(curve.voltage_v, 2.5), curve.current_a,
                                     curve.duration_s, curve.mean_temperature_k))
    windowed = capacity_scaling(problem, [curve])
    assert curve.voltage_v[-1] > 3.85
    assert windowed["model_ah"] < 0.5 * full
    assert capacity_scaling(problem, [curve], "off") is None
    with pytest.raises(CalibrationError, match="capacity scaling: 'x' is not allowed; allowed: auto, on, off"):
        capacity_scaling(problem, [curve], "x")


def test_the_written_design_runs_the_parameter_set_the_fit_used(realdata, tmp_path):
    """--parameter-set Chen2020 on an OKane2022 base writes a Chen2020 design; a base whose
    degradation parameters the other set lacks is refused in one line."""
    raw = yaml.safe_load((REPO / "designs" / "smoke.yaml").read_text())
    raw["model_options"] = {}
    raw["varied"] = {"Negative electrode porosity": {"distribution": "uniform", "low": 0.24, "high": 0.26}}
    base = tmp_path / "plain.yaml"
    base.write_text(yaml.safe_dump(raw))
    curve = realdata / WMG / "LGM50_25C_0.5C.csv"
    fit = ["Positive electrode active material volume fraction"]
    report = calibrate([curve], fit, tmp_path / "chen.yaml", parameter_set="Chen2020", base_design=base,
                       max_evaluations=6, leave_one_out=False, check_cells=0)
    assert load_design(tmp_path / "chen.yaml").parameter_set == "Chen2020"
    assert any("runs Chen2020 too" in n for n in report["notes"])
    with pytest.raises(CalibrationError, match="does not run with it") as err:
        calibrate([curve], fit, tmp_path / "x.yaml", parameter_set="Chen2020", base_design="smoke",
                  max_evaluations=6, leave_one_out=False, check_cells=0)
    assert "\n" not in str(err.value)


def test_the_fit_simulates_the_cell_its_base_design_runs(realdata, tmp_path):
    """A base design's contact resistance (its option and fixed value) and its varied medians
    are in the cell the fit simulates: the voltage falls by I R_contact exactly, the fitted
    name's own base value is replaced by the fitted one, and degradation options stay out."""
    from pybamm_factory.design.spec import parse_design

    raw = yaml.safe_load((REPO / "designs" / "smoke.yaml").read_text())
    raw["model_options"]["contact resistance"] = "true"
    raw["fixed"] = {"Contact resistance [Ohm]": 0.01, "Positive electrode active material volume fraction": 0.5}
    raw["varied"]["Negative electrode porosity"] = {"distribution": "uniform", "low": 0.30, "high": 0.32}  # OKane2022: 0.25
    base = parse_design(raw, "base with contact resistance")
    curve = Curve.from_file(realdata / WMG / "LGM50_25C_0.5C.csv")
    eps = ["Positive electrode active material volume fraction"]
    plain = VoltageProblem("OKane2022", eps)
    based = VoltageProblem("OKane2022", eps, base=base)
    assert based.base_options == {"contact resistance": "true"}  # SEI, plating, mechanics, LAM left out
    assert eps[0] not in based.base_values and based.base_values["Negative electrode porosity"] == pytest.approx(0.31)
    no_porosity = VoltageProblem("OKane2022", eps, base=parse_design({**raw, "varied": dict(list(raw["varied"].items())[:2])}, "b"))
    v_contact, v_plain = no_porosity.simulate(curve, [0.66]), plain.simulate(curve, [0.66])
    early = curve.discharged_ah < 0.8 * curve.discharged_ah[-1]
    assert np.allclose(v_plain[early] - v_contact[early], curve.current_a * 0.01, atol=2e-4)
    # the porosity's centre moves the voltage; the fitted fraction, not the base's 0.5, is simulated
    assert not np.allclose(based.simulate(curve, [0.66])[early], v_contact[early], atol=2e-4)
    assert based.capacity_ah(curve, [0.66]) > 1.05 * based.capacity_ah(curve, [0.5])  # the input, not the base value, acts


def test_score_curves_scores_the_written_design_as_the_fit_scored_it(reduced, realdata, tmp_path):
    """The calibrated design's central cell, scored without fitting, is the fitted cell: its
    RMSE on the fitted curve is the fit's (same model, temperature and start as the fit). The
    smoke base changes nothing a discharge sees, so here the set's own cell is the fit's start."""
    from click.testing import CliRunner

    from pybamm_factory.calibrate import score_curves
    from pybamm_factory.cli import main

    report, path = reduced
    curve = realdata / WMG / "LGM50_25C_0.5C.csv"
    scores = score_curves(path, [curve])
    row = scores["curves"]["LGM50_25C_0.5C"]
    assert row["design_rmse_mv"] == pytest.approx(report["rmse_after_mv"]["LGM50_25C_0.5C"], rel=1e-9)
    assert row["parameter_set_rmse_mv"] == pytest.approx(report["rmse_before_mv"]["LGM50_25C_0.5C"], rel=1e-9)
    assert row["measured_capacity_ah"] == pytest.approx(4.842, abs=1e-3)
    assert abs(row["design_capacity_ah"] - row["measured_capacity_ah"]) < 0.1
    out = tmp_path / "scores.json"
    figure = tmp_path / "scores.png"
    result = CliRunner().invoke(main, ["score-curves", str(curve), "--design", str(path), "--out", str(out),
                                       "--figure", str(figure)])
    assert result.exit_code == 0, result.output
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"{row['design_rmse_mv']:11.1f}" in result.output and "LGM50_25C_0.5C" in result.output
    assert json.loads(out.read_text())["curves"]["LGM50_25C_0.5C"]["design_rmse_mv"] == pytest.approx(row["design_rmse_mv"])
    bad = CliRunner().invoke(main, ["score-curves", str(curve), "--design", "no-such-design"])
    assert bad.exit_code != 0 and len(bad.output.strip().splitlines()) == 1, bad.output


def test_calibrate_fits_in_its_base_cell_and_refuses_a_set_the_base_cannot_run_before_fitting(realdata, tmp_path, monkeypatch):
    """calibrate() passes its base design to the problem: the report names the base cell, and
    the fit's start is the base's cell (contact resistance on), not the bare set's. A
    --parameter-set the base does not run with is refused before any fit starts."""
    import pybamm_factory.calibrate.fit as fit_module

    raw = yaml.safe_load((REPO / "designs" / "smoke.yaml").read_text())
    raw["model_options"]["contact resistance"] = "true"
    raw["fixed"] = {"Contact resistance [Ohm]": 0.01}
    base = tmp_path / "contact.yaml"
    base.write_text(yaml.safe_dump(raw))
    curve_path = realdata / WMG / "LGM50_25C_0.5C.csv"
    fit = ["Positive electrode active material volume fraction"]
    report = calibrate([curve_path], fit, tmp_path / "c.yaml", base_design=base, max_evaluations=6,
                       leave_one_out=False, check_cells=0)
    assert report["base_cell"]["values"]["Contact resistance [Ohm]"] == 0.01
    assert report["base_cell"]["model_options"] == {"contact resistance": "true"}
    bare = VoltageProblem("OKane2022", fit)
    bare_start = bare.rmse_mv(Curve.from_file(curve_path), bare.initial)
    assert abs(report["rmse_before_mv"]["LGM50_25C_0.5C"] - bare_start) > 1.0

    def no_fit(*args, **kwargs):
        raise AssertionError("the fit started before the parameter set was checked")
    monkeypatch.setattr(fit_module, "fit_parameters", no_fit)
    with pytest.raises(CalibrationError, match="does not run with it"):
        calibrate([curve_path], fit, tmp_path / "x.yaml", parameter_set="Chen2020", base_design="smoke",
                  max_evaluations=6, leave_one_out=False, check_cells=0)
