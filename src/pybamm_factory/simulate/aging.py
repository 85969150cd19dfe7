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
import math
import re
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pybamm

from ..design.spec import Aging, Design, Protocol
from ..labels.limits import lithium_rules
from ..parameters import LAM_ACTIVATION, LAM_BREAK_IN, LAM_BREAK_IN_TIME, LAM_REFERENCE_TEMPERATURE_K, make_model, parameter_values
from ..protocols import get_kind
from ..protocols.base import DISCHARGE_CURRENT
from .inputs import apply_fixed, set_inputs
from .jumps import CycleEnd, Slope, curvature, cycles_until, extrapolate, jump_length, keeps_amounts, slope
from .limits import CpuBudget, SampleTimeLimit
from .pybamm_adapter import (
    built_step_models,
    cached_on_model,
    forget_last_solution,
    log_error,
    log_step,
    log_termination,
    set_experiment,
    state_blocks,
    state_model,
    state_vector,
    state_with_vector,
    step_key,
    step_value,
    timer_seconds,
)

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
    "X-averaged negative electrode porosity",
]

# Degradation totals kept per RPT (PyBaMM variable -> column name), read from the state at
# the end of the RPT. They are PyBaMM's summary variables too, but evaluating them at one
# state costs a fraction of building the summary over every cycle of the block.
SUMMARY_COLUMNS = {
    "Throughput capacity [A.h]": "throughput_ah",
    "Loss of lithium inventory [%]": "lli_pct",
    # the same loss in moles: the labels turn it into A.h and into % of the fresh capacity,
    # the convention of many degradation-mode analyses (lli_pct is % of all lithium in the particles)
    "Total lithium lost from particles [mol]": "lli_mol",
    "Loss of active material in negative electrode [%]": "lam_ne_pct",
    "Loss of active material in positive electrode [%]": "lam_pe_pct",
    "Loss of capacity to negative lithium plating [A.h]": "plating_loss_ah",
    "Loss of capacity to negative SEI [A.h]": "sei_loss_ah",
    "Loss of capacity to negative SEI on cracks [A.h]": "sei_cracks_loss_ah",
}

# Degradation measures that set the jump length (PyBaMM variable -> factor to % of the
# nominal capacity; the A.h ones are scaled per engine). Capacity lost to plating is
# not among them: with partially reversible plating it rises and falls within a cycle
# and after every slow RPT discharge (which strips it), so its cycle-to-cycle change is
# not a trend; the plated lithium that stays lost is part of the lithium inventory.
JUMP_MEASURES = {
    "Loss of lithium inventory [%]": 1.0,
    "Loss of active material in negative electrode [%]": 1.0,
    "Loss of active material in positive electrode [%]": 1.0,
    "Loss of capacity to negative SEI [A.h]": None,
}
# Without jumps but with fade-triggered RPTs, cycles are solved this many at a time and
# the RPT taken from the cycle that crossed the step.
EXACT_CHUNK_CYCLES = 10
# State variables that hold amounts and cannot be negative: a jump never drives them
# below zero (extrapolating a falling plated-lithium inventory past zero would create lithium).
NONNEGATIVE_STATE = re.compile(r"SEI|plating|dead lithium|active material volume fraction|particle concentration"
                               r"|porosity times concentration|Loss of lithium due to loss", re.IGNORECASE)
# A failure this many cycles or fewer after a jump is retried from before the jump, and
# named in the reason if it is not cured.
JUMP_SUSPECT_CYCLES = 10

RPT_DISCHARGE_STEP = 3
RPT_REST_BEFORE_DISCHARGE = 2
RPT_BASE_STEPS = 5
PULSE_SECONDS = 10.0
PULSE_READ_S = (0.1, 10.0)  # resistance read this long after a pulse starts



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
    elapsed_s: float = math.nan  # time since the start of the first RPT, at this RPT's discharge
    pulses: list = field(default_factory=list)  # (soc, resistance at 0.1 s, at 10 s) per pulse
    # x-averaged negative-electrode porosity at the RPT discharge (moves only where the
    # design turns on SEI or plating porosity change); the EIS carries it
    porosity_neg: float = math.nan
    # positive electrode's mean lithiation (fraction of its maximum concentration) at the start
    # (top) and end (bottom) of the RPT discharge: the window a degradation-mode analysis maps
    pe_lithiation_top: float = math.nan
    pe_lithiation_bottom: float = math.nan


