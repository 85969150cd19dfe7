"""Aging calibrated to measured degradation trajectories (real LG M50T cells)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pybamm_factory.calibrate import CalibrationError
from pybamm_factory.calibrate.trajectories import (
    PARAMETERS,
    TrajectoryProblem,
    fit_trajectories,
    read_kirkaldy,
    read_trajectories,
)
from pybamm_factory.design import load_design
from pybamm_factory.labels.tables import positive_frame_zero
from tests.conftest import REPO

TRAJECTORIES = REPO / "tests" / "data" / "kirkaldy_trajectories.csv"


def test_the_trajectory_table_reads_and_bad_tables_get_one_line(tmp_path):
    frame = read_trajectories(TRAJECTORIES)
    assert sorted(frame["cell_id"].unique()) == ["A", "C", "E"]
    assert (frame.groupby("cell_id")["cycle"].max() == 6204).all()
    assert frame["soh"].between(0.85, 1.0).all() and (frame.loc[frame["cycle"] == 0, "lli_capacity_pct"] == 0).all()
    raw = pd.read_csv(TRAJECTORIES)
    for broken, words in ((raw.drop(columns=["soh"]), "missing column 'soh'"),
                          (raw.assign(soh=raw["soh"] * 100), "column 'soh' must be a fraction"),
                          (raw[raw["cycle"] > 0], "no fresh reference test"),
                          (raw.assign(cycle=raw["cycle"].astype(str).str.replace("517", "x")), "column 'cycle'"),
                          # two LLI conventions in one table would fit the same loss twice
                          (raw.assign(lli_pct=raw["lli_capacity_pct"] / 1.5), "both lli_capacity_pct and lli_pct"),
                          # the positive frame: top below bottom, both given, and for lli_capacity_pct only
                          (raw.assign(pe_lithiation_top=raw["pe_lithiation_bottom"]), "need 0 <= top < bottom <= 1"),
                          (raw.assign(pe_lithiation_bottom=np.nan), "give both or neither"),
                          (raw.drop(columns=["lli_capacity_pct"]).assign(lli_pct=1.0), "apply to lli_capacity_pct")):
        path = tmp_path / "bad.csv"
        broken.to_csv(path, index=False)
        with pytest.raises(CalibrationError) as err:
            read_trajectories(path)
        assert str(path) in str(err.value) and words in str(err.value) and "\n" not in str(err.value)


def test_a_blank_column_of_the_other_lli_convention_is_not_a_second_convention(tmp_path):
    # what read_trajectories itself returns (both columns, one blank) reads back unchanged
    frame = read_trajectories(TRAJECTORIES)
    assert frame["lli_pct"].isna().all() and frame["lli_capacity_pct"].notna().all()
    path = tmp_path / "written.csv"
    frame.to_csv(path, index=False)
    again = read_trajectories(path)
    pd.testing.assert_frame_equal(again, frame, check_dtype=False)


def test_the_published_layout_reads_to_the_same_table(realdata):
    frame = read_kirkaldy(realdata / "kirkaldy_lgm50t")
    shipped = read_trajectories(TRAJECTORIES)
    merged = frame.merge(shipped, on=["cell_id", "cycle"], suffixes=("", "_shipped"))
    assert len(merged) == len(shipped) == 39
    for col in ("soh", "lli_capacity_pct", "lam_ne_pct", "lam_pe_pct", "temperature_c"):
        assert np.allclose(merged[col], merged[f"{col}_shipped"], atol=1e-3, equal_nan=True), col
    _check_dma_reading(frame, realdata / "kirkaldy_lgm50t")
    assert frame["lli_pct"].isna().all()
    for col in ("pe_lithiation_top", "pe_lithiation_bottom"):
        assert np.allclose(merged[col], merged[f"{col}_shipped"], atol=1e-4), col
    # the cells ran warmer than their chambers (self-heating): the fit ages them at their own temperature
    chamber = frame.groupby("cell_id")["chamber_temperature_c"].first()
    cell = frame.groupby("cell_id")["temperature_c"].first()
    assert (cell >= chamber - 0.5).all() and cell["A"] > chamber["A"] + 3


SECOND_CELLS = REPO / "tests" / "data" / "kirkaldy_lgm50t_bdf"


def _check_dma_reading(frame, folder):
    """Kirkaldy et al.'s LLI read from their capacity and stoichiometry files."""
    for cell, group in frame.groupby("cell_id"):
        dma = folder / "DMA Output" / f"cell {cell}"
        caps = pd.read_csv(next(dma.glob("*Capacity and offset*")))
        stoich = pd.read_csv(next(dma.glob("*fitting parameters*")))
        n = len(group)

        def lli(lithium_mah):
            return (100 * (lithium_mah.iloc[0] - lithium_mah) / caps["Cell Capacity"].iloc[0]).to_numpy()[:n]

        # their LLI counts lithium on the capacity axis: the change of (positive-electrode capacity -
        # electrode offset) over the fresh cell capacity, so it is read as lli_capacity_pct
        np.testing.assert_allclose(group["lli_capacity_pct"].to_numpy(), lli(caps["PE Capacity"] - caps["Offset"]),
                                   atol=1e-9)
        # their positive stoichiometries are the electrode's state of charge, lo at the cell's bottom:
        # read so, their LLI is the change of the lithium in their frame (at the bottom: (1 - PE_lo) Q_PE
        # + NE_lo Q_NE); read as lithiation, (PE_lo Q_PE + NE_hi Q_NE), it is not
        as_soc = lli((1 - stoich["PE_lo"]) * caps["PE Capacity"] + stoich["NE_lo"] * caps["NE(tot) Capacity"])
        as_lithiation = lli(stoich["PE_lo"] * caps["PE Capacity"] + stoich["NE_hi"] * caps["NE(tot) Capacity"])
        np.testing.assert_allclose(group["lli_capacity_pct"].to_numpy(), as_soc, atol=1e-6)
        assert np.abs(group["lli_capacity_pct"].to_numpy() - as_lithiation).max() > 0.5
        np.testing.assert_allclose(group["pe_lithiation_top"], 1 - stoich["PE_hi"].to_numpy()[:n])
        np.testing.assert_allclose(group["pe_lithiation_bottom"], 1 - stoich["PE_lo"].to_numpy()[:n])


