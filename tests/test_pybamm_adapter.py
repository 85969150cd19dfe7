"""The PyBaMM internals the factory relies on (simulate/pybamm_adapter.py), checked on a
real SPM. The mesh is coarse and the experiment has 2 steps, so the whole file runs in
a few seconds.

Each check names its wrapper and the installed PyBaMM version when it fails. If one
fails after a PyBaMM upgrade, the internal has changed: fix the wrapper (and its line
in the adapter's docstring), not the call sites.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pybamm
import pytest

from pybamm_factory.simulate import pybamm_adapter as adapter

CURRENT = "Discharge current [A]"
MESH = {"x_n": 4, "x_s": 4, "x_p": 4, "r_n": 6, "r_p": 6}
C_NEG = "X-averaged negative particle concentration [mol.m-3]"


@contextmanager
def wrapper(name: str):
    """Turn any failure inside into one that names the wrapper and the PyBaMM version."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - AttributeError, KeyError, TypeError, AssertionError alike
        raise AssertionError(
            f"pybamm_adapter.{name} no longer holds on PyBaMM {pybamm.__version__} (checked against "
            f"{adapter.PYBAMM_CHECKED}): {type(exc).__name__}: {exc}. PyBaMM changed an internal the factory "
            f"relies on; update {name} in src/pybamm_factory/simulate/pybamm_adapter.py") from exc


def _steps():
    """A discharge at an input-valued current (as the factory's protocols build them) and a rest."""
    current = pybamm.InputParameter(CURRENT)
    return current, pybamm.step.current(current, duration=120.0), pybamm.step.rest(60.0)


def _simulation(steps) -> pybamm.Simulation:
    return pybamm.Simulation(pybamm.lithium_ion.SPM(), parameter_values=pybamm.ParameterValues("Chen2020"),
                             experiment=pybamm.Experiment([tuple(steps)]), var_pts=MESH, solver=pybamm.IDAKLUSolver())


@pytest.fixture(scope="module")
def solved():
    """A simulation, its models before the first solve, its steps and its solution."""
    current, discharge, rest = _steps()
    sim = _simulation((discharge, rest))
    before = adapter.built_step_models(sim)
    sol = sim.solve(inputs={CURRENT: 5.0})
    return {"sim": sim, "before": before, "current": current, "discharge": discharge, "rest": rest, "sol": sol}


def test_built_step_models(solved):
    with wrapper("built_step_models"):
        assert solved["before"] is None, f"None before the first solve, got {type(solved['before']).__name__}"
        models = adapter.built_step_models(solved["sim"])
        assert isinstance(models, dict) and models, f"a non-empty dict once built, got {models!r}"
        for step in solved["sim"].experiment.steps:  # the experiment's own (processed) copies of the steps
            assert step.basic_repr() in models, f"keyed by step.basic_repr(): {step.basic_repr()!r} not in {list(models)}"
        for model in models.values():
            assert isinstance(model, pybamm.BaseModel) and model.is_discretised, f"built models as values, got {model!r}"


def test_set_experiment_reuses_the_built_models(solved):
    sim, discharge, rest = solved["sim"], solved["discharge"], solved["rest"]
    models = dict(adapter.built_step_models(sim))
    # the same steps in another experiment: one more cycle, and a discharge of another length
    longer = pybamm.step.current(solved["current"], duration=240.0)
    experiment = pybamm.Experiment([(discharge, rest), (longer, rest)])
    with wrapper("set_experiment"):
        adapter.set_experiment(sim, experiment)
        assert sim.experiment is experiment, "the simulation solves the experiment it was given"
        sol = sim.solve(inputs={CURRENT: 5.0}, starting_solution=solved["sol"].last_state)
        assert len(sol.cycles) == 3, f"the start state and the new experiment's 2 cycles, got {len(sol.cycles)}"
        last = sol.cycles[-1].steps[0]
        assert last.t[-1] - last.t[0] == pytest.approx(240.0), "the new experiment's step durations are used"
        after = adapter.built_step_models(sim)
        assert after.keys() == models.keys() and all(after[k] is models[k] for k in models), \
            "steps that differ only in duration share the built models: nothing is rebuilt"