@dataclass
class AgingRun:
    snapshots: list[RptSnapshot] = field(default_factory=list)
    status: str = "ok"
    failure_reason: str = ""
    cycles_completed: int = 0  # aging cycles represented, solved or jumped
    cycles_solved: int = 0  # aging cycles solved exactly
    jumps: int = 0
    largest_jump_cycles: int = 0
    last_jump: tuple[int, int] | None = None  # (cycle the last jump left, its length)
    jump_log: list[tuple[int, int]] = field(default_factory=list)  # (from cycle, length) of every jump kept
    jump_retries: int = 0  # jumps taken back because the solve after them failed
    last_slope: Slope | None = field(default=None, repr=False)  # the latest measured trend
    rpt_cycles: list[int] = field(default_factory=list)  # cycles of the RPTs after cycle 0
    solve_time_s: float = 0.0  # wall time of the experiment solves
    solver_time_s: float = 0.0  # PyBaMM's own solve time of those steps (Solution.solve_time)
    budget: CpuBudget = field(default_factory=lambda: CpuBudget(None), repr=False)

    def record_jump(self, from_cycle: int, cycles: int) -> None:
        self.jump_log.append((from_cycle, cycles))
        self.jumps += 1
        self.largest_jump_cycles = max(self.largest_jump_cycles, cycles)
        self.last_jump = (from_cycle, cycles)

    def undo_jump(self, cycles: int) -> None:
        """A jump taken back (the solve after it failed): counted as a retry."""
        self.jumps -= 1
        self.jump_retries += 1
        self.last_jump = None
        self.jump_log.pop()
        self.largest_jump_cycles = max((n for _, n in self.jump_log), default=0)

    def undo_jumps_since(self, kept: int) -> None:
        """Every jump after the first ``kept`` taken back (their stretch is solved again
        without jumps): counted as retries."""
        while len(self.jump_log) > kept:
            self.undo_jump(self.jump_log[-1][1])

    def after_jump_note(self, cycle: int) -> str:
        """Says so when a failure comes within a few cycles after a jump: it may be the
        extrapolated state, not the physics, so it is never passed on as a cell's fate."""
        if self.last_jump is None:
            return ""
        start, n = self.last_jump
        if cycle - (start + n) > JUMP_SUSPECT_CYCLES:
            return ""
        return f" ({cycle - start - n} cycles after a jump of {n} cycles from cycle {start})"


class RptSchedule:
    """Where the reference tests fall: forced cycles, or every ``rpt_interval_cycles``
    and (with ``rpt_fade_step``) whenever the RPT capacity is expected to have lost
    another ``rpt_fade_step`` of its first value since the last RPT.

    Between RPTs only the aging cycles' discharge capacity is seen, and it fades at its
    own pace: faster than the slow RPT discharge where resistance grows, slower where
    loss of active material shows first at low rate. So the step is set in aging
    capacity, counted from the stretch's own first capacity (a fixed ladder of levels
    would fall behind and ask for an RPT after every cycle), and scaled by how much RPT
    fade the last stretch's aging fade came with (``rpt_per_aging_fade``, 1 until two
    RPTs with fade between them are known; kept within [1/4, 4]). Every RPT then marks
    about one step of fade in the measure the labels use, so a cell gets about
    ``(1 - stop_soh) / rpt_fade_step`` RPTs before its end of life whatever its mode mix.
    """

    RATIO_BOUNDS = (0.25, 4.0)

    def __init__(self, aging: Aging, forced=None):
        self.horizon = aging.max_cycles
        self.interval = aging.rpt_interval_cycles
        self.forced = sorted(int(c) for c in forced) if forced is not None else None
        self.fade_step = None if self.forced is not None else aging.rpt_fade_step
        self.first_capacity_ah: float | None = None
        self.stretch_capacity_ah: float | None = None
        self.latest_capacity_ah: float | None = None  # the stretch's latest aging capacity
        self.first_rpt_ah: float | None = None
        self.rpt_per_aging_fade = 1.0

    def stretch_end(self, cycle: int) -> int:
        """The cycle of the next RPT at the latest; starts a new stretch."""
        self.stretch_capacity_ah = self.latest_capacity_ah = None
        if self.forced is not None:
            later = [c for c in self.forced if c > cycle]
            return min(later[0], self.horizon) if later else self.horizon
        return min(cycle + self.interval, self.horizon)

    def note_rpt(self, previous_rpt_ah: float, rpt_ah: float) -> None:
        """After an RPT: learn the ratio of RPT fade to aging fade over the stretch."""
        if self.first_rpt_ah is None:
            self.first_rpt_ah = previous_rpt_ah
        if self.first_capacity_ah is None or self.stretch_capacity_ah is None or self.latest_capacity_ah is None:
            return
        aging_fade = (self.stretch_capacity_ah - self.latest_capacity_ah) / self.first_capacity_ah
        rpt_fade = (previous_rpt_ah - rpt_ah) / self.first_rpt_ah
        if self.fade_step is None or aging_fade < 0.25 * self.fade_step or rpt_fade <= 0:
            return  # too little fade in the stretch to measure the ratio
        low, high = self.RATIO_BOUNDS
        self.rpt_per_aging_fade = float(np.clip(rpt_fade / aging_fade, low, high))

    def _level_ah(self) -> float:
        step = self.fade_step / self.rpt_per_aging_fade
        return self.stretch_capacity_ah - step * self.first_capacity_ah

    def reached_fade_step(self, capacity_ah: float) -> bool:
        if self.fade_step is None or not np.isfinite(capacity_ah):
            return False
        if self.first_capacity_ah is None:
            self.first_capacity_ah = capacity_ah
        self.latest_capacity_ah = capacity_ah
        if self.stretch_capacity_ah is None:
            self.stretch_capacity_ah = capacity_ah
            return False
        return capacity_ah <= self._level_ah()

    def cycles_to_fade_step(self, capacity_ah: float, rate_ah_per_cycle: float) -> float:
        if self.fade_step is None or self.stretch_capacity_ah is None:
            return math.inf
        return cycles_until(capacity_ah, rate_ah_per_cycle, self._level_ah())


def rpt_breaks_physics(previous: RptSnapshot, rpt: RptSnapshot) -> bool:
    """Whether an RPT's lithium books break the labels' rules
    (:func:`~pybamm_factory.labels.limits.lithium_rules`), against the RPT before it."""
    absent = {"lli_pct": 0.0, "lam_ne_pct": 0.0, "lam_pe_pct": 0.0, "plating_loss_ah": 0.0}  # not in every model
    books = pd.DataFrame([{**absent, **s.summary, "cycle": s.cycle, "capacity_ah": float(np.ptp(s.discharged_ah))}
                          for s in (previous, rpt)])
    return any(mask.any() for mask, _ in lithium_rules(books))