def test_the_second_cell_at_each_temperature_reads_in_the_same_convention():
    """Cells B, D and F of the same campaign (packed in the repository, not in ../shared)."""
    frame = read_trajectories(SECOND_CELLS)
    assert sorted(frame["cell_id"].unique()) == ["B", "D", "F"] and len(frame) == 39
    assert (frame.groupby("cell_id")["chamber_temperature_c"].first() == [10.0, 25.0, 40.0]).all()
    _check_dma_reading(frame, SECOND_CELLS)
    problem = TrajectoryProblem(load_design("kirkaldy-expt2"), frame, [PARAMETERS["SEI solvent diffusivity [m2.s-1]"]],
                                compile_model=False)
    assert all(0 < top < 0.1 and 0.8 < bottom < 1 for top, bottom in problem.frames.values())


@pytest.mark.slow
def test_a_reduced_real_aging_fit_lowers_the_error_at_least_threefold():
    # one temperature (cell C, 25 degC chamber), two parameters, the first three RPTs
    measured = read_trajectories(TRAJECTORIES)
    measured = measured[(measured["cell_id"] == "C") & (measured["cycle"] <= 1551)].reset_index(drop=True)
    names = ["SEI solvent diffusivity [m2.s-1]", "Positive electrode LAM constant proportional term [s-1]"]
    problem = TrajectoryProblem(load_design("kirkaldy-expt2"), measured, [PARAMETERS[n] for n in names],
                                compile_model=False)
    fit = fit_trajectories(problem, max_evaluations=24, workers=2)
    rms_before = np.sqrt(2 * fit.cost_before)
    rms_after = np.sqrt(2 * fit.cost_after)
    assert rms_after * 3 <= rms_before, (rms_before, rms_after, fit.values)
    # and it moved the rates the way the measurement says: faster than the literature values
    assert fit.values[names[0]] > 2.5e-22 and fit.values[names[1]] > 2.7778e-7
    err = fit.errors_after.iloc[0]
    assert err["soh_max_pp"] < fit.errors_before.iloc[0]["soh_max_pp"]
    assert err["lli_capacity_pct_missing"] == 0


