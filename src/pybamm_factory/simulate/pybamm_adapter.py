"""Every PyBaMM internal the factory relies on, in one place.

The factory builds a simulation once per worker and reuses it, jumps the cell's state
and reads solver stops from the callbacks. For that it needs a few PyBaMM attributes
that are private or not in PyBaMM's API docs. Each one is wrapped below in one small
function, and ``tests/test_pybamm_adapter.py`` checks them on a real SPM. If a PyBaMM
release renames or changes one, that test fails and names the wrapper.

Checked against PyBaMM 26.10.1.1.

Wrapped internals (the wrapper, then the PyBaMM attribute it reaches, then why):

* :func:`set_experiment` sets ``Simulation.experiment`` on a built simulation. A
  worker builds each step's model once and then solves experiments of any length
  (an RPT, a block of aging cycles) on it. PyBaMM picks a built model by the step's
  ``basic_repr()``, so a new experiment made of the same steps needs no rebuild.
* :func:`built_step_models` reads ``Simulation.steps_to_built_models``, which is
  None until the experiment's models are built. After a failed warm-up solve it
  tells whether the models still have to be built.
* :func:`forget_last_solution` sets ``Simulation._solution`` to None. The simulation
  keeps its last solution, which holds every cycle of a sample. Dropping it after a
  sample frees that memory.
* :func:`built_model` and :func:`input_parameter_names` read
  ``BaseSimulation.built_model`` and ``BaseModel.input_parameters`` of the built EIS
  model. The EIS inputs are passed in the order of the parameters the model really
  uses.
* :func:`state_blocks` reads ``BaseModel.y_slices``, with each key's ``name`` and
  ``scale``. This is the layout of the discretised state vector. A cycle jump needs
  it to find the state blocks that cannot go negative, the particle concentrations
  and their ceilings, and the pairs of active-material fractions.
* :func:`cached_on_model` stores the factory's own ``_factory_<name>`` attributes on
  a built PyBaMM model. Each layout above is found once per built model. This relies
  on a built model taking new attributes and living as long as the worker's
  simulation.
* :func:`state_model`, :func:`state_vector` and :func:`state_with_vector` read
  ``Solution.all_models``, ``Solution.all_ys`` and ``Solution.all_inputs`` of a
  one-point state, and make a one-point ``pybamm.Solution`` from a state vector. A
  jump reads the state at a cycle's end, moves it on, and starts the next solve from
  the new state (``starting_solution``).
* :func:`step_key` reads ``BaseStep.basic_repr()`` and ``BaseStep.duration``. Two
  step lists with the same keys share built models and cached experiments.
  :func:`step_value` reads ``BaseStep.value``, the current of a step. It shows which
  steps are the discharges driven by the discharge-current input.
* :func:`timer_seconds` reads ``TimerTime.value``. ``Solution.solve_time`` is a
  TimerTime, and the factory records PyBaMM's own solve time in seconds.
* :func:`log_error`, :func:`log_step` and :func:`log_termination` read the
  ``"error"``, ``"step operating conditions"`` and ``"termination"`` keys of the
  ``logs`` dict that ``Simulation.solve`` passes to its callbacks. The callback
  interface is marked experimental, and these keys are not documented. The solver
  log keeps PyBaMM's own words for why an experiment stopped early.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np
import pybamm

PYBAMM_CHECKED = "26.10.1.1"  # the PyBaMM release these wrappers were checked against


# --- Simulation -------------------------------------------------------------------------

def set_experiment(sim: pybamm.Simulation, experiment: pybamm.Experiment) -> None:
    """Swap the experiment of a (possibly built) simulation; built step models are kept."""
    sim.experiment = experiment


def built_step_models(sim: pybamm.Simulation) -> dict | None:
    """The simulation's built model per step key, or None before the experiment is built."""
    return sim.steps_to_built_models


def forget_last_solution(sim: pybamm.BaseSimulation) -> None:
    """Drop the simulation's reference to its last solution (it only costs memory)."""
    sim._solution = None


def built_model(sim: pybamm.BaseSimulation) -> pybamm.BaseModel | None:
    """The discretised model of a simulation built with ``sim.build()`` (None before)."""
    return sim.built_model


# --- built models -----------------------------------------------------------------------

def input_parameter_names(model: pybamm.BaseModel) -> set[str]:
    """Names of the input parameters a model uses."""
    return {p.name for p in model.input_parameters}


class StateBlock(NamedTuple):
    """One variable's place in a discretised model's state vector."""

    name: str
    slices: list  # of slice
    scale: Any  # a number or a pybamm.Symbol: the state holds value / scale


def state_blocks(model: pybamm.BaseModel) -> list[StateBlock]:
    """The state vector's layout, in PyBaMM's order."""
    return [StateBlock(var.name, slices, var.scale) for var, slices in model.y_slices.items()]


def cached_on_model(model: pybamm.BaseModel, name: str, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per built model, kept on the model as ``_factory_<name>``."""
    attr = f"_factory_{name}"
    if not hasattr(model, attr):
        setattr(model, attr, compute())
    return getattr(model, attr)


# --- solutions and states ---------------------------------------------------------------

def state_model(state: pybamm.Solution) -> pybamm.BaseModel:
    """The built model of a state's last sub-solution (its state vector's layout)."""
    return state.all_models[-1]


def state_vector(state: pybamm.Solution) -> np.ndarray:
    """The state vector of a one-point state (``Solution.last_state``), as a flat float array."""
    return np.asarray(state.all_ys[0], dtype=float).ravel()


def state_with_vector(state: pybamm.Solution, y: np.ndarray, time_s: float) -> pybamm.Solution:
    """A one-point solution at ``time_s`` holding the state vector ``y``, with the model and
    inputs of ``state``'s last state: a solve can start from it."""
    last = state.last_state
    return pybamm.Solution(np.array([time_s]), np.asarray(y, dtype=float).reshape(-1, 1),
                           last.all_models[-1:], last.all_inputs[-1:], termination="final time")


def timer_seconds(value) -> float:
    """PyBaMM reports times as TimerTime objects; a plain float of seconds."""
    return float(getattr(value, "value", value) or 0.0)


# --- experiment steps -------------------------------------------------------------------

def step_key(step: pybamm.step.BaseStep) -> tuple:
    """What tells two steps apart for the solver: PyBaMM's step identity (which leaves the
    duration out, so steps that differ only in duration share a built model) and the duration."""
    return (step.basic_repr(), step.duration)


def step_value(step) -> Any:
    """The step's value (current, voltage, ...: a number or a pybamm.Symbol); None if it has none."""
    return getattr(step, "value", None)


# --- callback logs ----------------------------------------------------------------------

def log_error(logs: dict) -> Any:
    """The solver error of ``on_experiment_error`` ('' if absent)."""
    return logs.get("error", "")


def log_step(logs: dict) -> str:
    """The running step's operating conditions (its text, '' if absent)."""
    return logs.get("step operating conditions", "")


def log_termination(logs: dict) -> str:
    """Why the last step ended ('' if absent)."""
    return logs.get("termination", "")