def test_forget_last_solution():
    _, discharge, rest = _steps()
    sim = _simulation((discharge, rest))
    sol = sim.solve(inputs={CURRENT: 5.0})
    with wrapper("forget_last_solution"):
        assert "_solution" in vars(sim), "Simulation keeps its last solution in _solution"
        assert sim.solution is sol, "Simulation.solution is the private _solution"
        adapter.forget_last_solution(sim)
        assert sim.solution is None, "the simulation holds no solution after it is forgotten"
        again = sim.solve(inputs={CURRENT: 5.0}, starting_solution=sol.last_state)
        assert len(again.cycles) == 2, "a forgotten solution does not stop the next solve from a state"


def test_built_model_and_input_parameter_names():
    pv = pybamm.ParameterValues("Chen2020")
    pv.update({"Ambient temperature [K]": "[input]", "Negative electrode active material volume fraction": "[input]"})
    sim = pybamm.EISSimulation(pybamm.lithium_ion.SPM({"surface form": "differential"}), parameter_values=pv, var_pts=MESH)
    with wrapper("built_model"):
        assert adapter.built_model(sim) is None, "no built model before EISSimulation.build()"
        sim.build(inputs={"Ambient temperature [K]": 298.15, "Negative electrode active material volume fraction": 0.75})
        model = adapter.built_model(sim)
        assert isinstance(model, pybamm.BaseModel) and model.is_discretised, f"the discretised model, got {model!r}"
    with wrapper("input_parameter_names"):
        names = adapter.input_parameter_names(model)
        assert names == {"Ambient temperature [K]", "Negative electrode active material volume fraction"}, \
            f"the names of the inputs the built model uses, got {names!r}"


def test_state_model_and_state_vector(solved):
    last = solved["sol"].last_state
    with wrapper("state_model"):
        model = adapter.state_model(last)
        built = adapter.built_step_models(solved["sim"]).values()
        assert any(model is m for m in built), "a state's model is one of the simulation's built step models"
    with wrapper("state_vector"):
        y = adapter.state_vector(last)
        assert isinstance(y, np.ndarray) and y.dtype == float and y.ndim == 1, f"a flat float vector, got {y!r}"
        assert y.size == model.len_rhs_and_alg, f"one entry per state: {y.size} against {model.len_rhs_and_alg}"


def test_state_blocks(solved):
    last = solved["sol"].last_state
    model = adapter.state_model(last)
    y = adapter.state_vector(last)
    with wrapper("state_blocks"):
        blocks = adapter.state_blocks(model)
        assert blocks, "a discretised model has state blocks"
        covered = []
        for block in blocks:
            assert isinstance(block.name, str), f"variable names, got {block.name!r}"
            assert block.slices and all(isinstance(s, slice) for s in block.slices), f"lists of slices, got {block.slices!r}"
            covered += [i for s in block.slices for i in range(*s.indices(y.size))]
        assert sorted(covered) == list(range(y.size)), "the blocks tile the state vector"
        conc = next((b for b in blocks if b.name == C_NEG), None)
        assert conc is not None, f"the SPM's negative particle concentration is a state: {[b.name for b in blocks]}"
        scale = conc.scale.evaluate() if hasattr(conc.scale, "evaluate") else conc.scale
        c_max = pybamm.ParameterValues("Chen2020")["Maximum concentration in negative electrode [mol.m-3]"]
        assert float(scale) == pytest.approx(c_max), f"a concentration's scale is its maximum, got {scale!r}"
        # the state holds value / scale: the factory's concentration ceilings rely on it
        value = np.asarray(last[C_NEG].entries, dtype=float).ravel()
        np.testing.assert_allclose(y[conc.slices[0]] * float(scale), value, rtol=1e-10)


def test_cached_on_model(solved):
    model = adapter.state_model(solved["sol"].last_state)
    calls = []

    def compute():
        calls.append(1)
        return ["found"]

    with wrapper("cached_on_model"):
        first = adapter.cached_on_model(model, "adapter_test", compute)
        again = adapter.cached_on_model(model, "adapter_test", compute)
        assert first is again and calls == [1], "computed once per built model"
        assert getattr(model, "_factory_adapter_test") is first, "kept on the model as _factory_<name>"


