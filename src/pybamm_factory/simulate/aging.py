"""Aging experiments: one PyBaMM simulation built per worker, solved with inputs.

A sample runs a reference performance test (RPT) at cycle 0, then blocks of
``rpt_interval_cycles`` aging cycles each closed by another RPT, until
``max_cycles`` or until the RPT capacity falls below ``stop_soh`` of its start.
Varied parameters and the C-rate currents are PyBaMM input parameters, so the model is
built and discretised once per (design, protocol, ambient temperature) in each worker
process and reused for every sample that worker receives.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pybamm

from ..design.spec import Design, Protocol, model_options_for_pybamm
from .inputs import set_inputs

CHARGE_CURRENT = "Charge current [A]"
DISCHARGE_CURRENT = "Discharge current [A]"

# Variables the factory reads from the solver; everything else is not stored.
OUTPUT_VARIABLES = [
    "Time [s]",
    "Voltage [V]",
    "Current [A]",
    "Discharge capacity [A.h]",
    "Average negative particle concentration [mol.m-3]",
    "Average positive particle concentration [mol.m-3]",
    "X-averaged negative SEI thickness [m]",
    "X-averaged negative electrode active material volume fraction",
    "X-averaged positive electrode active material volume fraction",
]

# Degradation totals kept per RPT (PyBaMM variable -> column name), read from the state at
# the end of the RPT. They are PyBaMM's summary variables too, but evaluating them at one
# state costs a fraction of building the summary over every cycle of the block.
SUMMARY_COLUMNS = {
    "Throughput capacity [A.h]": "throughput_ah",
    "Loss of lithium inventory [%]": "lli_pct",
    "Loss of active material in negative electrode [%]": "lam_ne_pct",
    "Loss of active material in positive electrode [%]": "lam_pe_pct",
    "Loss of capacity to negative lithium plating [A.h]": "plating_loss_ah",
    "Loss of capacity to negative SEI [A.h]": "sei_loss_ah",
    "Loss of capacity to negative SEI on cracks [A.h]": "sei_cracks_loss_ah",
}

RPT_DISCHARGE_STEP = 3
RPT_REST_BEFORE_DISCHARGE = 2

pybamm.set_logging_level("ERROR")
logging.getLogger("pybamm").setLevel(logging.ERROR)


@dataclass
class RptSnapshot:
    """What one reference test tells: its slow discharge and the state variables."""

    cycle: int
    time_s: np.ndarray
    voltage_v: np.ndarray
    discharged_ah: np.ndarray
    c_neg_avg: np.ndarray
    c_pos_avg: np.ndarray
    sei_thickness_m: float
    eps_am_neg: float
    eps_am_pos: float
    rest_voltage_v: float
    current_a: float
    summary: dict


@dataclass
class AgingRun:
    snapshots: list[RptSnapshot] = field(default_factory=list)
    status: str = "ok"
    failure_reason: str = ""
    cycles_completed: int = 0
    solve_time_s: float = 0.0  # wall time of the experiment solves
    solver_time_s: float = 0.0  # PyBaMM's own solve time of those steps (Solution.solve_time)


class _FailureRecorder(pybamm.callbacks.Callback):
    """Keeps PyBaMM's own words when an experiment stops early."""

    def __init__(self):
        self.messages: list[tuple[str, str]] = []

    def on_experiment_error(self, logs):
        self.messages.append(("failed", f"solver error: {str(logs.get('error', ''))[:300]}"))

    def on_experiment_infeasible_event(self, logs):
        ops = logs.get("step operating conditions", "")
        self.messages.append(("infeasible", f"event '{logs.get('termination', '')}' during '{ops}'"))

    def on_experiment_infeasible_time(self, logs):
        ops = logs.get("step operating conditions", "")
        self.messages.append(("infeasible", f"step duration exceeded during '{ops}'"))


def make_solver(design: Design):
    cls = getattr(pybamm, design.solver.name)
    return cls(rtol=design.solver.rtol, atol=design.solver.atol)


def make_model(model: str, options: dict):
    """A PyBaMM SPMe or DFN with the given (YAML-style) options."""
    cls = pybamm.lithium_ion.SPMe if model == "spme" else pybamm.lithium_ion.DFN
    return cls(model_options_for_pybamm(options))


def base_parameter_values(design: Design) -> pybamm.ParameterValues:
    pv = pybamm.ParameterValues(design.parameter_set)
    pv.update(design.fixed)
    return pv