def test_a_lam_activation_energy_scales_the_lam_rate_by_its_arrhenius_factor():
    import copy
    import math

    import yaml

    from pybamm_factory.design import parse_design
    from pybamm_factory.simulate.aging import AgingEngine

    raw = yaml.safe_load((REPO / "designs" / "smoke.yaml").read_text())
    raw["model_options"].update({"loss of active material": ["stress-driven", "none"],
                                 "particle mechanics": ["swelling only", "none"]})
    lam, energy = "Negative electrode LAM constant proportional term [s-1]", "Negative electrode LAM activation energy [J.mol-1]"
    raw["varied"] = {lam: {"distribution": "log-uniform", "low": 1e-6, "high": 1e-5},
                     energy: {"distribution": "uniform", "low": -5e4, "high": 5e4}}
    raw["eis"]["enabled"] = False
    raw["aging"].update({"max_cycles": 4, "rpt_interval_cycles": 4})
    design = parse_design(copy.deepcopy(raw), "lam-activation.yaml")
    lam_pct = {}
    for t_k in (298.15, 313.15):
        engine = AgingEngine(design, design.protocols[0], t_k)
        for ea in (0.0, 5e4):
            run = engine.run({lam: 1e-5, energy: ea, "charge_c_rate": 0.7, "discharge_c_rate": 1.0})
            assert run.status == "ok", run.failure_reason
            lam_pct[t_k, ea] = run.snapshots[-1].summary["lam_ne_pct"]
    assert lam_pct[298.15, 5e4] == pytest.approx(lam_pct[298.15, 0.0], rel=1e-9)  # 25 degC is the reference
    arrhenius = math.exp(5e4 / 8.314462618 * (1 / 298.15 - 1 / 313.15))
    assert lam_pct[313.15, 5e4] / lam_pct[313.15, 0.0] == pytest.approx(arrhenius, rel=0.03)


def test_a_lam_break_in_multiplies_the_fresh_rate_and_decays_to_the_long_run_rate():
    """The break-in makes a fresh cell's LAM rate (1 + factor) times the long-run one and
    the excess decays as exp(-t / tau): with tau far longer than the run the LAM is
    (1 + factor) times the plain one; with tau shorter than a cycle, only the first
    increment is larger and every later cycle adds what the plain model adds."""
    import copy

    import yaml

    from pybamm_factory.design import parse_design
    from pybamm_factory.simulate.aging import AgingEngine

    raw = yaml.safe_load((REPO / "designs" / "smoke.yaml").read_text())
    lam, factor = "Negative electrode LAM constant proportional term [s-1]", "Negative electrode LAM break-in factor"
    tau = "LAM break-in time constant [h]"
    raw["varied"] = {lam: {"distribution": "log-uniform", "low": 1e-6, "high": 1e-5},
                     factor: {"distribution": "uniform", "low": 0.0, "high": 5.0},
                     tau: {"distribution": "log-uniform", "low": 0.1, "high": 1e7}}
    raw["eis"]["enabled"] = False
    raw["aging"].update({"max_cycles": 4, "rpt_interval_cycles": 1})
    design = parse_design(copy.deepcopy(raw), "lam-break-in.yaml")
    engine = AgingEngine(design, design.protocols[0], 298.15)

    def lam_pct(a, hours):
        run = engine.run({lam: 1e-5, factor: a, tau: hours, "charge_c_rate": 0.7, "discharge_c_rate": 1.0})
        assert run.status == "ok", run.failure_reason
        return np.array([s.summary["lam_ne_pct"] for s in run.snapshots])

    plain, lasting, brief = lam_pct(0.0, 1.0), lam_pct(2.0, 1e6), lam_pct(2.0, 0.5)
    assert plain[-1] > 0.05
    assert lasting / plain == pytest.approx(np.full(len(plain), 3.0), rel=0.01)
    assert brief[0] > plain[0] * 1.1  # the fresh cell's RPT and first hours lose more
    assert np.diff(brief)[1:] == pytest.approx(np.diff(plain)[1:], rel=0.01)  # then the plain rate