def jumped_state(state, y: np.ndarray, time_s: float):
    """A one-point PyBaMM solution holding an extrapolated state, to start the next
    solve from (the model and inputs of the state it replaces)."""
    return state_with_vector(state, y, time_s)


class _FailureRecorder(pybamm.callbacks.Callback):
    """Keeps PyBaMM's own words when an experiment stops early."""

    def __init__(self):
        self.messages: list[tuple[str, str]] = []

    def on_experiment_error(self, logs):
        self.messages.append(("failed", f"solver error: {str(log_error(logs))[:300]}"))

    def on_experiment_infeasible_event(self, logs):
        ops = log_step(logs)
        self.messages.append(("infeasible", f"event '{log_termination(logs)}' during '{ops}'"))

    def on_experiment_infeasible_time(self, logs):
        ops = log_step(logs)
        self.messages.append(("infeasible", f"step duration exceeded during '{ops}'"))


def make_solver(design: Design):
    cls = getattr(pybamm, design.solver.name)
    if design.solver.compile:
        return cls(rtol=design.solver.rtol, atol=design.solver.atol, options={"compile": True})
    return cls(rtol=design.solver.rtol, atol=design.solver.atol)


def base_parameter_values(design: Design) -> pybamm.ParameterValues:
    pv = parameter_values(design.parameter_set)
    apply_fixed(pv, design.fixed)
    return pv


def apply_lam_activation(pv: pybamm.ParameterValues, design: Design, temperature_k: float) -> None:
    """Give each electrode's LAM rate the factory's terms (in place), where the design
    varies or sets them, any of them possibly an input:

    - the Arrhenius factor exp(Ea / R (1 / 298.15 K - 1 / T)) of its LAM activation energy;
    - the break-in (1 + factor exp(-t / tau)), t the simulation time (the cell's age: cycle
      jumps carry it forward) and tau ``LAM_BREAK_IN_TIME`` in hours.
    """

    def term(name):
        if name in design.varied:
            return pybamm.InputParameter(name)
        value = pv[name]
        # a rate the design already scales (a varied "(factor)") is an expression: keep it
        return value if isinstance(value, pybamm.Symbol) else pybamm.Scalar(float(value))

    breaks_in = {rate: energy for energy, rate in LAM_BREAK_IN.items()}
    for energy, rate in LAM_ACTIVATION.items():
        break_in = breaks_in[rate]
        if not (design.sets(energy) or design.sets(break_in)):
            continue
        k = term(rate)
        if design.sets(energy):
            factor = (1.0 / LAM_REFERENCE_TEMPERATURE_K - 1.0 / temperature_k) / pybamm.constants.R.value
            k = k * pybamm.exp(term(energy) * factor)
        if design.sets(break_in):
            k = k * (1 + term(break_in) * pybamm.exp(-pybamm.t / (3600.0 * term(LAM_BREAK_IN_TIME))))
        pv[rate] = k