def test_state_with_vector(solved):
    sim, last = solved["sim"], solved["sol"].last_state
    y = adapter.state_vector(last) * 1.0
    t = float(last.t[-1]) + 100.0
    with wrapper("state_with_vector"):
        state = adapter.state_with_vector(solved["sol"], y, t)
        assert isinstance(state, pybamm.Solution), f"a pybamm.Solution, got {type(state).__name__}"
        assert adapter.state_model(state) is adapter.state_model(last), "the model of the state it replaces"
        np.testing.assert_array_equal(adapter.state_vector(state), y)
        adapter.set_experiment(sim, pybamm.Experiment([(solved["discharge"], solved["rest"])]))
        sol = sim.solve(inputs={CURRENT: 5.0}, starting_solution=state)
        step = sol.cycles[-1].steps[0]
        assert step.t[0] == pytest.approx(t), f"a solve starts from the state's time: {step.t[0]} against {t}"
        np.testing.assert_allclose(adapter.state_vector(step.first_state), y, rtol=1e-12)


def test_timer_seconds(solved):
    with wrapper("timer_seconds"):
        solve_time = solved["sol"].solve_time
        assert isinstance(getattr(solve_time, "value", None), float), f"Solution.solve_time has a float .value, got {solve_time!r}"
        seconds = adapter.timer_seconds(solve_time)
        assert isinstance(seconds, float) and seconds == solve_time.value > 0
        assert adapter.timer_seconds(None) == 0.0 and adapter.timer_seconds(2) == 2.0


def test_step_key_and_step_value(solved):
    current, discharge = solved["current"], solved["discharge"]
    with wrapper("step_key"):
        key = adapter.step_key(discharge)
        assert isinstance(key, tuple) and isinstance(key[0], str) and key[1] == 120.0, f"(basic_repr, duration), got {key!r}"
        longer = adapter.step_key(pybamm.step.current(current, duration=240.0))
        assert longer[0] == key[0] and longer != key, "basic_repr() leaves the duration out; the key keeps it"
        other = adapter.step_key(pybamm.step.current(pybamm.InputParameter("Charge current [A]"), duration=120.0))
        assert other[0] != key[0], "steps with other values have other identities"
    with wrapper("step_value"):
        assert adapter.step_value(discharge) is current, "a step keeps the value it was given (an InputParameter here)"
        assert adapter.step_value(object()) is None


class _Logs(pybamm.callbacks.Callback):
    def __init__(self):
        self.seen = {}

    def on_experiment_error(self, logs):
        self.seen["error"] = adapter.log_error(logs), adapter.log_step(logs)

    def on_experiment_infeasible_event(self, logs):
        self.seen["event"] = adapter.log_termination(logs), adapter.log_step(logs)


def test_callback_logs(solved):
    sim, rest = solved["sim"], solved["rest"]
    too_long = pybamm.step.current(solved["current"], duration=7200.0)  # no voltage cut-off: the model's event stops it
    adapter.set_experiment(sim, pybamm.Experiment([(too_long, rest)]))
    logs = _Logs()
    with wrapper("log_termination"):
        sim.solve(inputs={CURRENT: 50.0}, callbacks=[logs])
        assert "event" in logs.seen, "a model event a step does not name calls on_experiment_infeasible_event"
        termination, step = logs.seen["event"]
        assert termination == "event: Minimum voltage [V]", f"the solver's termination, got {termination!r}"
    with wrapper("log_step"):
        assert step == str(too_long), f"the running step's text, got {step!r}"
    logs = _Logs()
    with wrapper("log_error"):
        with pytest.raises(pybamm.SolverError):
            sim.solve(inputs={CURRENT: float("nan")}, callbacks=[logs])
        assert "error" in logs.seen, "a failed step calls on_experiment_error"
        error, step = logs.seen["error"]
        assert isinstance(error, pybamm.SolverError) and str(error), f"the solver's error, got {error!r}"
        assert step == str(too_long), f"and the step it failed in, got {step!r}"