def test_a_lam_rate_scaled_by_a_factor_keeps_its_factor_under_the_break_in():
    """A design that varies the LAM rate as a factor of the set's value and adds a break-in
    (the factor makes the rate an expression, which once crashed the engine's build): the
    break-in multiplies the scaled rate, so a factor of 3 triples the LAM of factor 1."""
    import copy

    import yaml

    from pybamm_factory.design import parse_design
    from pybamm_factory.simulate.aging import AgingEngine

    raw = yaml.safe_load((REPO / "designs" / "smoke.yaml").read_text())
    scale = "Negative electrode LAM constant proportional term [s-1] (factor)"
    factor, tau = "Negative electrode LAM break-in factor", "LAM break-in time constant [h]"
    raw["varied"] = {scale: {"distribution": "uniform", "low": 1.0, "high": 100.0}}
    raw["fixed"] = {**raw.get("fixed", {}), factor: 2.0, tau: 1e6}
    raw["eis"]["enabled"] = False
    raw["aging"].update({"max_cycles": 2, "rpt_interval_cycles": 1})
    engines = {}
    for a in (2.0, 0.0):
        raw["fixed"][factor] = a
        design = parse_design(copy.deepcopy(raw), "lam-factor-break-in.yaml")
        engines[a] = AgingEngine(design, design.protocols[0], 298.15)

    def lam_pct(f, a=2.0):
        run = engines[a].run({scale: f, "charge_c_rate": 0.7, "discharge_c_rate": 1.0})
        assert run.status == "ok", run.failure_reason
        return np.array([s.summary["lam_ne_pct"] for s in run.snapshots])

    once, thrice, plain = lam_pct(30.0), lam_pct(90.0), lam_pct(30.0, a=0.0)
    assert once[-1] > 0.01
    assert thrice / once == pytest.approx(np.full(len(once), 3.0), rel=0.02)
    assert once / plain == pytest.approx(np.full(len(once), 3.0), rel=0.02)  # 1 + A with tau >> the run


def test_a_break_in_is_refused_where_it_cannot_act(tmp_path):
    import copy

    import yaml

    from pybamm_factory.design import DesignError, parse_design

    raw = yaml.safe_load((REPO / "designs" / "smoke.yaml").read_text())  # stress-driven LAM in the negative only
    for fixed, words in (({"Positive electrode LAM break-in factor": 1.0}, "stress-driven for this electrode"),
                         ({"Negative electrode LAM break-in factor": -0.5}, "must be >= 0"),
                         ({"LAM break-in time constant [h]": 0.0}, "must be > 0 h")):
        bad = copy.deepcopy(raw)
        bad["fixed"] = fixed
        with pytest.raises(DesignError) as err:
            parse_design(bad, "break-in.yaml")
        assert words in str(err.value) and f"fixed.{next(iter(fixed))}" in str(err.value), err.value
    good = copy.deepcopy(raw)
    good["fixed"] = {"Negative electrode LAM break-in factor": 1.0, "LAM break-in time constant [h]": 50.0}
    assert parse_design(good, "break-in.yaml").fixed["LAM break-in time constant [h]"] == 50.0