class AgingEngine:
    """A built aging simulation for one (design, protocol, ambient temperature)."""

    def __init__(self, design: Design, protocol: Protocol, temperature_k: float):
        # PyBaMM logs every failed step as an error; the recorder keeps its words for the
        # solver log, and a step that fails after a jump is retried, so keep the console quiet.
        pybamm.set_logging_level("CRITICAL")
        logging.getLogger("pybamm").setLevel(logging.CRITICAL)
        self.design = design
        self.protocol = protocol
        self.kind = get_kind(protocol.kind)
        pv = base_parameter_values(design)
        pv.update({"Ambient temperature [K]": temperature_k, "Initial temperature [K]": temperature_k})
        set_inputs(pv, design.varied)
        apply_lam_activation(pv, design, temperature_k)
        self.parameter_values = pv
        self.nominal_capacity_ah = float(pv["Nominal cell capacity [A.h]"])
        self.rpt_current_a = design.aging.rpt_discharge_c_rate * self.nominal_capacity_ah
        self._experiments: dict = {}  # (cycle count, "rpt" | "lead-in" | "") -> pybamm.Experiment
        self._rpt_signature = None
        self.set_rpt_capacity(None)
        # the aging cycle is built per sample and per stretch (its durations follow the
        # sample's factors and the latest RPT capacity); see prepare()
        self.aging_cycle = self.first_cycle = None
        self._cycle_signature = None
        self._capacity_steps: tuple[int, ...] = ()
        t0 = time.perf_counter()
        model = make_model(design.model, design.model_options)
        self.summary_columns = {k: v for k, v in SUMMARY_COLUMNS.items() if k in model.variables}
        self.jump_measures = {k: (f if f is not None else 100.0 / self.nominal_capacity_ah)
                              for k, f in JUMP_MEASURES.items() if k in model.variables}
        self.sim = pybamm.Simulation(
            model,
            parameter_values=pv,
            experiment=pybamm.Experiment([self.rpt_cycle]),
            var_pts=design.mesh or None,
            solver=make_solver(design),
            output_variables=OUTPUT_VARIABLES,
        )
        self.build_time_s = time.perf_counter() - t0
        self._built = False
        self._model_of_states = None  # the built model whose states the cycle ends hold

    def _rpt_steps(self, q_ref_ah: float | None = None):
        """The reference test: CC-CV charge, rest, slow discharge, rest; with
        ``aging.rpt_pulse``, then a pulse at each of its SOCs (reached by charging against
        ``q_ref_ah``, the previous RPT's capacity) and a slow discharge back to empty."""
        p, a, q = self.protocol, self.design.aging, self.nominal_capacity_ah
        upper = p.upper_voltage_v if a.rpt_upper_voltage_v is None else a.rpt_upper_voltage_v
        lower = p.lower_voltage_v if a.rpt_lower_voltage_v is None else a.rpt_lower_voltage_v
        # at the RPT chamber temperature where the design names one (a step temperature
        # is the ambient one while the step runs; the aging steps keep the sample's)
        at = {} if a.rpt_temperature_c is None else {"temperature": a.rpt_temperature_c + 273.15}
        steps = [
            pybamm.step.current(-a.rpt_charge_c_rate * q, termination=f"{upper} V", **at),
            pybamm.step.voltage(upper, termination=f"{a.rpt_cv_cutoff_c_rate * q} A", **at),
            pybamm.step.rest(a.rpt_rest_min * 60, **at),
            pybamm.step.current(self.rpt_current_a, termination=f"{lower} V", **at),
            pybamm.step.rest(a.rpt_rest_min * 60, **at),
        ]
        pulse = a.rpt_pulse
        if pulse is None:
            return tuple(steps)
        q_ref = q if q_ref_ah is None else q_ref_ah
        charge_a, pulse_a = a.rpt_charge_c_rate * q, pulse.c_rate * q
        level = 0.0
        for soc in pulse.socs:
            steps += [
                pybamm.step.current(-charge_a, duration=3600.0 * (soc - level) * q_ref / charge_a,
                                    termination=f"> {upper} V", **at),
                pybamm.step.rest(pulse.rest_min * 60, **at),
                pybamm.step.current(pulse_a, duration=PULSE_SECONDS, period=PULSE_READ_S[0],
                                    termination=f"< {lower} V", **at),
                pybamm.step.rest(pulse.rest_min * 60, **at),
            ]
            level = soc - pulse_a * PULSE_SECONDS / 3600.0 / q_ref
        steps += [pybamm.step.current(self.rpt_current_a, termination=f"{lower} V", **at),
                  pybamm.step.rest(a.rpt_rest_min * 60, **at)]
        return tuple(steps)

    def set_rpt_capacity(self, q_ref_ah: float | None) -> None:
        """Rebuild the RPT's steps for the latest capacity when its durations change
        (only with pulses: they position the cell by charge counted against it)."""
        steps = self._rpt_steps(q_ref_ah if q_ref_ah is None or np.isfinite(q_ref_ah) else None)
        signature = _step_signature(steps)
        if signature != self._rpt_signature:
            self._rpt_signature = signature
            self.rpt_cycle = steps
            self._experiments = {k: v for k, v in self._experiments.items() if k[1] != "rpt"}

    def inputs_for(self, row: dict) -> dict:
        inputs = {name: float(row[name]) for name in self.design.varied}
        inputs.update(self.kind.inputs(self.protocol, row, self.nominal_capacity_ah))
        return inputs

    def prepare(self, row: dict, q_ref_ah: float | None = None) -> dict:
        """Build the sample's aging cycle (and the lead-in cycle that follows an RPT) for
        the latest RPT capacity ``q_ref_ah`` (default: nominal); returns its inputs.

        Steps are rebuilt only when a duration changes, so a kind whose cycle does not
        depend on the capacity keeps one set of step objects (and its cached experiments).
        """
        q_nom = self.nominal_capacity_ah
        q_ref = q_nom if q_ref_ah is None or not np.isfinite(q_ref_ah) else float(q_ref_ah)
        cycle = self.kind.cycle_steps(self.protocol, row, q_nom, q_ref)
        lead_in = self.kind.lead_in_steps(self.protocol, row, q_nom, q_ref)
        signature = (_step_signature(lead_in), _step_signature(cycle))
        if signature != self._cycle_signature:
            self._cycle_signature = signature
            self.aging_cycle = cycle
            self.first_cycle = lead_in + cycle if lead_in else cycle
            self._experiments = {k: v for k, v in self._experiments.items() if k[1] == "rpt"}
            self._capacity_steps = self._discharge_step_indices(cycle) if self.kind.measures_capacity else ()
        return self.inputs_for(row)

    @staticmethod
    def _discharge_step_indices(cycle) -> tuple[int, ...]:
        def is_discharge(step):
            value = step_value(step)
            return isinstance(value, pybamm.InputParameter) and value.name == DISCHARGE_CURRENT
        return tuple(i for i, step in enumerate(cycle) if is_discharge(step))

    def ensure_built(self, row: dict):
        """Build, discretise and set up the solver of every step, once.

        A one-cycle warm-up solve of the RPT and an aging cycle (with its lead-in) for
        ``row`` does it: PyBaMM sets a step's solver up on its first solve, and doing that
        here keeps the set-up (and its memory) out of the samples.
        """
        inputs = self.prepare(row)
        if not self._built:
            t0 = time.perf_counter()
            set_experiment(self.sim, pybamm.Experiment([self.rpt_cycle, self.first_cycle, self.aging_cycle]))
            try:
                self.sim.solve(inputs=inputs)
            except Exception:  # noqa: BLE001 - a failed warm-up still leaves the models built
                if built_step_models(self.sim) is None:
                    self.sim.build_for_experiment(inputs=inputs)
            self._forget_solution()
            self.build_time_s += time.perf_counter() - t0
            self._built = True

    def _forget_solution(self):
        """Drop the simulation's reference to its last solution (it only costs memory)."""
        forget_last_solution(self.sim)

    def _solve(self, cycles, inputs, start, recorder, out: AgingRun):
        # Steps with input-valued currents share their built models across
        # experiments, so the experiment can change between blocks without a rebuild.
        key = (len(cycles), "rpt" if cycles[0] is self.rpt_cycle else ("lead-in" if cycles[0] is self.first_cycle else ""))
        if key not in self._experiments:
            self._experiments[key] = pybamm.Experiment(cycles)
        set_experiment(self.sim, self._experiments[key])
        out.budget.check()
        sol = self.sim.solve(inputs=inputs, starting_solution=start, callbacks=[recorder])
        out.solver_time_s += timer_seconds(sol.solve_time)  # this block's steps only (start is a state)
        return sol

    def run(self, row: dict, rpt_cycles=None) -> AgingRun:
        """Solve one sample's aging experiment; never raises for physics failures.

        ``rpt_cycles`` forces the reference tests to those cycles (the benchmark uses it
        to put an exact run's RPTs where a jumped run put them); by default they follow
        the design: every ``rpt_interval_cycles`` and, with ``rpt_fade_step``, each time
        the RPT capacity is expected to have lost another step (see :class:`RptSchedule`).
        With ``sample_cpu_limit_s`` a run over its CPU budget stops as failed.
        """
        a = self.design.aging
        self.ensure_built(row)
        inputs = self.inputs_for(row)
        out = AgingRun()
        recorder = _FailureRecorder()
        schedule = RptSchedule(a, rpt_cycles)
        t0 = time.perf_counter()
        out.budget = CpuBudget(a.sample_cpu_limit_s)
        try:
            with out.budget.interrupting():
                self._rpts_and_stretches(row, inputs, schedule, recorder, out)
        except SampleTimeLimit as exc:
            out.status = "failed"
            at = out.cycles_completed
            out.failure_reason = f"{exc} after cycle {at}{out.after_jump_note(at)}"
        except Exception as exc:  # a solver or model error is a row, never a crash
            out.status = "failed"
            message = str(exc).splitlines()[0][:300] if str(exc) else ""
            at = out.cycles_completed
            out.failure_reason = f"{type(exc).__name__} after cycle {at}{out.after_jump_note(at)}: {message}"
        if out.status == "failed" and out.budget.spent() and "CPU-time limit" not in out.failure_reason:
            # the interrupt surfaced as a solver error (or was swallowed and a later step
            # failed): the cause is the spent budget
            at = out.cycles_completed
            out.failure_reason = f"{out.budget.message()} after cycle {at}{out.after_jump_note(at)}"
        out.solve_time_s = time.perf_counter() - t0
        self._forget_solution()
        if out.status == "ok" and not out.snapshots:
            out.status, out.failure_reason = "failed", "no reference test completed"
        return out

    def _rpts_and_stretches(self, row: dict, inputs, schedule: RptSchedule, recorder, out: AgingRun):
        """The fresh RPT, then aging stretches each closed by an RPT, until the horizon,
        the stop SOH or a failure."""
        a = self.design.aging
        cycle = 0
        self.set_rpt_capacity(None)
        sol = self._solve([self.rpt_cycle], inputs, None, recorder, out)
        self._take_snapshot(sol, 0, out, recorder, inputs)
        state = sol.last_state
        while out.status == "ok" and cycle < schedule.horizon:
            inputs = self.prepare(row, np.ptp(out.snapshots[-1].discharged_ah))
            start, jumps_before = (state, cycle), len(out.jump_log)
            kept = (out.cycles_solved, out.last_slope)  # what a retry of the stretch puts back
            for exact in (False, True):
                state, cycle = self._age(*start, schedule, inputs, recorder, out, jumps=not exact)
                out.cycles_completed = cycle
                if out.status != "ok":
                    break
                self.set_rpt_capacity(np.ptp(out.snapshots[-1].discharged_ah))
                sol = self._solve([self.rpt_cycle], inputs, state, recorder, out)
                self._take_snapshot(sol, cycle, out, recorder, inputs)
                if (out.status != "ok" or exact or len(out.jump_log) == jumps_before
                        or not rpt_breaks_physics(out.snapshots[-2], out.snapshots[-1])):
                    break
                # a reference test whose lithium books do not balance after a stretch with
                # jumps: the jumped state, not the cell (seen: plated-lithium loss of
                # -0.25 A.h in the RPT 2 cycles after a jump, none when solved exactly);
                # the stretch is solved again without jumps
                out.snapshots.pop()
                out.undo_jumps_since(jumps_before)
                out.cycles_solved, out.last_slope = kept
            if out.status != "ok":
                break
            out.rpt_cycles.append(cycle)
            schedule.note_rpt(np.ptp(out.snapshots[-2].discharged_ah), np.ptp(out.snapshots[-1].discharged_ah))
            state = sol.last_state
            q0 = np.ptp(out.snapshots[0].discharged_ah)
            if np.ptp(out.snapshots[-1].discharged_ah) < a.stop_soh * q0:
                break

    def _age(self, state, cycle: int, schedule: RptSchedule, inputs, recorder, out: AgingRun, jumps: bool = True):
        """Age from ``cycle`` to the next reference test: exact cycles, and jumps where
        the design asks for them. Returns the state to start the RPT from and its cycle.

        A solve that fails within JUMP_SUSPECT_CYCLES after a jump is not taken as the
        cell's fate: the engine goes back to the state before the jump and retries with
        half the jump (exactly, once that is below the floor). Only a failure of cycles
        solved without a recent jump ends the sample.
        With ``jumps=False`` the stretch is solved without jumps (the caller's retry of a
        stretch whose RPT broke the lithium books).
        """
        jump = self.design.aging.cycle_jump if jumps else None
        end = schedule.stretch_end(cycle)
        stretch_start = cycle
        first_after_rpt = True
        earlier: Slope | None = out.last_slope  # the trend before the RPT still holds after it
        before_jump = None  # (state, cycle, end, slope, curvature, length) of a recent jump
        just_jumped = False  # the block being solved is the first after a jump
        while cycle < end:
            left = end - cycle
            if jump is None:
                n = left if schedule.fade_step is None else min(left, EXACT_CHUNK_CYCLES)
            else:
                # the first cycle after an RPT starts discharged and re-plates what the
                # slow RPT discharge stripped: it is solved on top, not used for slopes
                n = min(jump.exact_cycles + (1 if first_after_rpt else 0), left)
            try:
                blocks = [self.first_cycle] + [self.aging_cycle] * (n - 1) if first_after_rpt else [self.aging_cycle] * n
                sol = self._solve(blocks, inputs, state, recorder, out)
                done = self._count_aging_cycles(sol, n, recorder)
                error = None
            except pybamm.SolverError as exc:
                out.budget.check()  # a spent budget, not the physics, stopped this solve
                sol, done, error = None, 0, exc
            if (error is not None or done < n or recorder.messages) and before_jump is not None:
                state, cycle, last_end, now, curv, n_jump = before_jump
                recorder.messages.clear()
                out.undo_jump(n_jump)
                before_jump = None
                n_jump = n_jump // 2 if n_jump // 2 >= jump.min_cycles else 0
                just_jumped = bool(n_jump)
                if n_jump:
                    before_jump = (state, cycle, last_end, now, curv, n_jump)
                    state = self._jump(state, last_end, now, curv, n_jump)
                    out.record_jump(cycle, n_jump)
                    cycle += n_jump
                out.cycles_completed = cycle
                continue
            if error is not None:
                raise error
            out.cycles_solved += done
            if done < n or recorder.messages:
                self._mark(out, recorder, f"stopped after {done} of {n} aging cycles")
                failed_at = cycle + done + 1
                out.failure_reason = f"cycle {failed_at}{out.after_jump_note(failed_at)}: {out.failure_reason}"
                return state, cycle + done
            ends: list[CycleEnd] = []
            step_reached = False
            for k, cyc in enumerate(sol.cycles[1:1 + done]):
                cycle += 1
                out.cycles_completed = cycle
                q = np.nan if (first_after_rpt and k == 0) else self._aging_capacity_ah(cyc)
                if schedule.reached_fade_step(q):
                    if not just_jumped:
                        return cyc.last_state, cycle
                    # the cycles after a jump are solved in full before an RPT, so a
                    # reference test never starts from a state a jump has just made
                    step_reached = True
                if jump is not None:
                    ends.append(self._cycle_end(cyc, cycle, q))
            first_after_rpt = just_jumped = False
            state = sol.last_state
            if step_reached:
                return state, cycle
            if before_jump is not None and cycle - before_jump[1] - before_jump[-1] > JUMP_SUSPECT_CYCLES:
                before_jump = None
            if jump is None or len(ends) < 2:
                continue
            now = slope(ends[-2], ends[-1])
            curv = curvature(earlier, now)
            if curv is None and len(ends) >= 3:
                curv = curvature(slope(ends[-3], ends[-2]), now)
            earlier = out.last_slope = now
            to_step = schedule.cycles_to_fade_step(ends[-1].capacity_ah, now.capacity_ah)
            if to_step < jump.min_cycles and cycle - stretch_start >= 2 * jump.min_cycles:
                # the fade step is due sooner than the shortest jump: the RPT comes now,
                # within a floor's worth of cycles of the step, rather than after
                # solving the last few cycles one pair at a time (not in the first
                # cycles after an RPT, whose capacity still settles from the slow test)
                return state, cycle
            room = min(end - cycle, to_step, self._positive_room(ends[-1], now),
                       self._filling_room(ends[-1], now, inputs)) - jump.exact_cycles
            n_jump = jump_length(now, curv, room, jump.tolerance, jump.min_cycles, jump.max_cycles)
            blocks = self._nonnegative_blocks(self._model_of_states)
            while n_jump and not keeps_amounts(ends[-1], now, curv, n_jump, blocks):
                n_jump = n_jump // 2 if n_jump // 2 >= jump.min_cycles else 0
            if n_jump == 0:
                continue
            before_jump = (state, cycle, ends[-1], now, curv, n_jump)
            state = self._jump(state, ends[-1], now, curv, n_jump)
            out.record_jump(cycle, n_jump)
            cycle += n_jump
            just_jumped = True
            out.cycles_completed = cycle
        return state, cycle

    def _positive_room(self, end: CycleEnd, now: Slope) -> float:
        """Cycles a jump may cover before a falling amount that cannot be negative
        (SEI, plated and dead lithium, active material, particle and electrolyte lithium)
        loses half of what is left. Entries below a millionth of their block's largest
        value are left to the clipping in :meth:`_jump` (they are round-off)."""
        room = math.inf
        for block in self._nonnegative_blocks(self._model_of_states):
            y, dy = end.y[block], now.y[block]
            scale = np.abs(y).max() if y.size else 0.0
            falling = (dy < 0) & (y > 1e-6 * scale)
            if falling.any():
                room = min(room, float(np.min(0.5 * y[falling] / -dy[falling])))
        return room

    def _filling_room(self, end: CycleEnd, now: Slope, inputs: dict) -> float:
        """Cycles a jump may cover before a rising particle concentration uses up half of
        what is left below the electrode's maximum concentration.

        Loss of active material squeezes the lithium an electrode keeps into less host,
        so its stoichiometry at full charge climbs towards 1; extrapolated past that, the
        state has no physical meaning and the solver stalls on it (seen at 10 and 40 degC
        after 1,100 and 9,100 cycles, where a jumped negative electrode sat at
        stoichiometry 0.9992-1.0 and the next solve ran for over an hour). Checked in
        concentration, not in the lithium coordinates the jump moves."""
        model = self._model_of_states
        if model is None:
            return math.inf
        y_end = self.from_lithium_coordinates(end.y, model)
        y_next = self.from_lithium_coordinates(end.y + now.y, model)
        room = math.inf
        for block, ceiling in self._concentration_ceilings(model, inputs):
            c, dc = y_end[block], y_next[block] - y_end[block]
            rising = dc > 0
            if rising.any():
                left = np.maximum(ceiling - c[rising], 0.0)
                room = min(room, float(np.min(0.5 * left / dc[rising])))
        return room

    def _concentration_ceilings(self, model, inputs: dict) -> list[tuple[slice, float]]:
        """(particle concentration state slice, maximum concentration in state units)."""
        scales = cached_on_model(model, "particle_scales", lambda: [  # found once per built model
            (b.slices[0], electrode, b.scale.evaluate() if hasattr(b.scale, "evaluate") else b.scale)
            for b in state_blocks(model) for electrode in ("negative", "positive")
            if b.name.endswith(f"{electrode} particle concentration [mol.m-3]")])
        out = []
        for block, electrode, scale in scales:
            try:
                ceiling = self._max_concentration(electrode, inputs) / float(scale)
            except (TypeError, ValueError):
                continue  # a scale that is not a number
            if math.isfinite(ceiling):  # NaN: a maximum that is a function of state, not bounded here
                out.append((block, ceiling))
        return out

    def _max_concentration(self, electrode: str, inputs: dict) -> float:
        """An electrode's maximum concentration [mol.m-3]: the parameter set's, or this run's
        input where the design varies it; NaN where it is a function of state."""
        c_max = self.parameter_values[f"Maximum concentration in {electrode} electrode [mol.m-3]"]
        if isinstance(c_max, pybamm.InputParameter):
            c_max = inputs.get(c_max.name, math.nan)
        try:
            return float(c_max)
        except (TypeError, ValueError):
            return math.nan

    def _cycle_end(self, cyc, cycle: int, capacity_ah: float) -> CycleEnd:
        end = cyc.last_state
        measures = [float(end[name].entries[-1]) * scale for name, scale in self.jump_measures.items()]
        self._model_of_states = state_model(end)
        y = self.to_lithium_coordinates(state_vector(end), state_model(end))
        return CycleEnd(cycle, float(end.t[-1]), y, np.array(measures), capacity_ah)

    def _jump(self, state, end: CycleEnd, now: Slope, curv, cycles: int):
        y, t = extrapolate(end, now, curv, cycles)
        model = state_model(state.last_state)
        for block in self._nonnegative_blocks(model):
            y[block] = np.maximum(y[block], 0.0)
        return jumped_state(state, self.from_lithium_coordinates(y, model), t)

    @staticmethod
    def _nonnegative_blocks(model) -> list[slice]:
        """State slices that hold amounts (never negative)."""
        if model is None:
            return []
        return cached_on_model(model, "nonnegative", lambda: [b.slices[0] for b in state_blocks(model)
                                                              if NONNEGATIVE_STATE.search(b.name) and len(b.slices) == 1])

    @staticmethod
    def _particle_pairs(model) -> list[tuple[slice, slice]]:
        """(particle concentration, active-material fraction) state slices per electrode,
        for models where loss of active material makes the fraction a state."""
        def find():
            slices = {b.name: b.slices[0] for b in state_blocks(model)}
            pairs = []
            for e in ("negative", "positive"):
                for prefix in (f"X-averaged {e}", e.capitalize()):
                    conc = f"{prefix} particle concentration [mol.m-3]"
                    frac = f"{prefix} electrode active material volume fraction"
                    if conc in slices and frac in slices:
                        pairs.append((slices[conc], slices[frac]))
                        break
            return pairs
        return cached_on_model(model, "particle_pairs", find)

    def to_lithium_coordinates(self, y: np.ndarray, model) -> np.ndarray:
        """The state with each particle concentration replaced by concentration x active
        fraction (lithium per electrode volume). Extrapolated in these coordinates, a jump
        keeps the cell's lithium exactly: every term of the inventory is then linear in
        the state (electrolyte lithium is already a porosity x concentration state)."""
        y = y.copy()
        for conc, frac in self._particle_pairs(model):
            y[conc] = y[conc] * np.repeat(y[frac], (conc.stop - conc.start) // (frac.stop - frac.start))
        return y

    def from_lithium_coordinates(self, y: np.ndarray, model) -> np.ndarray:
        y = y.copy()
        for conc, frac in self._particle_pairs(model):
            y[conc] = y[conc] / np.repeat(y[frac], (conc.stop - conc.start) // (frac.stop - frac.start))
        return y

    def _aging_capacity_ah(self, cyc) -> float:
        """Charge delivered by the cycle's discharge to the lower cut-off (nan if the kind
        has none, or a step of it was skipped)."""
        idx = self._capacity_steps
        if not idx or len(cyc.steps) != len(self.aging_cycle):
            return float("nan")
        total = 0.0
        for i in idx:
            step = cyc.steps[i]
            if isinstance(step, pybamm.EmptySolution):
                return float("nan")
            q = step["Discharge capacity [A.h]"].entries
            total += float(q[-1] - q[0])
        return total

    @staticmethod
    def _mark(out: AgingRun, recorder: _FailureRecorder, fallback: str):
        if recorder.messages:
            out.status, out.failure_reason = recorder.messages[0]
        else:
            out.status, out.failure_reason = "infeasible", fallback

    @staticmethod
    def _count_aging_cycles(sol, n_expected: int, recorder: _FailureRecorder) -> int:
        """Complete aging cycles in a block; the block's first cycle is the start state
        and, after a failure, its last one is the incomplete cycle."""
        in_block = len(sol.cycles) - 1
        if not recorder.messages and in_block >= n_expected:
            return n_expected
        return max(0, min(n_expected, in_block - 1))

    def _take_snapshot(self, sol, cycle: int, out: AgingRun, recorder: _FailureRecorder, inputs: dict):
        rpt = sol.cycles[-1] if len(sol.cycles) >= (2 if cycle else 1) else None
        if rpt is None or len(rpt.steps) < RPT_DISCHARGE_STEP + 1 or recorder.messages:
            self._mark(out, recorder, "incomplete")
            out.failure_reason = f"reference test at cycle {cycle}{out.after_jump_note(cycle)}: {out.failure_reason}"
            return
        dis = rpt.steps[RPT_DISCHARGE_STEP]
        rest = rpt.steps[RPT_REST_BEFORE_DISCHARGE]
        if isinstance(dis, pybamm.EmptySolution) or isinstance(rest, pybamm.EmptySolution):
            out.status = "infeasible"
            out.failure_reason = (f"reference test at cycle {cycle}{out.after_jump_note(cycle)}: its slow discharge "
                                  "was skipped (the cell was already at the lower cut-off after the charge)")
            return
        q = dis["Discharge capacity [A.h]"].entries
        end = sol.last_state
        summary = {col: float(end[name].entries[-1]) for name, col in self.summary_columns.items()}
        c_pos = dis["Average positive particle concentration [mol.m-3]"].entries
        c_pos_max = self._max_concentration("positive", inputs)
        out.snapshots.append(RptSnapshot(
            cycle=cycle,
            time_s=dis["Time [s]"].entries - dis["Time [s]"].entries[0],
            voltage_v=dis["Voltage [V]"].entries,
            discharged_ah=q - q[0],
            c_neg_avg=dis["Average negative particle concentration [mol.m-3]"].entries,
            c_pos_avg=c_pos,
            sei_thickness_m=float(dis["X-averaged negative SEI thickness [m]"].entries[0]),
            eps_am_neg=float(dis["X-averaged negative electrode active material volume fraction"].entries[0]),
            eps_am_pos=float(dis["X-averaged positive electrode active material volume fraction"].entries[0]),
            rest_voltage_v=float(rest["Voltage [V]"].entries[-1]),
            current_a=self.rpt_current_a,
            summary=summary,
            elapsed_s=float(dis["Time [s]"].entries[0]),
            pulses=self._pulses(rpt),
            porosity_neg=float(dis["X-averaged negative electrode porosity"].entries[0]),
            pe_lithiation_top=float(c_pos[0]) / c_pos_max,
            pe_lithiation_bottom=float(c_pos[-1]) / c_pos_max,
        ))


    def _pulses(self, rpt) -> list[tuple[float, float, float]]:
        """(soc, R at 0.1 s, R at 10 s) of each pulse of the RPT (NaN where a step was skipped)."""
        pulse = self.design.aging.rpt_pulse
        if pulse is None:
            return []
        current_a = pulse.c_rate * self.nominal_capacity_ah
        out = []
        for k, soc in enumerate(pulse.socs):
            i = RPT_BASE_STEPS + 4 * k
            if len(rpt.steps) < i + 3 or any(isinstance(rpt.steps[j], pybamm.EmptySolution) for j in (i + 1, i + 2)):
                out.append((soc, math.nan, math.nan))
                continue
            rested = float(rpt.steps[i + 1]["Voltage [V]"].entries[-1])
            t = rpt.steps[i + 2]["Time [s]"].entries
            v = rpt.steps[i + 2]["Voltage [V]"].entries
            reads = [float(np.interp(t[0] + dt, t, v)) if t[-1] - t[0] >= dt - 1e-9 else math.nan for dt in PULSE_READ_S]
            out.append((soc, *((rested - vr) / current_a for vr in reads)))
        return out


def _step_signature(steps) -> tuple:
    """What tells two step lists apart for the solver: PyBaMM's step identity (which leaves
    durations out) and the durations."""
    return tuple(step_key(step) for step in steps)


_ENGINES: dict = {}


def get_aging_engine(design: Design, protocol_id: str, temperature_k: float) -> AgingEngine:
    """The worker-process cache: one built engine per (design, protocol, temperature)."""
    key = (design.content_hash, protocol_id, round(temperature_k, 6))
    if key not in _ENGINES:
        protocol = next(p for p in design.protocols if p.protocol_id == protocol_id)
        _ENGINES[key] = AgingEngine(design, protocol, temperature_k)
    return _ENGINES[key]
