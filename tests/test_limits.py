"""The per-sample CPU budget and the RPT spacing rule."""

from __future__ import annotations

import copy
import threading
import time

import pytest
import yaml

from pybamm_factory.dataset.store import read_table
from pybamm_factory.design import DesignError, parse_design
from pybamm_factory.design.spec import Aging
from pybamm_factory.simulate.aging import AgingEngine, RptSchedule
from tests.conftest import REPO
from tests.dataset_files import table_digests

SMOKE = yaml.safe_load((REPO / "designs" / "smoke.yaml").read_text())
ROW = {"SEI solvent diffusivity [m2.s-1]": 1e-19, "Lithium plating kinetic rate constant [m.s-1]": 1e-9,
       "charge_c_rate": 1.0, "discharge_c_rate": 1.0}


def _design(limit_s, cycles=400):
    raw = copy.deepcopy(SMOKE)
    raw["aging"].update({"max_cycles": cycles, "rpt_interval_cycles": cycles, "sample_cpu_limit_s": limit_s})
    raw["eis"]["enabled"] = False
    return parse_design(raw, "limited.yaml")


def test_cpu_limit_is_validated_in_one_line():
    for bad in (0, -5, "soon"):
        with pytest.raises(DesignError) as err:
            _design(bad)
        assert "limited.yaml" in str(err.value) and "sample_cpu_limit_s" in str(err.value)
        assert "\n" not in str(err.value)


@pytest.mark.slow
def test_a_sample_over_its_cpu_budget_is_failed_with_the_reason_inside_one_long_solve():
    # 400 cycles in one solve (no jumps, one stretch) take far more than 2 CPU s: the
    # budget has to stop the solve itself, not wait for it to end
    engine = AgingEngine(_design(2.0), _design(2.0).protocols[0], 298.15)
    engine.ensure_built(ROW)
    t0 = time.process_time()
    run = engine.run(ROW)
    used = time.process_time() - t0
    assert run.status == "failed"
    assert "CPU-time limit of 2 s" in run.failure_reason and "sample_cpu_limit_s" in run.failure_reason
    assert used < 2.0 + 3.0, f"the solve ran on for {used:.1f} CPU s"
    assert len(run.snapshots) == 1  # the fresh RPT is kept; no aging RPT was reached


@pytest.mark.slow
def test_the_budget_is_checked_between_solves_off_the_main_thread():
    # Dask runs tasks on worker threads, where no signal can interrupt a solve; the
    # engine then stops at the next solve (jumped runs solve a few cycles at a time)
    raw = copy.deepcopy(SMOKE)
    raw["aging"].update({"max_cycles": 3000, "rpt_interval_cycles": 3000, "sample_cpu_limit_s": 2.0,
                         "cycle_jump": {"tolerance": 0.05, "min_cycles": 2, "max_cycles": 3, "exact_cycles": 2}})
    raw["eis"]["enabled"] = False
    design = parse_design(raw, "limited.yaml")
    engine = AgingEngine(design, design.protocols[0], 298.15)
    engine.ensure_built(ROW)
    result = {}
    worker = threading.Thread(target=lambda: result.update(run=engine.run(ROW)))
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "the budget did not stop the run"
    run = result["run"]
    assert run.status == "failed" and "CPU-time limit" in run.failure_reason
    assert 0 < run.cycles_completed < 3000


def test_an_unlimited_design_keeps_no_limit():
    assert _design(None).aging.sample_cpu_limit_s is None
    assert _design(30).aging.sample_cpu_limit_s == 30.0


def _rpt_capacities(schedule: RptSchedule, aging_fade_per_cycle, rpt_fade_per_cycle, rpts=8):
    """Drive the schedule with straight-line aging and RPT capacities; the RPT capacities
    it asks for."""
    cycle, rpt = 0, [1.0]
    for _ in range(rpts):
        end = schedule.stretch_end(cycle)
        while cycle < end:
            cycle += 1
            if schedule.reached_fade_step(1.0 - aging_fade_per_cycle * cycle):
                break
        rpt.append(1.0 - rpt_fade_per_cycle * cycle)
        schedule.note_rpt(rpt[-2], rpt[-1])
    return rpt


@pytest.mark.parametrize("rpt_per_aging", [0.5, 1.0, 2.0, 3.0])
def test_rpts_fall_every_fade_step_of_rpt_capacity_whatever_the_aging_capacity_does(rpt_per_aging):
    aging = Aging(max_cycles=100_000, rpt_interval_cycles=100_000, rpt_fade_step=0.02)
    rpt = _rpt_capacities(RptSchedule(aging), 1e-4, rpt_per_aging * 1e-4)
    drops = [a - b for a, b in zip(rpt[:-1], rpt[1:])]
    # the first stretch cannot know the ratio; from the second RPT on, each is one step
    assert drops[0] == pytest.approx(0.02 * rpt_per_aging, rel=0.02)
    for drop in drops[1:]:
        assert drop == pytest.approx(0.02, rel=0.02)


# --- compiled models ---------------------------------------------------------------

def _compiled_smoke(compile_: bool):
    raw = copy.deepcopy(SMOKE)
    raw["ambient_temperatures_c"] = [25]
    raw["eis"]["enabled"] = False
    raw["aging"].update({"max_cycles": 12, "rpt_interval_cycles": 6})
    raw["solver"]["compile"] = compile_
    return parse_design(raw, "compiled.yaml")


def test_compile_is_validated_in_one_line():
    raw = copy.deepcopy(SMOKE)
    for solver, fld in (({"compile": "yes"}, "solver.compile"), ({"name": "CasadiSolver", "compile": True}, "solver.compile")):
        bad = copy.deepcopy(raw)
        bad["solver"].update(solver)
        with pytest.raises(DesignError) as err:
            parse_design(bad, "smoke.yaml")
        assert fld in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_a_compiled_model_ages_like_the_interpreted_one_and_runs_identically_on_two_workers(tmp_path):
    # the first compile on a machine runs gcc for a minute or two; later ones load the cache
    import numpy as np

    from pybamm_factory import api

    compiled, interpreted = _compiled_smoke(True), _compiled_smoke(False)
    runs = [AgingEngine(d, d.protocols[0], 298.15).run(ROW) for d in (compiled, interpreted)]
    assert [r.status for r in runs] == ["ok", "ok"]
    (a, b) = ([np.ptp(s.discharged_ah) for s in r.snapshots] for r in runs)
    assert len(a) == len(b) == 3
    assert np.allclose(a, b, rtol=1e-5), (a, b)
    assert a[-1] < a[0]  # and the compiled cell still fades
    one = api.run(compiled, samples=2, workers=1, seed=3, out=tmp_path / "one", quiet=True)
    two = api.run(compiled, samples=2, workers=2, seed=3, out=tmp_path / "two", quiet=True)
    assert table_digests(one, ("labels", "curves")) == table_digests(two, ("labels", "curves"))
    log = read_table(two, "solver_log")
    assert (log["status"] == "ok").all()
