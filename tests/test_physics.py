"""Physics checked with physics: real SPMe aging solves on tiny meshes."""

from __future__ import annotations

import numpy as np
import pytest

from pybamm_factory.labels import end_of_life
from pybamm_factory.simulate import simulate_sample
from tests.physics_designs import row_for, tiny_design

SEI = "SEI solvent diffusivity [m2.s-1]"
PLATING = "Lithium plating kinetic rate constant [m.s-1]"


def _labels(design, row):
    tables = simulate_sample(design, row)
    assert tables["solver_log"]["status"].iloc[0] == "ok", tables["solver_log"]["failure_reason"].iloc[0]
    return tables["labels"]


def test_sei_only_capacity_fades_monotonically_and_lli_grows():
    design = tiny_design()
    labels = _labels(design, row_for(design, **{SEI: 3e-19}))
    assert list(labels["cycle"]) == [0, 2, 4, 6]
    soh = labels["soh"].to_numpy()
    assert soh[0] == 1.0 and np.all(np.diff(soh) <= 1e-6) and soh[-1] < 0.995
    assert np.all(np.diff(labels["lli_pct"]) > 0)
    assert np.all(np.diff(labels["sei_loss_ah"]) > 0)
    assert np.all(np.diff(labels["throughput_ah"]) > 0)
    assert (labels["lam_ne_pct"].abs() < 1e-9).all() and (labels["lam_pe_pct"].abs() < 1e-9).all()


def test_lithium_lost_is_the_sei_lithium_and_its_two_percentages_have_their_own_denominators():
    from pybamm_factory.simulate.aging import base_parameter_values

    design = tiny_design()
    labels = _labels(design, row_for(design, **{SEI: 3e-19}))
    aged = labels.iloc[1:]
    # SEI is the only sink: the lithium the particles lost is the lithium the SEI holds (conservation)
    np.testing.assert_allclose(aged["lli_ah"], aged["sei_loss_ah"], rtol=2e-3)
    # lli_pct counts it against all lithium in both electrodes at the start, from the parameters
    pv = base_parameter_values(design)
    area_m2 = pv["Electrode width [m]"] * pv["Electrode height [m]"]
    lithium_ah = sum(pv[f"Initial concentration in {e} electrode [mol.m-3]"]
                     * pv[f"{E} electrode active material volume fraction"] * pv[f"{E} electrode thickness [m]"]
                     for e, E in (("negative", "Negative"), ("positive", "Positive"))) * area_m2 * 96485.33212 / 3600
    np.testing.assert_allclose(aged["lli_ah"] / aged["lli_pct"] * 100, lithium_ah, rtol=1e-3)
    # lli_capacity_pct against the fresh RPT capacity, which is smaller: the window never cycles it all
    # (counted from the first RPT, as a measured analysis counts: zero there)
    assert labels["lli_capacity_pct"].iloc[0] == 0.0
    np.testing.assert_allclose(aged["lli_capacity_pct"],
                               100 * (aged["lli_ah"] - labels["lli_ah"].iloc[0]) / labels["capacity_ah"].iloc[0])
    assert (aged["lli_capacity_pct"] > 1.2 * (aged["lli_pct"] - labels["lli_pct"].iloc[0])).all()


def test_faster_sei_rate_gives_lower_soh_at_same_cycle():
    design = tiny_design()
    slow = _labels(design, row_for(design, **{SEI: 5e-20}))
    fast = _labels(design, row_for(design, **{SEI: 1e-18}))
    assert (fast["soh"].iloc[1:].to_numpy() < slow["soh"].iloc[1:].to_numpy()).all()
    assert fast["lli_pct"].iloc[-1] > 2 * slow["lli_pct"].iloc[-1]


def test_higher_temperature_speeds_sei_growth():
    design = tiny_design(temperatures=(25, 45))
    cool = _labels(design, row_for(design, temperature_c=25, **{SEI: 2e-19}))
    hot = _labels(design, row_for(design, temperature_c=45, **{SEI: 2e-19}))
    assert hot["sei_loss_ah"].iloc[-1] > 1.2 * cool["sei_loss_ah"].iloc[-1]


