"""Fit PyBaMM parameters to measured constant-current discharges: the optimiser.

Separation of concerns: :class:`~.curve.Curve` is measured data (:mod:`.curve`),
:class:`~.problem.VoltageProblem` simulates a curve for given parameter values and its
residuals are the cost (:mod:`.problem`), and this module is the optimiser:
:func:`fit_parameters` (``scipy.optimize.least_squares``, trust-region reflective, in
parameters scaled by their starting values, or PyBOP through :mod:`.pybop_fit`,
imported only when asked for) returns a :class:`FitResult` with values, a covariance
from the Jacobian at the optimum (s^2 (J^T J)^-1) and per-curve RMSEs;
:func:`leave_one_curve_out` refits once without each curve.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

from .curve import CalibrationError, Curve
from .options import OPTIMISERS
from .problem import MODEL_LABELS, VoltageProblem, _residuals, _search_space


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
    bounds: list = None  # per parameter: (low, high) searched; unbounded when not given
    optimiser: str = "least-squares"
    optimiser_message: str = ""
    design_std: np.ndarray | None = None  # spread written into the design; the covariance std when None
    design_std_source: str = "the fit covariance's"

    def __post_init__(self):
        self.bounds = list(self.bounds) if self.bounds else [(-np.inf, np.inf)] * len(self.names)

    def spread(self) -> np.ndarray:
        """Per parameter: the std the calibrated design samples with."""
        return self.std if self.design_std is None else self.design_std

    def correlation(self) -> np.ndarray | None:
        """The covariance as a correlation matrix, or None where it has no finite,
        positive-definite one (a parameter without curvature, a single parameter)."""
        cov = np.asarray(self.covariance, dtype=float)
        cov = (cov + cov.T) / 2
        std = np.sqrt(np.diag(cov))
        if len(std) < 2 or not np.all(np.isfinite(cov)) or np.any(std <= 0):
            return None
        matrix = cov / np.outer(std, std)
        np.fill_diagonal(matrix, 1.0)
        try:
            np.linalg.cholesky(matrix)
        except np.linalg.LinAlgError:
            return None
        return matrix

    def at_bound(self, tolerance: float = 0.01) -> list:
        """Per parameter: 'lower' / 'upper' where the fit stopped within 1 % of the range from a bound."""
        flags = []
        for v, (a, b) in zip(self.values, self.bounds):
            m = tolerance * (b - a)
            flags.append("lower" if v <= a + m else "upper" if v >= b - m else None)
        return flags

    def unidentified(self) -> dict[str, str]:
        """Parameters the data do not identify, with the reason: stopped at a bound, no
        curvature (an infinite or undefined std), or a spread (the design's std: the larger of
        covariance and jackknife) as large as the value itself."""
        out = {}
        for name, value, spread, flag in zip(self.names, self.values, self.spread(), self.at_bound()):
            if flag:
                out[name] = f"stopped at its {flag} bound"
            elif not math.isfinite(spread):
                out[name] = "no curvature: the curves do not move with it"
            elif spread >= abs(value):
                out[name] = f"spread {spread:.3g} as large as its value {value:.3g}"
        return out

    def as_dict(self) -> dict:
        unidentified = self.unidentified()
        return {
            "parameters": {n: {"initial": float(i), "fitted": float(v), "std": float(s), "design_std": float(d),
                               "bounds": [float(a), float(b)], "at_bound": flag, "identified": n not in unidentified,
                               "unidentified_because": unidentified.get(n)}
                           for n, i, v, s, d, (a, b), flag in zip(self.names, self.initial, self.values, self.std,
                                                                  self.spread(), self.bounds, self.at_bound())},
            "unidentified": unidentified,
            "design_std_source": self.design_std_source,
            "covariance": self.covariance.tolist(),
            "optimiser": self.optimiser,
            "optimiser_message": self.optimiser_message,
            "uncertainty_method": "s^2 (J^T J)^-1 at the optimum (Gauss-Newton covariance of least squares); "
                                  "meaningless for a parameter stopped at a bound (at_bound)",
            "rmse_before_mv": self.rmse_before_mv,
            "rmse_after_mv": self.rmse_after_mv,
            "wall_time_s": self.wall_time_s,
            "simulations": self.simulations,
        }


def check_sensitivity(problem: VoltageProblem, curve: Curve, x0, scale, hi, step: float = 0.05) -> None:
    """Refuse to fit a parameter that does not move the simulated voltage at all.

    A parameter can be in the set yet absent from the model's equations (contact
    resistance without the model option "contact resistance": "true", for instance);
    least squares would let it drift to a bound and report a meaningless std. The
    check is a forward difference of 5 % (of the value, or of half the range at 0) on
    the first curve.
    """
    jac, _ = _jacobian(lambda z: problem.simulate(curve, z * scale), x0 / scale, hi / scale, step=step)
    for name, column in zip(problem.fit_names, jac.T):
        if np.max(np.abs(column)) * step < 1e-9:
            raise CalibrationError(f"--fit: {name!r} does not change the simulated voltage of {curve.name} "
                                   f"({MODEL_LABELS[problem.model]}, {problem.parameter_set}); the model does not use "
                                   "it with these options, so it cannot be fitted")


def _optimise(problem: VoltageProblem, curves: list[Curve], optimiser: str, max_evaluations: int):
    """(values, message, residuals and Jacobian at the optimum or None) of one optimiser run."""
    lo, hi, scale, x0 = _search_space(problem)
    if optimiser == "least-squares":
        result = least_squares(_residuals(problem, curves, scale), x0 / scale, bounds=(lo / scale, hi / scale),
                               x_scale="jac", diff_step=1e-3, max_nfev=max_evaluations, method="trf")
        return result.x * scale, f"{result.message} ({result.nfev} evaluations)", (result.fun, result.jac / scale)
    values, message = _pybop_optimum(problem, curves, optimiser, lo, hi, x0, max_evaluations)
    return values, message, None


def fit_parameters(problem: VoltageProblem, curves: list[Curve], held_out: list[Curve] = (),
                   max_evaluations: int = 200, optimiser: str = "least-squares") -> FitResult:
    """Fit the problem's parameters to ``curves`` (all at once).

    ``optimiser``: "least-squares" (scipy's trust-region reflective on the voltage
    residuals), or PyBOP on an RMSE cost summed over the curves: "pybop-minimize"
    (PyBOP's SciPyMinimize, gradient-based) or "pybop-xnes" (PyBOP's XNES, a global
    evolution strategy). Whatever the optimiser, the covariance comes from the
    residual Jacobian at the optimum and RMSEs from :meth:`VoltageProblem.rmse_mv`.
    """
    if optimiser not in OPTIMISERS:
        raise CalibrationError(f"optimiser: {optimiser!r} is not allowed; allowed: {', '.join(OPTIMISERS)}")
    t0 = time.perf_counter()
    lo, hi, scale, x0 = _search_space(problem)
    check_sensitivity(problem, curves[0], x0, scale, hi)
    values, message, at_optimum = _optimise(problem, curves, optimiser, max_evaluations)
    if at_optimum is None:  # PyBOP: the Jacobian of the same residuals, by forward differences
        jac, fun = _jacobian(_residuals(problem, curves, scale), values / scale, hi / scale)
        at_optimum = (fun, jac / scale)
    covariance = _covariance(*at_optimum)
    fit = FitResult(problem.fit_names, problem.initial, values, np.sqrt(np.clip(np.diag(covariance), 0, None)),
                    covariance, bounds=list(zip(lo, hi)))
    for c in list(curves) + list(held_out):
        key = c.name + (" (held out)" if c in held_out else "")
        fit.rmse_before_mv[key] = problem.rmse_mv(c, problem.initial)
        fit.rmse_after_mv[key] = problem.rmse_mv(c, values)
    fit.wall_time_s = time.perf_counter() - t0
    fit.simulations = problem.simulations
    fit.optimiser, fit.optimiser_message = optimiser, message
    return fit


def leave_one_curve_out(problem: VoltageProblem, curves: list[Curve], result: FitResult, max_evaluations: int = 200,
                        optimiser: str = "least-squares") -> dict | None:
    """Refit once without each curve, score the curve left out, and take the jackknife spread.

    It uses only the fitted files, so it works where no held-out file exists. The
    highest-current curve left out says how the fit extrapolates in rate. The jackknife
    std, sqrt((n-1)/n * sum (theta_i - mean)^2) over the n refits, carries the
    curve-to-curve disagreement that the Gauss-Newton covariance misses when residuals
    are correlated along a curve (model error rather than noise). The refits only
    optimise (the full fit already checked sensitivities and scored the start). None
    with fewer than three curves (each refit needs two).
    """
    if len(curves) < 3:
        return None
    refits = {c.name: _optimise(problem, [k for k in curves if k is not c], optimiser, max_evaluations)[0] for c in curves}
    values = np.array(list(refits.values()))
    n = len(curves)
    jackknife = np.sqrt((n - 1) / n * ((values - values.mean(axis=0)) ** 2).sum(axis=0))
    return {"highest_current_curve": max(curves, key=lambda c: abs(c.current_a)).name,
            "rmse_mv_left_out": {c.name: problem.rmse_mv(c, refits[c.name]) for c in curves},
            "values_left_out": {name: dict(zip(result.names, map(float, v))) for name, v in refits.items()},
            "jackknife_std": dict(zip(result.names, map(float, jackknife)))}


def _pybop_optimum(problem, curves, optimiser: str, lo, hi, x0, max_evaluations: int) -> tuple[np.ndarray, str]:
    try:
        from .pybop_fit import fit_with_pybop
    except ImportError as exc:
        raise CalibrationError(f"--optimiser {optimiser} needs PyBOP: pip install 'pybamm-factory[calibrate]' ({exc})") from exc
    values, message = fit_with_pybop(problem, curves, lo, hi, x0, optimiser.removeprefix("pybop-"), max_evaluations)
    if np.allclose(values, x0, rtol=1e-9, atol=0):
        raise CalibrationError(f"--optimiser {optimiser}: PyBOP stopped at the starting point ({message}), usually because "
                               "a trial solve failed and left no gradient; use --optimiser least-squares")
    return values, message


def _jacobian(residuals, z, upper, step: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Forward-difference d residual / d z (stepping inwards at an upper bound) and the residuals at z."""
    base = residuals(z)
    columns = []
    for k in range(len(z)):
        h = step * max(abs(z[k]), 1.0)
        h = h if z[k] + h <= upper[k] else -h
        dz = np.array(z, dtype=float)
        dz[k] += h
        columns.append((residuals(dz) - base) / h)
    return np.column_stack(columns), base


def _covariance(fun: np.ndarray, jac: np.ndarray) -> np.ndarray:
    """s^2 (J^T J)^-1 with s^2 the residual variance (Gauss-Newton)."""
    dof = max(1, fun.size - jac.shape[1])
    s2 = float(fun @ fun) / dof
    try:
        return s2 * np.linalg.pinv(jac.T @ jac)
    except np.linalg.LinAlgError:
        return np.full((jac.shape[1], jac.shape[1]), np.nan)