class AgingEngine:
    """A built aging simulation for one (design, protocol, ambient temperature)."""

    def __init__(self, design: Design, protocol: Protocol, temperature_k: float):
        self.design = design
        self.protocol = protocol
        pv = base_parameter_values(design)
        pv.update({"Ambient temperature [K]": temperature_k, "Initial temperature [K]": temperature_k})
        set_inputs(pv, design.varied)
        self.nominal_capacity_ah = float(pv["Nominal cell capacity [A.h]"])
        self.rpt_current_a = design.aging.rpt_discharge_c_rate * self.nominal_capacity_ah
        self.aging_cycle, self.rpt_cycle = self._steps()
        t0 = time.perf_counter()
        model = make_model(design.model, design.model_options)
        self.summary_columns = {k: v for k, v in SUMMARY_COLUMNS.items() if k in model.variables}
        self.sim = pybamm.Simulation(
            model,
            parameter_values=pv,
            experiment=pybamm.Experiment([self.rpt_cycle, self.aging_cycle]),
            var_pts=design.mesh or None,
            solver=make_solver(design),
            output_variables=OUTPUT_VARIABLES,
        )
        self.build_time_s = time.perf_counter() - t0
        self._built = False

    def _steps(self):
        p, a, q = self.protocol, self.design.aging, self.nominal_capacity_ah
        i_dis = pybamm.InputParameter(DISCHARGE_CURRENT)
        i_chg = pybamm.InputParameter(CHARGE_CURRENT)
        rest = p.rest_min * 60
        aging = [
            pybamm.step.current(i_dis, termination=f"< {p.lower_voltage_v} V"),
            pybamm.step.current(-i_chg, termination=f"> {p.upper_voltage_v} V"),
            pybamm.step.voltage(p.upper_voltage_v, termination=f"{p.cv_cutoff_c_rate * q} A"),
        ]
        if rest > 0:
            aging.insert(1, pybamm.step.rest(rest))
            aging.append(pybamm.step.rest(rest))
        rpt = (
            pybamm.step.current(-a.rpt_charge_c_rate * q, termination=f"{p.upper_voltage_v} V"),
            pybamm.step.voltage(p.upper_voltage_v, termination=f"{a.rpt_cv_cutoff_c_rate * q} A"),
            pybamm.step.rest(a.rpt_rest_min * 60),
            pybamm.step.current(self.rpt_current_a, termination=f"{p.lower_voltage_v} V"),
            pybamm.step.rest(a.rpt_rest_min * 60),
        )
        return tuple(aging), rpt

    def inputs_for(self, row: dict) -> dict:
        inputs = {name: float(row[name]) for name in self.design.varied}
        inputs[CHARGE_CURRENT] = float(row["charge_c_rate"]) * self.nominal_capacity_ah
        inputs[DISCHARGE_CURRENT] = float(row["discharge_c_rate"]) * self.nominal_capacity_ah
        return inputs

    def ensure_built(self, inputs):
        """Build, discretise and set up the solver of every step, once.

        A one-cycle warm-up solve of the RPT and an aging cycle does it: PyBaMM sets a
        step's solver up on its first solve, and doing that here keeps the set-up (and
        its memory) out of the samples.
        """
        if not self._built:
            t0 = time.perf_counter()
            self.sim.experiment = pybamm.Experiment([self.rpt_cycle, self.aging_cycle])
            try:
                self.sim.solve(inputs=inputs)
            except Exception:  # noqa: BLE001 - a failed warm-up still leaves the models built
                if self.sim.steps_to_built_models is None:
                    self.sim.build_for_experiment(inputs=inputs)
            self._forget_solution()
            self.build_time_s += time.perf_counter() - t0
            self._built = True

    def _forget_solution(self):
        """Drop the simulation's reference to its last solution (it only costs memory)."""
        self.sim._solution = None

    def _solve(self, cycles, inputs, start, recorder, out: AgingRun):
        # Steps with input-valued currents share their built models across
        # experiments, so the experiment can change between blocks without a rebuild.
        self.sim.experiment = pybamm.Experiment(cycles)
        sol = self.sim.solve(inputs=inputs, starting_solution=start, callbacks=[recorder])
        out.solver_time_s += seconds(sol.solve_time)  # this block's steps only (start is a state)
        return sol

    def run(self, row: dict) -> AgingRun:
        """Solve one sample's aging experiment; never raises for physics failures."""
        a = self.design.aging
        inputs = self.inputs_for(row)
        self.ensure_built(inputs)
        out = AgingRun()
        recorder = _FailureRecorder()
        t0 = time.perf_counter()
        state = None
        cycle = 0
        try:
            sol = self._solve([self.rpt_cycle], inputs, None, recorder, out)
            self._take_snapshot(sol, 0, out, recorder)
            state = sol.last_state
            while out.status == "ok" and cycle < a.max_cycles:
                n = min(a.rpt_interval_cycles, a.max_cycles - cycle)
                sol = self._solve([self.aging_cycle] * n + [self.rpt_cycle], inputs, state, recorder, out)
                done = self._count_aging_cycles(sol, n, recorder)
                cycle += done
                out.cycles_completed = cycle
                if done < n or recorder.messages:
                    self._mark(out, recorder, f"stopped after {done} of {n} aging cycles in block")
                    break
                self._take_snapshot(sol, cycle, out, recorder)
                state = sol.last_state
                q0 = np.ptp(out.snapshots[0].discharged_ah)
                if np.ptp(out.snapshots[-1].discharged_ah) < a.stop_soh * q0:
                    break
        except Exception as exc:  # a solver or model error is a row, never a crash
            out.status = "failed"
            out.failure_reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        out.solve_time_s = time.perf_counter() - t0
        self._forget_solution()
        if out.status == "ok" and not out.snapshots:
            out.status, out.failure_reason = "failed", "no reference test completed"
        return out

    @staticmethod
    def _mark(out: AgingRun, recorder: _FailureRecorder, fallback: str):
        if recorder.messages:
            out.status, out.failure_reason = recorder.messages[0]
        else:
            out.status, out.failure_reason = "infeasible", fallback

    @staticmethod
    def _count_aging_cycles(sol, n_expected: int, recorder: _FailureRecorder) -> int:
        """Complete aging cycles in a block; the block's first cycle is the start state."""
        in_block = len(sol.cycles) - 1
        if not recorder.messages and in_block >= n_expected + 1:
            return n_expected
        return max(0, min(n_expected, in_block - 1))

    def _take_snapshot(self, sol, cycle: int, out: AgingRun, recorder: _FailureRecorder):
        rpt = sol.cycles[-1]
        if rpt is None or len(rpt.steps) < RPT_DISCHARGE_STEP + 1 or recorder.messages:
            self._mark(out, recorder, f"reference test at cycle {cycle} incomplete")
            return
        dis = rpt.steps[RPT_DISCHARGE_STEP]
        rest = rpt.steps[RPT_REST_BEFORE_DISCHARGE]
        q = dis["Discharge capacity [A.h]"].entries
        end = sol.last_state
        summary = {col: float(end[name].entries[-1]) for name, col in self.summary_columns.items()}
        out.snapshots.append(RptSnapshot(
            cycle=cycle,
            time_s=dis["Time [s]"].entries - dis["Time [s]"].entries[0],
            voltage_v=dis["Voltage [V]"].entries,
            discharged_ah=q - q[0],
            c_neg_avg=dis["Average negative particle concentration [mol.m-3]"].entries,
            c_pos_avg=dis["Average positive particle concentration [mol.m-3]"].entries,
            sei_thickness_m=float(dis["X-averaged negative SEI thickness [m]"].entries[0]),
            eps_am_neg=float(dis["X-averaged negative electrode active material volume fraction"].entries[0]),
            eps_am_pos=float(dis["X-averaged positive electrode active material volume fraction"].entries[0]),
            rest_voltage_v=float(rest["Voltage [V]"].entries[-1]),
            current_a=self.rpt_current_a,
            summary=summary,
        ))


def seconds(value) -> float:
    """PyBaMM reports times as TimerTime objects; a plain float of seconds."""
    return float(getattr(value, "value", value) or 0.0)


_ENGINES: dict = {}


def get_aging_engine(design: Design, protocol_id: str, temperature_k: float) -> AgingEngine:
    """The worker-process cache: one built engine per (design, protocol, temperature)."""
    key = (design.content_hash, protocol_id, round(temperature_k, 6))
    if key not in _ENGINES:
        protocol = next(p for p in design.protocols if p.protocol_id == protocol_id)
        _ENGINES[key] = AgingEngine(design, protocol, temperature_k)
    return _ENGINES[key]
