"""Fit PyBaMM parameters to measured constant-current discharges.

Separation of concerns: :class:`Curve` is measured data, :class:`VoltageProblem`
simulates a curve for given parameter values (one PyBaMM model, built once, with the
fitted parameters, the current and the temperature as inputs), :func:`fit_parameters`
is the optimiser (``scipy.optimize.least_squares``, trust-region reflective, in
parameters scaled by their starting values) and returns values, a covariance
from the Jacobian at the optimum (s^2 (J^T J)^-1) and per-curve RMSEs.

Residuals compare voltages at the measured discharged capacities; past the simulated
end of discharge the simulated voltage stays at its last value, so a model that
runs out of capacity early is penalised.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pybamm
from scipy.optimize import least_squares

from .readers import discharge_segments, read_cycler

# starting bounds, relative to the parameter set's value
RELATIVE_BOUNDS = (0.5, 1.5)
ABSOLUTE_BOUNDS = {"Contact resistance [Ohm]": (0.0, 0.05)}
# transport and kinetic constants are uncertain by orders of magnitude
WIDE_RELATIVE_BOUNDS = (0.05, 20.0)
WIDE_PATTERNS = ("diffusivity", "conductivity", "rate constant", "exchange")
POINTS_PER_CURVE = 120


class CalibrationError(ValueError):
    """Calibration input is unusable; one line naming what is wrong."""


@dataclass
class Curve:
    name: str
    discharged_ah: np.ndarray
    voltage_v: np.ndarray
    current_a: float
    duration_s: float
    temperature_k: float  # mean surface temperature during the discharge
    start_temperature_k: float = None  # at the start (ambient for a lumped thermal model)

    @classmethod
    def from_file(cls, path: str | Path, points: int = POINTS_PER_CURVE) -> Curve:
        """The first constant-current discharge of a cycler export."""
        path = Path(path)
        segments = discharge_segments(read_cycler(path))
        if not segments:
            raise CalibrationError(f"{path}: no constant-current discharge found")
        seg = segments[0]
        q = seg["discharged_ah"].to_numpy()
        grid = np.linspace(q[0], q[-1], points)
        temp = seg["temperature_c"].to_numpy()
        known = np.isfinite(temp)
        temperature_c = float(np.nanmean(temp)) if known.any() else 25.0
        start_c = float(temp[known][0]) if known.any() else 25.0
        return cls(path.stem, grid, np.interp(grid, q, seg["voltage_v"].to_numpy()),
                   float(seg["current_a"].mean()), float(seg["time_s"].iloc[-1]), temperature_c + 273.15,
                   start_c + 273.15)


class VoltageProblem:
    """Simulates a CC discharge for given parameter values (the model is built once)."""

    def __init__(self, parameter_set: str, fit_names: list[str], model: str = "spme", mesh: dict | None = None,
                 thermal: str = "isothermal"):
        """``thermal``: 'isothermal' at each curve's mean measured temperature, or 'lumped'
        (a lumped thermal model whose ambient and initial temperature is the first reading)."""
        pv = pybamm.ParameterValues(parameter_set)
        missing = [n for n in fit_names if n not in pv.keys()]
        if missing:
            raise CalibrationError(f"--fit: {missing[0]!r} is not a parameter of {parameter_set}")
        functions = [n for n in fit_names if callable(pv[n])]
        if functions:
            raise CalibrationError(f"--fit: {functions[0]!r} is a function in {parameter_set}; fit scalar parameters")
        self.parameter_set = parameter_set
        self.fit_names = list(fit_names)
        self.initial = np.array([float(pv[n]) for n in fit_names])
        self.lower_voltage_v = float(pv["Lower voltage cut-off [V]"])
        for name in fit_names + ["Current function [A]", "Ambient temperature [K]", "Initial temperature [K]"]:
            pv[name] = "[input]"
        cls = pybamm.lithium_ion.SPMe if model == "spme" else pybamm.lithium_ion.DFN
        self.thermal = thermal
        self.sim = pybamm.Simulation(cls({"thermal": thermal}), parameter_values=pv, solver=pybamm.IDAKLUSolver(rtol=1e-6, atol=1e-6),
                                     var_pts=mesh or {"x_n": 10, "x_s": 5, "x_p": 10, "r_n": 15, "r_p": 15},
                                     output_variables=["Voltage [V]", "Discharge capacity [A.h]"])
        self.simulations = 0

    def simulate(self, curve: Curve, values) -> np.ndarray:
        """Simulated voltage at the curve's measured discharged capacities."""
        inputs = dict(zip(self.fit_names, map(float, values)))
        temperature = curve.temperature_k if self.thermal == "isothermal" else (curve.start_temperature_k or curve.temperature_k)
        inputs.update({"Current function [A]": curve.current_a, "Ambient temperature [K]": temperature,
                       "Initial temperature [K]": temperature})
        t_end = 1.5 * curve.duration_s
        try:
            sol = self.sim.solve([0, t_end], inputs=inputs, t_interp=np.linspace(0, t_end, 600))
        except pybamm.SolverError:
            return np.full_like(curve.voltage_v, self.lower_voltage_v)
        self.simulations += 1
        q = sol["Discharge capacity [A.h]"].entries
        v = sol["Voltage [V]"].entries
        return np.interp(curve.discharged_ah, q, v, right=v[-1])

    def rmse_mv(self, curve: Curve, values) -> float:
        return float(1000 * np.sqrt(np.mean((self.simulate(curve, values) - curve.voltage_v) ** 2)))