def test_the_card_states_the_lam_terms_a_design_adds():
    import copy

    import yaml

    from pybamm_factory.dataset.card import _lam_terms
    from pybamm_factory.design import parse_design

    raw = yaml.safe_load((REPO / "designs" / "smoke.yaml").read_text())
    assert _lam_terms(parse_design(copy.deepcopy(raw), "s.yaml")) == "none (PyBaMM's model as built)."
    raw["fixed"] = {"Negative electrode LAM break-in factor": 2.5, "Negative electrode LAM activation energy [J.mol-1]": 3e4}
    text = _lam_terms(parse_design(raw, "s.yaml"))
    assert "Arrhenius" in text and "`Negative electrode LAM activation energy [J.mol-1]` 30000" in text
    assert "`Negative electrode LAM break-in factor` A 2.5" in text and "`LAM break-in time constant [h]` 100" in text


def test_a_fit_starts_from_given_values_or_where_a_term_is_off_from_its_own_start():
    from pybamm_factory.calibrate.trajectories import starting_x

    names = ["SEI solvent diffusivity [m2.s-1]", "Positive electrode LAM break-in factor",
             "LAM break-in time constant [h]"]
    problem = TrajectoryProblem(load_design("kirkaldy-expt2"), read_trajectories(TRAJECTORIES),
                                [PARAMETERS[n] for n in names], compile_model=False)
    # the parameter set's SEI rate; the break-in is off (0) in the set, so its own start
    assert starting_x(problem) == pytest.approx([np.log10(2.5e-22), np.log10(3.0), np.log10(100.0)])
    warm = starting_x(problem, {names[0]: 4e-21, names[1]: 7.0})
    assert warm == pytest.approx([np.log10(4e-21), np.log10(7.0), np.log10(100.0)])


@pytest.mark.slow
def test_default_resistance_grows_like_the_measured_cells():
    """Cell C (28 degC, its own usage) over its first 2,068 cycles with the default design's
    median parameters: the DC resistance grows as the cell's measured 0.1 s pulse resistance
    did (+2.15 %), within 1 %-point; with the parameter set's SEI resistivity it grew +37 %."""
    from pybamm_factory.labels.capacity import dc_resistance_ohm
    from pybamm_factory.simulate.aging import get_aging_engine

    traj = read_trajectories(TRAJECTORIES)
    traj = traj[(traj.cell_id == "C") & (traj.cycle <= 2068)]
    model = load_design("default")
    fixed = {k: float(v.ppf(0.5)) for k, v in model.varied.items()}
    problem = TrajectoryProblem(load_design("kirkaldy-expt2"), traj, [], fixed=fixed, compile_model=False,
                                model_design=model)
    _, t_k, rpts = problem.cells[0]
    engine = get_aging_engine(problem.design, problem.design.protocols[0].protocol_id, t_k)
    row = problem.row([])
    engine.ensure_built(row)
    run = engine.run(row, rpt_cycles=rpts)
    assert run.status == "ok" and run.snapshots[-1].cycle == 2068
    r = [dc_resistance_ohm(s.rest_voltage_v, float(s.voltage_v[0]), s.current_a) for s in run.snapshots]
    assert abs(r[-1] / r[0] - 1.0215) < 0.01, r[-1] / r[0]


