"""Protocol kinds: the registry, one-line errors for bad blocks, and each kind on a small
real SPMe solve, checked against what its currents and voltages show."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml

from pybamm_factory.dataset.store import read_table
from pybamm_factory.design import DesignError, build_manifest, parse_design
from pybamm_factory.design.manifest import condition_columns, varied_columns
from pybamm_factory.protocols import get_kind, kinds
from pybamm_factory.simulate.aging import AgingEngine, AgingRun, _FailureRecorder
from tests.conftest import REPO

SMOKE = yaml.safe_load((REPO / "designs" / "smoke.yaml").read_text())


def design_with(*protocols, varied=None, **aging):
    raw = copy.deepcopy(SMOKE)
    raw["protocols"] = list(protocols)
    if varied is not None:
        raw["varied"] = varied
    raw["aging"].update(aging)
    return parse_design(raw, "protocols.yaml")


WINDOW = {"id": "w", "kind": "soc-window", "depth_of_discharge": 0.15, "mean_soc": 0.775,
          "charge_c_rate": 0.3, "discharge_c_rate": 1.0, "rest_min": 0}


# --- registry and validation -------------------------------------------------------------

def test_registry_lists_every_kind_and_refuses_an_unknown_one():
    assert {"cccv-cc", "soc-window", "multistep-charge", "calendar", "drive-cycle"} <= set(kinds())
    with pytest.raises(DesignError) as err:
        design_with({"id": "x", "kind": "pulse-train", "charge_c_rate": 1, "discharge_c_rate": 1})
    message = str(err.value)
    assert "\n" not in message and "protocols[0].kind" in message and "'pulse-train'" in message
    for name in kinds():
        assert name in message
    with pytest.raises(KeyError, match="known: "):
        get_kind("pulse-train")
    from click.testing import CliRunner

    from pybamm_factory.cli import main

    listed = CliRunner().invoke(main, ["protocols"])
    assert listed.exit_code == 0 and all(name in listed.output for name in kinds())


BAD = [
    ("window leaves [0, 1]", {**WINDOW, "mean_soc": 0.95}, "protocols[0]': impossible window"),
    ("depth above 1", {**WINDOW, "depth_of_discharge": 1.2}, "protocols[0].depth_of_discharge': must lie in [0, 1]"),
    ("missing mean", {k: v for k, v in WINDOW.items() if k != "mean_soc"}, "protocols[0].mean_soc': is required"),
    ("unknown key", {**WINDOW, "soc_low": 0.7}, "protocols[0].soc_low': unknown key; allowed:"),
    ("rest without hours", {**WINDOW, "rest": {"soc": 0.8}}, "protocols[0].rest.hours': is required"),
    ("negative C-rate", {**WINDOW, "charge_c_rate": {"low": -1, "high": 1}}, "C-rates must lie in (0, 10]"),
    ("SOC stage after a voltage stage",
     {"id": "m", "kind": "multistep-charge", "discharge_c_rate": 1,
      "stages": [{"c_rate": 2, "until_v": 4.0}, {"c_rate": 1, "until_soc": 0.8}]}, "an SOC stage cannot follow"),
    ("stage with both ends",
     {"id": "m", "kind": "multistep-charge", "discharge_c_rate": 1,
      "stages": [{"c_rate": 2, "until_v": 4.0, "until_soc": 0.5}]}, "needs exactly one of 'until_soc'"),
    ("falling SOC stages",
     {"id": "m", "kind": "multistep-charge", "discharge_c_rate": 1,
      "stages": [{"c_rate": 2, "until_soc": 0.5}, {"c_rate": 1, "until_soc": 0.4}]}, "must rise from stage to stage"),
    ("storage SOC above 1", {"id": "c", "kind": "calendar", "storage_soc": 1.5}, "protocols[0].storage_soc'"),
    ("missing profile file",
     {"id": "d", "kind": "drive-cycle", "profile": "no/such.csv", "peak_c_rate": 2, "depth_of_discharge": 0.2,
      "charge_c_rate": 0.5}, "protocols[0].profile': cannot read drive profile 'no/such.csv'"),
]


@pytest.mark.parametrize("label,block,expected", BAD, ids=[b[0] for b in BAD])
def test_a_bad_protocol_block_is_refused_in_one_line_naming_its_field(label, block, expected):
    with pytest.raises(DesignError) as err:
        design_with(block)
    assert "\n" not in str(err.value) and str(err.value).startswith("protocols.yaml: field ")
    assert expected in str(err.value)


def test_manifest_has_one_column_per_factor_and_nan_where_a_protocol_lacks_it():
    design = design_with(WINDOW, {"id": "cal", "kind": "calendar", "storage_soc": {"low": 0.3, "high": 0.9}},
                         {"id": "full", "charge_c_rate": 0.5, "discharge_c_rate": {"low": 0.5, "high": 2.0}})
    m = build_manifest(design, 30, seed=3)
    assert m.equals(build_manifest(design, 30, seed=3))
    assert condition_columns(m) == ["protocol_id", "depth_of_discharge", "mean_soc", "charge_c_rate",
                                    "discharge_c_rate", "storage_soc", "ambient_temperature_k"]
    assert varied_columns(m) == list(design.varied)
    cal = m[m.protocol_id == "cal"]
    assert len(cal) and cal["charge_c_rate"].isna().all() and cal["storage_soc"].between(0.3, 0.9).all()
    full = m[m.protocol_id == "full"]
    assert len(full) and full["storage_soc"].isna().all() and full["discharge_c_rate"].between(0.5, 2.0).all()


# --- each kind on a real solve -----------------------------------------------------------

def _steps(design, row, cycles=2, temperature_k=298.15):
    """Solve an RPT, then the lead-in cycle and ``cycles - 1`` more; per step of each
    aging cycle: (charge moved [A.h], current half-way [A], voltage min, max, duration [s],
    largest current [A])."""
    engine = AgingEngine(design, design.protocols[0], temperature_k)
    engine.ensure_built(row)
    out, recorder = AgingRun(), _FailureRecorder()
    inputs = engine.inputs_for(row)
    rpt = engine._solve([engine.rpt_cycle], inputs, None, recorder, out)
    engine._take_snapshot(rpt, 0, out, recorder, inputs)
    q_ref = float(np.ptp(out.snapshots[0].discharged_ah))
    inputs = engine.prepare(row, q_ref)
    sol = engine._solve([engine.first_cycle] + [engine.aging_cycle] * (cycles - 1), inputs, rpt.last_state,
                        recorder, out)
    assert not recorder.messages, recorder.messages
    table = []
    for cyc in sol.cycles[1:]:
        rows = []
        for step in cyc.steps:
            q, i, v, t = (step[n].entries for n in ("Discharge capacity [A.h]", "Current [A]", "Voltage [V]", "Time [s]"))
            rows.append((q[-1] - q[0], i[len(i) // 2], v.min(), v.max(), t[-1] - t[0], i.max()))
        table.append(np.array(rows))
    return engine, q_ref, table


@pytest.mark.slow
def test_soc_window_cycles_its_depth_from_its_bottom_by_coulomb_counting():
    design = design_with(WINDOW, varied={})
    engine, q_ref, (first, second) = _steps(design, {})
    q = engine.nominal_capacity_ah
    # lead-in from the RPT's 0 % to the bottom (70 %), then 15 % up and 15 % down
    np.testing.assert_allclose(first[:, 0], [-0.70 * q_ref, -0.15 * q_ref, 0.15 * q_ref], rtol=1e-3)
    np.testing.assert_allclose(second[:, 0], [-0.15 * q_ref, 0.15 * q_ref], rtol=1e-3)
    np.testing.assert_allclose(second[:, 1], [-0.3 * q, 1.0 * q], rtol=1e-6)  # C-rates of the nominal capacity
    # a high-SOC window: the cell stays well above the middle of its voltage range
    assert second[:, 2].min() > 3.7 and second[:, 3].max() < design.protocols[0].upper_voltage_v


@pytest.mark.slow
def test_a_rest_at_soc_splits_the_discharge_where_the_counter_says():
    block = {"id": "r", "charge_c_rate": 0.5, "discharge_c_rate": 1.0, "rest_min": 0, "rest": {"soc": 0.4, "hours": 2}}
    design = design_with(block, varied={})
    engine, q_ref, (_, cycle) = _steps(design, {})
    # discharge 60 % (from the full cell), rest 2 h at no current, discharge the rest, charge, CV
    assert cycle.shape[0] == 5
    assert cycle[0, 0] == pytest.approx(0.6 * q_ref, rel=1e-3)
    assert abs(cycle[1, 1]) < 1e-9 and cycle[1, 4] == pytest.approx(7200, rel=1e-6)
    assert 0.3 * q_ref < cycle[2, 0] < 0.4 * q_ref  # the 1C discharge stops short of the slow RPT's 0 %
    assert cycle[2, 2] == pytest.approx(design.protocols[0].lower_voltage_v, abs=0.01)
    assert cycle[0, 0] + cycle[2, 0] == pytest.approx(-(cycle[3, 0] + cycle[4, 0]), rel=0.02)  # charge returns it


@pytest.mark.slow
@pytest.mark.parametrize("rest_soc,expected", [(0.0, "bottom"), (1.0, "top")])
def test_a_rest_clipped_to_a_window_edge_rests_there_without_an_empty_step(rest_soc, expected):
    """usage-81 rests at the bottom, middle or top of its windows (rest SOC 0 / 0.5 / 1,
    clipped into the window): an edge rest must not leave a zero-length discharge behind."""
    block = {**WINDOW, "depth_of_discharge": 0.3, "mean_soc": 0.5, "rest": {"soc": rest_soc, "hours": 1}}
    design = design_with(block, varied={})
    engine, q_ref, (_, cycle) = _steps(design, {})
    moved = cycle[:, 0]
    rests = np.flatnonzero(np.abs(cycle[:, 1]) < 1e-9)
    assert len(cycle) == 3 and len(rests) == 1  # charge, discharge and the rest, nothing empty
    assert cycle[rests[0], 4] == pytest.approx(3600, rel=1e-6)
    assert rests[0] == (2 if expected == "bottom" else 1)
    np.testing.assert_allclose(np.sort(moved), [-0.3 * q_ref, 0.0, 0.3 * q_ref], atol=1e-3 * q_ref)


@pytest.mark.slow
def test_multistep_charge_runs_its_stages_in_order_and_switches_where_told():
    block = {"id": "m", "kind": "multistep-charge", "discharge_c_rate": 1.0, "rest_min": 0,
             "stages": [{"c_rate": 1.0, "until_soc": 0.3}, {"c_rate": 0.5, "until_soc": 0.6},
                        {"c_rate": 0.3, "until_v": 4.1}]}
    design = design_with(block, varied={})
    engine, q_ref, (_, cycle) = _steps(design, {})
    q = engine.nominal_capacity_ah
    # discharge, then the three charge stages, then the CV hold
    np.testing.assert_allclose(cycle[1:4, 1], [-1.0 * q, -0.5 * q, -0.3 * q], rtol=1e-6)
    np.testing.assert_allclose(cycle[1:3, 0], [-0.3 * q_ref, -0.3 * q_ref], rtol=1e-3)
    assert cycle[3, 3] == pytest.approx(4.1, abs=2e-3)  # the voltage stage stops at its voltage
    assert cycle[4, 2] == pytest.approx(design.protocols[0].upper_voltage_v, abs=2e-3)  # CV at the upper limit


@pytest.mark.slow
def test_calendar_storage_rests_at_its_soc_and_loses_capacity_over_the_days():
    block = {"id": "c", "kind": "calendar", "storage_soc": 0.8, "days_per_cycle": 10}
    sei = "SEI solvent diffusivity [m2.s-1]"
    design = design_with(block, varied={sei: {"distribution": "log-uniform", "low": 1e-20, "high": 1e-19}},
                         max_cycles=3, rpt_interval_cycles=3)
    engine, q_ref, (first, second) = _steps(design, {sei: 5e-20})
    assert first[0, 0] == pytest.approx(-0.8 * q_ref, rel=1e-3)  # lead-in to the storage SOC
    assert abs(second[0, 1]) < 1e-12 and second[0, 4] == pytest.approx(10 * 86400, rel=1e-9)
    run = AgingEngine(design, design.protocols[0], 318.15).run({sei: 5e-20})
    assert run.status == "ok", run.failure_reason
    days = [(s.elapsed_s - run.snapshots[0].elapsed_s) / 86400 for s in run.snapshots]
    assert days[-1] == pytest.approx(30, abs=0.5)  # three 10-day periods and the tests between
    capacities = [float(s.discharged_ah[-1]) for s in run.snapshots]
    assert capacities[-1] < capacities[0] * 0.995  # SEI grows in storage at 45 degC


@pytest.mark.slow
def test_drive_cycle_draws_its_depth_with_the_profile_scaled_to_its_peak(tmp_path):
    charging = tmp_path / "charging.csv"
    charging.write_text("time_s,current_a\n0,-1\n1,-2\n2,0.5\n")
    with pytest.raises(DesignError, match="must discharge on balance"):
        design_with({"id": "d", "kind": "drive-cycle", "profile": str(charging), "peak_c_rate": 2,
                     "depth_of_discharge": 0.2, "charge_c_rate": 0.5})
    block = {"id": "d", "kind": "drive-cycle", "profile": "us06", "peak_c_rate": 2.0, "depth_of_discharge": 0.2,
             "charge_c_rate": 0.5, "rest_min": 0}
    raw_design = design_with(block, varied={})
    engine, q_ref, (_, cycle) = _steps(raw_design, {})
    q = engine.nominal_capacity_ah
    drive, charge, cv = cycle
    assert drive[0] == pytest.approx(0.2 * q_ref, rel=0.01)  # the profile's net charge over the depth
    assert drive[4] > 3 * 600  # several passes of the 600 s profile
    assert drive[5] == pytest.approx(2.0 * q, rel=0.01)  # the profile's peak at 2C
    assert drive[2] > 3.0  # far from the lower stop, so the depth (not the voltage) ended it
    assert charge[1] == pytest.approx(-0.5 * q, rel=1e-6) and cv[3] == pytest.approx(4.2, abs=2e-3)
    assert -(charge[0] + cv[0]) == pytest.approx(drive[0], rel=0.02)  # the recharge returns what was drawn


# --- pulse resistance and a whole run ----------------------------------------------------

PULSE = {"socs": [0.2, 0.5, 0.8], "c_rate": 1.0, "rest_min": 30}


@pytest.mark.slow
def test_pulse_resistance_rises_in_the_cold_and_from_0p1_to_10_seconds():
    design = design_with(WINDOW, varied={}, max_cycles=2, rpt_interval_cycles=2, rpt_pulse=PULSE)
    runs = {t: AgingEngine(design, design.protocols[0], t).run({}) for t in (283.15, 298.15)}
    for run in runs.values():
        assert run.status == "ok", run.failure_reason
        for snap in run.snapshots:
            socs, r01, r10 = np.array(snap.pulses).T
            np.testing.assert_allclose(socs, PULSE["socs"])
            assert np.all(r01 > 0) and np.all(r10 > r01)  # diffusion adds to the instantaneous drop
    cold, warm = (np.array(runs[t].snapshots[-1].pulses)[:, 1] for t in (283.15, 298.15))
    assert np.all(cold > 1.2 * warm)
    # the aging between RPTs starts from the cell the pulses left empty again: same capacity
    # whether or not the RPT carries pulses (within the fade of two 15 % cycles)
    plain = AgingEngine(design_with(WINDOW, varied={}, max_cycles=2, rpt_interval_cycles=2), design.protocols[0],
                        298.15).run({})
    assert plain.snapshots[-1].discharged_ah[-1] == pytest.approx(runs[298.15].snapshots[-1].discharged_ah[-1], rel=1e-3)


@pytest.mark.slow
def test_rpts_at_a_set_chamber_temperature_measure_every_cell_alike():
    """``rpt_temperature_c``: a 10 degC cell tested at 25 degC shows the 25 degC cell's
    fresh resistance and capacity, not its own cold ones."""
    at_25 = design_with(WINDOW, varied={}, max_cycles=2, rpt_interval_cycles=2, rpt_pulse=PULSE, rpt_temperature_c=25)
    plain = design_with(WINDOW, varied={}, max_cycles=2, rpt_interval_cycles=2, rpt_pulse=PULSE)
    fresh = {}
    for label, design, temperature_k in (("cold at 25", at_25, 283.15), ("warm", plain, 298.15), ("cold", plain, 283.15)):
        run = AgingEngine(design, design.protocols[0], temperature_k).run({})
        assert run.status == "ok", run.failure_reason
        fresh[label] = (np.array(run.snapshots[0].pulses)[:, 1], float(run.snapshots[0].discharged_ah[-1]))
    np.testing.assert_allclose(fresh["cold at 25"][0], fresh["warm"][0], rtol=0.01)
    assert fresh["cold at 25"][1] == pytest.approx(fresh["warm"][1], rel=1e-3)
    assert np.all(fresh["cold"][0] > 1.2 * fresh["warm"][0])


@pytest.mark.slow
def test_a_window_design_with_pulses_runs_end_to_end_into_valid_tables(tmp_path):

    from pybamm_factory import api
    from pybamm_factory.dataset import validate_frame

    raw = copy.deepcopy(SMOKE)
    raw["name"] = "window-pulses"
    raw["protocols"] = [{**WINDOW, "depth_of_discharge": {"low": 0.1, "high": 0.3}, "mean_soc": {"low": 0.4, "high": 0.6}}]
    raw["aging"].update({"max_cycles": 4, "rpt_interval_cycles": 2, "rpt_pulse": {"socs": [0.5]}})
    path = tmp_path / "window.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = api.run(str(path), samples=2, workers=1, seed=1, out=tmp_path / "run", quiet=True)
    tables = {t: read_table(out, t) for t in ("manifest", "labels", "pulses", "solver_log")}
    for name, frame in tables.items():
        assert validate_frame(frame, name) == [], name
    assert (tables["solver_log"]["status"] == "ok").all()
    assert tables["manifest"]["depth_of_discharge"].between(0.1, 0.3).all()
    assert len(tables["pulses"]) == len(tables["labels"])  # one pulse per RPT
    per_cell = tables["labels"].groupby("sample_id")["elapsed_days"]
    assert (per_cell.min() == 0).all() and (per_cell.max() > 0).all()
    card = (out / "README.md").read_text()
    assert "soc-window" in card and "coulomb counted" in card