def test_cold_or_fast_charge_raises_plating():
    options = {"lithium plating": "partially reversible"}
    varied = {PLATING: {"distribution": "log-uniform", "low": 1e-10, "high": 1e-8}}
    design = tiny_design(options=options, varied=varied, cycles=2, interval=2, temperatures=(5, 25), charge=(0.3, 1.5))
    base = _labels(design, row_for(design, temperature_c=25, charge_c_rate=0.3, **{PLATING: 1e-9}))
    cold = _labels(design, row_for(design, temperature_c=5, charge_c_rate=0.3, **{PLATING: 1e-9}))
    fast = _labels(design, row_for(design, temperature_c=25, charge_c_rate=1.5, **{PLATING: 1e-9}))
    assert cold["plating_loss_ah"].iloc[-1] > 1.5 * base["plating_loss_ah"].iloc[-1]
    assert fast["plating_loss_ah"].iloc[-1] > 1.2 * base["plating_loss_ah"].iloc[-1]


def test_lam_is_zero_when_off_and_grows_when_on():
    lam_term = "Negative electrode LAM constant proportional term [s-1]"
    varied = {lam_term: {"distribution": "log-uniform", "low": 1e-6, "high": 1e-4}}
    on = tiny_design(options={"particle mechanics": ["swelling only", "swelling only"],
                              "loss of active material": ["stress-driven", "stress-driven"]},
                     varied=varied, cycles=4, interval=2, name="lam-on")
    off = tiny_design(options={}, varied={SEI: {"low": 1e-21, "high": 2e-21}}, cycles=4, interval=2, name="lam-off")
    lab_on = _labels(on, row_for(on, **{lam_term: 2.8e-5}))
    lab_off = _labels(off, row_for(off, **{SEI: 1.5e-21}))
    assert (lab_off[["lam_ne_pct", "lam_pe_pct"]].abs() < 1e-9).all().all()
    assert np.all(np.diff(lab_on["lam_ne_pct"]) > 0) and np.all(np.diff(lab_on["lam_pe_pct"]) > 0)
    assert lab_on["lam_ne_pct"].iloc[-1] > 0.1