def test_a_warm_start_takes_the_fit_where_the_calibration_report_is_beside_the_design(tmp_path):
    """The shipped calibrated design spreads its unidentified parameters over ranges clipped
    at the fit bounds, so their medians are not the fit; beside its report the warm start
    takes the fitted values, and a copy of the design alone falls back to its medians."""
    import json
    import shutil

    from pybamm_factory.calibrate import start_values

    shipped = REPO / "designs" / "lgm50t-aging.yaml"
    notes = json.loads((REPO / "designs" / "lgm50t-aging_aging_calibration" / "aging_calibration_report.json")
                       .read_text())["parameters"]
    fitted = {k: v["fitted"] for k, v in notes.items() if "per_cell" not in v}
    per_cell = {k: v["per_cell"] for k, v in notes.items() if "per_cell" in v}  # a value per cell, each its own
    medians = {k: float(d.ppf(0.5)) for k, d in load_design(shipped).varied.items()}
    name = "Lithium plating kinetic rate constant [m.s-1]"
    assert abs(np.log10(medians[name] / fitted[name])) > 0.1  # the case this is for
    with_report = start_values(shipped)
    assert all(with_report[k] == pytest.approx(v, rel=1e-12) for k, v in fitted.items())
    assert all(with_report[k] == pytest.approx(v, rel=1e-12) for k, v in per_cell.items())
    alone = tmp_path / "copy.yaml"
    shutil.copy(shipped, alone)
    assert start_values(alone)[name] == pytest.approx(medians[name], rel=1e-12)


def _two_cells_first_rpt():
    measured = read_trajectories(TRAJECTORIES)
    return measured[measured["cell_id"].isin(["A", "C"]) & (measured["cycle"] <= 517)].reset_index(drop=True)


def test_a_per_cell_parameter_takes_one_entry_per_cell_and_only_that_cell_sees_it():
    from pybamm_factory.calibrate.trajectories import starting_x

    names = ["SEI solvent diffusivity [m2.s-1]", "Positive electrode LAM break-in factor"]
    problem = TrajectoryProblem(load_design("kirkaldy-expt2"), _two_cells_first_rpt(), [PARAMETERS[n] for n in names],
                                compile_model=False, per_cell=(names[1],))
    assert problem.labels == [names[0], f"{names[1]} | cell A", f"{names[1]} | cell C"]
    x = np.array([-21.0, 0.5, -1.0])
    assert problem.row(x, "A")[names[1]] == pytest.approx(10 ** 0.5)
    assert problem.row(x, "C")[names[1]] == pytest.approx(0.1)
    assert problem.row(x, "C")[names[0]] == problem.row(x, "A")[names[0]] == pytest.approx(1e-21)
    assert problem.join(problem.split(x)) == pytest.approx(x)
    # a cell the values do not name (a held-out one) takes the others' mean in x
    held = problem.subset(["C"])
    assert held.join({names[0]: -21.0, names[1]: {"A": 0.5, "E": 1.5}}) == pytest.approx([-21.0, 1.0])
    # a warm start from a per-cell fit gives each cell its own value
    assert starting_x(problem, {names[0]: 1e-21, names[1]: {"A": 5.0, "C": 0.2}}) == pytest.approx(
        [-21.0, np.log10(5.0), np.log10(0.2)])
    with pytest.raises(CalibrationError) as err:
        TrajectoryProblem(load_design("kirkaldy-expt2"), _two_cells_first_rpt(), [PARAMETERS[names[0]]],
                          per_cell=(names[1],))
    assert "--per-cell" in str(err.value) and names[1] in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_a_per_cell_break_in_is_fitted_to_each_cell_and_the_design_spans_them():
    """Cells A and C lost 4.4 % and 1.0 % of their positive electrode in their first 517
    cycles at about the same SOH (97.7 and 97.8 %). With the shipped fit's other aging
    parameters and the positive break-in factor fitted per cell, A's comes out larger; a
    change of A's value solves cell A only; the written design's range covers both."""
    from pybamm_factory.calibrate import start_values
    from pybamm_factory.calibrate.design_writer import aging_calibrated_design

    names = ["Positive electrode LAM break-in factor"]
    measured = _two_cells_first_rpt()
    fixed = {k: v for k, v in start_values(REPO / "designs" / "lgm50t-aging.yaml").items()
             if k in PARAMETERS and k != names[0] and not isinstance(v, dict)}
    problem = TrajectoryProblem(load_design("kirkaldy-expt2"), measured, [PARAMETERS[n] for n in names], fixed=fixed,
                                compile_model=False, per_cell=(names[0],), model_design=load_design("default"))
    x = np.array([0.5, 0.5])
    first = problem.simulate_many([x], workers=2)[0]
    solved = len(problem._solved)
    second = problem.simulate_many([x + [1.0, 0.0]], workers=2)[0]
    assert len(problem._solved) == solved + 1  # only cell A was solved again
    pe = {name: frame.set_index(["cell_id", "cycle"])["lam_pe_pct"] for name, frame in (("1", first), ("2", second))}
    assert pe["2"]["C", 517] == pe["1"]["C", 517] and pe["2"]["A", 517] > 2 * pe["1"]["A", 517]
    # the table gives the cells' DMA frame, whose zero sits above none of the model's positive
    # lithium: the LLI fitted is the part above it, less than all the lithium lost with the material
    assert problem.frames["A"] == pytest.approx((0.0347, 0.8804), abs=1e-4)
    at_517 = second.set_index(["cell_id", "cycle"]).loc[("A", 517)]
    zero = positive_frame_zero((at_517["pe_model_top"], at_517["pe_model_bottom"]), problem.frames["A"])
    assert 0.2 < zero < at_517["pe_model_top"]
    assert at_517["lli_capacity_pct"] < at_517["lli_capacity_all_pct"] - 0.1

    fit = fit_trajectories(problem, x0=x, max_evaluations=16, workers=2, scan=())
    values = problem.split(fit.x)[names[0]]
    assert values["A"] > values["C"] + 0.1, fit.values  # A's factor x1.26 or more of C's
    assert fit.cost_after < fit.cost_before
    raw, notes = aging_calibrated_design(load_design("default"), problem, fit, [], "two cells")
    spread = raw["varied"][names[0]]
    assert spread["low"] <= 10 ** values["C"] and spread["high"] >= 10 ** values["A"]
    assert set(notes[names[0]]["per_cell"]) == {"A", "C"} and "cell A" in spread["source"]