@dataclass
class FitResult:
    names: list[str]
    initial: np.ndarray
    values: np.ndarray
    std: np.ndarray
    covariance: np.ndarray
    rmse_before_mv: dict = field(default_factory=dict)
    rmse_after_mv: dict = field(default_factory=dict)
    wall_time_s: float = 0.0
    simulations: int = 0

    def as_dict(self) -> dict:
        return {
            "parameters": {n: {"initial": float(i), "fitted": float(v), "std": float(s)}
                           for n, i, v, s in zip(self.names, self.initial, self.values, self.std)},
            "covariance": self.covariance.tolist(),
            "uncertainty_method": "s^2 (J^T J)^-1 at the optimum (Gauss-Newton covariance of least squares)",
            "rmse_before_mv": self.rmse_before_mv,
            "rmse_after_mv": self.rmse_after_mv,
            "wall_time_s": self.wall_time_s,
            "simulations": self.simulations,
        }


def _bounds(problem: VoltageProblem):
    lo, hi = [], []
    for name, value in zip(problem.fit_names, problem.initial):
        if name in ABSOLUTE_BOUNDS:
            a, b = ABSOLUTE_BOUNDS[name]
        elif any(p in name.lower() for p in WIDE_PATTERNS):
            a, b = WIDE_RELATIVE_BOUNDS[0] * value, WIDE_RELATIVE_BOUNDS[1] * value
        else:
            a, b = sorted((RELATIVE_BOUNDS[0] * value, RELATIVE_BOUNDS[1] * value))
        lo.append(a)
        hi.append(b)
    return np.array(lo), np.array(hi)


def fit_parameters(problem: VoltageProblem, curves: list[Curve], held_out: list[Curve] = (),
                   max_evaluations: int = 200) -> FitResult:
    """Least-squares fit of the problem's parameters to ``curves`` (all at once)."""
    t0 = time.perf_counter()
    lo, hi = _bounds(problem)
    scale = np.where(np.abs(problem.initial) > 0, np.abs(problem.initial), (hi - lo) / 2 + 1e-12)
    x0 = np.clip(problem.initial, lo, hi)

    def residuals(z):
        values = z * scale
        return np.concatenate([problem.simulate(c, values) - c.voltage_v for c in curves])

    result = least_squares(residuals, x0 / scale, bounds=(lo / scale, hi / scale), x_scale="jac",
                           diff_step=1e-3, max_nfev=max_evaluations, method="trf")
    values = result.x * scale
    dof = max(1, result.fun.size - len(values))
    s2 = float(result.fun @ result.fun) / dof
    jac = result.jac / scale  # d residual / d parameter (unscaled)
    try:
        covariance = s2 * np.linalg.pinv(jac.T @ jac)
    except np.linalg.LinAlgError:
        covariance = np.full((len(values), len(values)), np.nan)
    fit = FitResult(problem.fit_names, problem.initial, values, np.sqrt(np.clip(np.diag(covariance), 0, None)),
                    covariance)
    for c in list(curves) + list(held_out):
        key = c.name + (" (held out)" if c in held_out else "")
        fit.rmse_before_mv[key] = problem.rmse_mv(c, problem.initial)
        fit.rmse_after_mv[key] = problem.rmse_mv(c, values)
    fit.wall_time_s = time.perf_counter() - t0
    fit.simulations = problem.simulations
    return fit
