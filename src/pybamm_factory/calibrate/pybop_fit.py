"""PyBOP as the optimiser of a :class:`~.problem.VoltageProblem`.

Each measured curve becomes a PyBOP problem: a ``pybop.pybamm.Simulator`` driven by
the curve as a dataset (time, constant current, voltage) with the curve's temperature,
and a root-mean-squared voltage error; PyBOP's ``MetaProblem`` sums them. The fitted
names (``"... (factor)"`` multipliers included) become ``pybop.Parameter`` entries
with the same bounds and starting values as the least-squares path, searched in the
unit cube of those bounds.

PyBOP compares voltages on the time grid and, with a dataset protocol, removes the
voltage cut-off events, so a model that runs out of capacity early is penalised by its
voltage falling below the cut-off rather than by a held last value.
"""

from __future__ import annotations

import numpy as np
import pybamm
import pybop

from .curve import Curve
from .problem import VoltageProblem


def _problem_for(problem: VoltageProblem, curve: Curve, lo, hi, x0) -> pybop.Problem:
    pv = problem.parameter_values(curve)
    pv["Current function [A]"] = curve.current_a
    # each fitted name becomes a PyBOP parameter (a factor's scaled function stays in place),
    # searched in the unit cube of its bounds so parameters of very different size move alike
    pv.update({name: pybop.Parameter(bounds=[float(a), float(b)], initial_value=float(x),
                                     transformation=pybop.UnitHyperCube(float(a), float(b)))
               for name, a, b, x in zip(problem.fit_names, lo, hi, x0)}, check_already_exists=False)
    time_s = curve.discharged_ah * 3600.0 / curve.current_a
    dataset = pybop.Dataset({"Time [s]": time_s, "Current [A]": np.full_like(time_s, curve.current_a),
                             "Voltage [V]": curve.voltage_v})
    simulator = pybop.pybamm.Simulator(problem.model_instance(), parameter_values=pv, protocol=dataset,
                                       var_pts=problem.mesh, solver=pybamm.IDAKLUSolver(rtol=1e-6, atol=1e-6))
    return pybop.Problem(simulator, pybop.RootMeanSquaredError(dataset))


def fit_with_pybop(problem: VoltageProblem, curves: list[Curve], lo, hi, x0, method: str = "minimize",
                   max_evaluations: int = 200) -> tuple[np.ndarray, str]:
    """Optimised parameter values (in the order of ``problem.fit_names``) and PyBOP's stopping message."""
    problems = [_problem_for(problem, c, lo, hi, x0) for c in curves]
    joint = pybop.MetaProblem(*problems) if len(problems) > 1 else problems[0]
    if method == "minimize":
        optimiser = pybop.SciPyMinimize(joint, pybop.SciPyMinimizeOptions(maxiter=max_evaluations))
    else:  # "xnes"
        optimiser = pybop.XNES(joint, pybop.PintsOptions(max_evaluations=max_evaluations))
    result = optimiser.run()
    best = result.best_inputs
    values = np.array([float(np.ravel(best[name])[0]) for name in problem.fit_names])
    return values, f"{result.message} ({result.n_evaluations} evaluations)"