def test_lost_positive_material_takes_its_lithium_and_a_dma_frame_sees_only_the_part_above_its_zero():
    """Positive LAM the only sink: the lithium the particles lost is the lost material times its
    lithiation, which lies within the window the cell cycles; the positive capacity by charge
    balance of the first RPT (its capacity over the lithiation it spans) is the electrode's
    capacity from its parameters; a DMA frame whose zero sits at the top of that window sees
    only the lithium above it."""
    from pybamm_factory.labels.tables import (
        FARADAY_AH_PER_MOL,
        lli_ah,
        lli_capacity_pct,
        lli_capacity_pct_in_frame,
        positive_frame_zero,
    )
    from pybamm_factory.simulate.aging import AgingEngine, base_parameter_values

    lam_term = "Positive electrode LAM constant proportional term [s-1]"
    design = tiny_design(options={"particle mechanics": ["none", "swelling only"],
                                  "loss of active material": ["none", "stress-driven"]},
                         varied={lam_term: {"distribution": "log-uniform", "low": 1e-6, "high": 1e-4}},
                         cycles=4, interval=2, name="lam-pe")
    engine = AgingEngine(design, design.protocols[0], 298.15)
    run = engine.run({lam_term: 3e-5, "charge_c_rate": 0.5, "discharge_c_rate": 1.0})
    assert run.status == "ok", run.failure_reason
    first, last = run.snapshots[0], run.snapshots[-1]
    q0 = float(np.ptp(first.discharged_ah))
    pv = base_parameter_values(design)
    c_max = pv["Maximum concentration in positive electrode [mol.m-3]"]
    window = (first.c_pos_avg[0] / c_max, first.c_pos_avg[-1] / c_max)
    positive_ah = (pv["Positive electrode active material volume fraction"] * pv["Positive electrode thickness [m]"]
                   * pv["Electrode width [m]"] * pv["Electrode height [m]"] * c_max * FARADAY_AH_PER_MOL)
    positive_ah *= 1 - first.summary["lam_pe_pct"] / 100
    assert q0 / (window[1] - window[0]) == pytest.approx(positive_ah, rel=0.01)
    lost_pe_ah = positive_ah * (last.summary["lam_pe_pct"] - first.summary["lam_pe_pct"]) / (100 - first.summary["lam_pe_pct"])
    lost_li_ah = lli_ah(last.summary) - lli_ah(first.summary)
    assert lost_pe_ah > 1e-4 * q0
    assert window[0] - 0.02 < lost_li_ah / lost_pe_ah < window[1] + 0.02  # the lithiation the material left at
    everything = lli_capacity_pct(last.summary, first.summary, q0)
    # the model's own frame sees all lithium; a frame with its zero at the window's top only what is above it
    assert lli_capacity_pct_in_frame(last.summary, first.summary, q0, window, window) == pytest.approx(everything)
    top_zero = (0.0, 0.8)
    assert positive_frame_zero(window, top_zero) == pytest.approx(window[0])
    above = lli_capacity_pct_in_frame(last.summary, first.summary, q0, window, top_zero)
    # (the correction's own positive capacity is the charge-balance one, checked above against the parameters)
    charge_balance_ah = q0 / (window[1] - window[0]) * (last.summary["lam_pe_pct"] - first.summary["lam_pe_pct"]) \
        / (100 - first.summary["lam_pe_pct"])
    assert above == pytest.approx(everything - 100 * window[0] * charge_balance_ah / q0, rel=1e-9)
    assert 0 < above < everything * (window[1] - window[0]) / window[1]
    # the labels carry the window, and the table form counts every RPT as the function does
    import pandas as pd

    from pybamm_factory.labels.tables import label_rows, lli_capacity_pct_in_frame_table

    assert (first.pe_lithiation_top, first.pe_lithiation_bottom) == pytest.approx(window)
    labels = pd.DataFrame(label_rows({"sample_id": "s"}, run.snapshots, engine.nominal_capacity_ah, run.status))
    table = lli_capacity_pct_in_frame_table(labels, top_zero)
    assert table.to_numpy() == pytest.approx([lli_capacity_pct_in_frame(s.summary, first.summary, q0, window, top_zero)
                                              for s in run.snapshots], rel=1e-9, abs=1e-12)


@pytest.mark.slow
def test_projection_from_early_rpts_lands_near_observed_end_of_life():
    """Simulate past SOH 0.8; project from the RPTs before 60 % of EOL; compare."""
    design = tiny_design(cycles=40, interval=4, temperatures=(40,))
    labels = _labels(design, row_for(design, temperature_c=40, **{SEI: 5e-18}))
    assert labels["rul_source"].iloc[0] == "observed"
    observed = labels["eol_cycle"].iloc[0]
    early = labels[labels["cycle"] <= 0.6 * observed]
    assert len(early) >= 4
    projected = end_of_life(early["cycle"], early["soh"])
    assert projected.source == "projected"
    # stated tolerance: 15 % of the observed end of life
    assert abs(projected.eol_cycle - observed) <= 0.15 * observed, (projected, observed)
    rul = labels["rul_to_80_cycles"].to_numpy()
    assert rul[0] == pytest.approx(observed) and np.all(np.diff(rul) <= 0) and rul.min() >= 0


def test_solve_that_breaks_down_keeps_earlier_snapshots_and_says_why():
    """SEI that clogs the pores ends the experiment early (PyBaMM's event or an IDA failure
    as porosity nears zero): the reason is recorded, earlier RPTs are kept and flagged."""
    design = tiny_design(options={"SEI": "solvent-diffusion limited", "SEI porosity change": "true"},
                         varied={SEI: {"distribution": "log-uniform", "low": 1e-18, "high": 1e-15}}, cycles=40, interval=4)
    tables = simulate_sample(design, row_for(design, **{SEI: 5e-18}))
    log = tables["solver_log"].iloc[0]
    assert log["status"] in ("infeasible", "failed")
    assert log["failure_reason"], "a non-ok sample always says why"
    assert 2 <= log["rpts_completed"] == len(tables["labels"])
    assert log["cycles_completed"] < 40
    assert (tables["labels"]["solver_status"] == log["status"]).all()
    assert tables["labels"]["soh"].is_monotonic_decreasing