@pytest.mark.slow
def test_calibrate_aging_with_a_per_cell_parameter_writes_design_report_and_figure(tmp_path):
    """End to end through the CLI: two cells, their first RPT, the positive break-in per
    cell; the design loads, the report keeps each cell's value and the held-out errors,
    and a warm start from the written design gives each cell its own value back."""
    import json

    from click.testing import CliRunner

    from pybamm_factory.calibrate import start_values
    from pybamm_factory.cli import main

    table = tmp_path / "two_cells.csv"
    _two_cells_first_rpt().to_csv(table, index=False)
    name = "Positive electrode LAM break-in factor"
    out = tmp_path / "fitted.yaml"
    result = CliRunner().invoke(main, ["calibrate-aging", "--trajectories", str(table), "--fit", name,
                                       "--fit", "SEI solvent diffusivity [m2.s-1]", "--per-cell", name,
                                       "--base-design", "kirkaldy-expt2", "--max-evaluations", "6", "--workers", "2",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{name}: cell A " in result.output and ", cell C " in result.output
    assert "held out cell A" in result.output and "held out cell C" in result.output
    # errors are printed for the LLI convention the table measured, not the other one
    assert "lli_capacity_pct" in result.output and "lli_pct" not in result.output
    assert "cell A: LLI counted in the DMA's positive frame (positive lithiation at the top / bottom of the fresh " \
           "discharge 0.035 / 0.880" in result.output
    report = json.loads((tmp_path / "fitted_aging_calibration" / "aging_calibration_report.json").read_text())
    per_cell = report["parameters"][name]["per_cell"]
    assert set(per_cell) == {"A", "C"} and report["per_cell"] == [name]
    frame_a = report["positive_frames"]["A"]
    assert frame_a["dma_top"] == pytest.approx(0.0347, abs=1e-4) and 0.2 < frame_a["model_lithiation_at_dma_zero"] < 0.3
    assert len(report["leave_one_temperature_out"]) == 2 and report["cost_after"] <= report["cost_before"]
    corr = np.array(report["correlation"]["matrix"], dtype=float)  # the fit's, by x entry, for joint draws
    assert report["correlation"]["names"][:2] == [f"{name} | cell A", f"{name} | cell C"] and corr.shape == (3, 3)
    assert np.allclose(corr, corr.T, equal_nan=True) and np.allclose(np.diag(corr)[np.isfinite(np.diag(corr))], 1.0)
    assert (tmp_path / "fitted_aging_calibration" / "trajectories_fit.png").stat().st_size > 10_000
    design = load_design(out)
    assert design.varied[name].low <= min(per_cell.values()) * (1 + 1e-9)
    assert design.varied[name].high >= max(per_cell.values()) * (1 - 1e-9)
    assert start_values(out)[name] == pytest.approx(per_cell, rel=1e-12)


def test_the_written_design_spreads_shared_and_per_cell_values_by_its_rules():
    """The writer's arithmetic on a given fit (no solve): a shared rate takes the largest of
    2 sigma, half the leave-one-out range and the floor; a per-cell one spans its cells'
    values and is unidentified when any cell's value is (that cell named in its source)."""
    from pybamm_factory.calibrate.design_writer import CELL_TO_CELL_DECADES, aging_calibrated_design
    from pybamm_factory.calibrate.trajectories import TrajectoryFit

    names = ["SEI solvent diffusivity [m2.s-1]", "Positive electrode LAM break-in factor"]
    problem = TrajectoryProblem(load_design("kirkaldy-expt2"), _two_cells_first_rpt(), [PARAMETERS[n] for n in names],
                                compile_model=False, per_cell=names[1])  # one name, not its characters
    assert problem.per_cell == (names[1],)
    x = np.array([-21.0, 1.2, 0.3])  # SEI 1e-21; break-in A 15.8, C 2.0

    def fit(x_std, at_bound=()):
        return TrajectoryFit(names=problem.labels, x0=x, x=x, values={}, x_std=np.asarray(x_std), cost_before=1.0,
                             cost_after=0.5, errors_before=pd.DataFrame(), errors_after=pd.DataFrame(),
                             simulated=pd.DataFrame(), evaluations=1, wall_time_s=0.0, at_bound=list(at_bound),
                             message="")

    loo = [{names[0]: -21.4, names[1]: 0.8}, {names[0]: -20.9, names[1]: 0.7}]  # half-range 0.25 decade
    raw, notes = aging_calibrated_design(load_design("default"), problem, fit([0.05, 0.1, 0.1]), loo, "two cells")
    sei = raw["varied"][names[0]]
    assert sei["low"] == pytest.approx(10 ** -21.25) and sei["high"] == pytest.approx(10 ** -20.75)
    assert "leave-one-temperature-out" in sei["source"]
    assert 2 * 0.05 < 0.25 and CELL_TO_CELL_DECADES < 0.25  # the range, not sigma or floor, set it
    brk = raw["varied"][names[1]]
    assert brk["low"] == pytest.approx(10 ** 0.3) and brk["high"] == pytest.approx(10 ** 1.2)
    assert notes[names[1]]["identified"] and notes[names[1]]["fitted"] == pytest.approx(10 ** 0.75)
    # cell C's value at a bound: the parameter is flagged and the cell named
    raw, notes = aging_calibrated_design(load_design("default"), problem, fit([0.05, 0.1, 0.1], [f"{names[1]} | cell C"]),
                                         loo, "two cells")
    assert not notes[names[1]]["identified"] and "UNIDENTIFIED" in raw["varied"][names[1]]["source"]
    assert "cell C 2 (unidentified)" in raw["varied"][names[1]]["source"]
