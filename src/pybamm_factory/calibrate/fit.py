"""Fit PyBaMM parameters to measured constant-current discharges.

Separation of concerns: :class:`Curve` is measured data, :class:`VoltageProblem`
simulates a curve for given parameter values (one PyBaMM model, built once, with the
fitted parameters, the current and the temperature as inputs), :func:`fit_parameters`
is the optimiser (``scipy.optimize.least_squares``, trust-region reflective, in
parameters scaled by their starting values) and returns values, a covariance
from the Jacobian at the optimum (s^2 (J^T J)^-1) and per-curve RMSEs.

Temperature (``thermal``): "ambient" (default) holds each curve at its first temperature
reading, the chamber temperature before the load; "mean" at its mean reading; "measured"
makes the cell follow the curve's own logged temperature trace (an isothermal model whose
ambient temperature is that trace, so the parameter set's Arrhenius terms see the
self-heating; the surface reading stands in for the core); "lumped" solves PyBaMM's lumped
thermal model from the first reading. A curve without a temperature column is held at
25 degC and says so.

Residuals compare voltages at the measured discharged capacities; past the simulated
end of discharge the simulated voltage stays at its last value, so a model that
runs out of capacity early is penalised.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pybamm
from scipy.optimize import least_squares

from ..design.spec import input_name_problem, physical_ceiling
from ..errors import FactoryError
from ..simulate.inputs import default_value, set_inputs
from .options import CAPACITY_SCALING, OPTIMISERS, THERMAL_MODES  # noqa: F401 - re-exported
from .readers import discharge_segments, read_cycler

# starting bounds, relative to the parameter set's value
RELATIVE_BOUNDS = (0.5, 1.5)
ABSOLUTE_BOUNDS = {"Contact resistance [Ohm]": (0.0, 0.05)}
# transport and kinetic constants are uncertain by orders of magnitude
WIDE_RELATIVE_BOUNDS = (0.05, 20.0)
WIDE_PATTERNS = ("diffusivity", "conductivity", "rate constant", "exchange")
POINTS_PER_CURVE = 120
TRACE_POINTS = 200  # measured temperature trace, thinned to this many points
MODEL_LABELS = {"spme": "SPMe", "dfn": "DFN"}
RECENT_SOLVES = 64  # simulated curves kept per problem (a calibration asks for about 2 per curve again)
# a cell of another size: these scale together with the measured capacity (electrode area,
# the capacity C-rates refer to, and the volume and cooling surface of the lumped thermal model)
CAPACITY_SCALED = ("Electrode width [m]", "Nominal cell capacity [A.h]", "Cell volume [m3]", "Cell cooling surface area [m2]")
# "auto" scales a cell 1.5x larger or smaller than the set's: beyond that the fitted fractions,
# searched within 0.5-1.5x and capped at 1, cannot make up the difference; "on" scales any cell


class CalibrationError(FactoryError, ValueError):
    """Calibration input is unusable; one line naming what is wrong."""


@dataclass
class Curve:
    name: str
    discharged_ah: np.ndarray
    voltage_v: np.ndarray
    current_a: float
    duration_s: float
    mean_temperature_k: float  # mean logged temperature during the discharge (the stated one when none)
    start_temperature_k: float = None  # first reading: the chamber before the load
    trace_time_s: np.ndarray | None = None  # logged temperature trace (time from the start of discharge)
    trace_temperature_k: np.ndarray | None = None
    source: str = ""  # which discharge of the file, in words

    @classmethod
    def from_file(cls, path: str | Path, points: int = POINTS_PER_CURVE, discharge: str | int = "largest",
                  read_options: dict | None = None, temperature_c: float | None = None) -> Curve:
        """One constant-current discharge of a cycler export (see :func:`pick_discharge`)."""
        curves = cls.all_from_file(path, points, discharge, read_options, temperature_c)
        if len(curves) != 1:
            raise CalibrationError(f"{path}: discharge {discharge!r} picks {len(curves)} discharges; use all_from_file")
        return curves[0]

    @classmethod
    def all_from_file(cls, path: str | Path, points: int = POINTS_PER_CURVE, discharge: str | int = "largest",
                      read_options: dict | None = None, temperature_c: float | None = None) -> list[Curve]:
        """The constant-current discharges of a cycler export that ``discharge`` picks
        (:func:`pick_discharges`: one, a list, or all). ``read_options`` go to
        :func:`read_cycler` (format, column mapping, a stated current). A file that records no
        temperature needs ``temperature_c`` (the cell's temperature during the test, degC): it
        is never assumed. Several discharges of one file are named ``<file>:<index>``."""
        path = Path(path)
        read_options = dict(read_options or {})
        frame = read_cycler(path, format=read_options.pop("format", "auto"), **read_options)
        segments = discharge_segments(frame)
        if not segments:
            raise CalibrationError(f"{path}: no constant-current discharge found")
        picked = pick_discharges(segments, discharge, path)
        curves = []
        for k in picked:
            seg = segments[k]
            q = seg["discharged_ah"].to_numpy()
            grid = np.linspace(q[0], q[-1], points)
            temp_k = seg["temperature_c"].to_numpy() + 273.15
            time_s = seg["time_s"].to_numpy()
            known = np.isfinite(temp_k)
            stated = None if temperature_c is None else float(temperature_c) + 273.15
            if not known.any() and stated is None:
                raise CalibrationError(f"{path}: the file records no temperature; state the cell's temperature during "
                                       f"the test with --temperature-c {path.name}=DEGC (or --temperature-c DEGC for "
                                       "every such file): it is never assumed")
            mean_k = float(np.mean(temp_k[known])) if known.any() else stated
            start_k = float(temp_k[known][0]) if known.any() else stated
            trace_t = trace_k = None
            if known.sum() >= 2:
                keep = np.unique(np.linspace(0, known.sum() - 1, TRACE_POINTS).astype(int))
                trace_t, trace_k = time_s[known][keep], temp_k[known][keep]
            current_a = float(seg["current_a"].mean())
            source = f"CC discharge {k + 1} of {len(segments)} ({current_a:.3g} A, {q[-1]:.4g} A.h)"
            if frame.attrs.get("current_convention", "").startswith("stated constant"):
                source += f"; assumed: {frame.attrs['current_convention']}"
            if not known.any():
                source += f"; temperature stated: {temperature_c:g} degC (the file records none)"
            name = path.stem if len(picked) == 1 else f"{path.stem}:{k + 1}"
            curves.append(cls(name, grid, np.interp(grid, q, seg["voltage_v"].to_numpy()),
                              current_a, float(time_s[-1]), mean_k, start_k, trace_t, trace_k, source))
        return curves


DISCHARGE_CHOICES = ("largest", "first", "all")


def pick_discharge(segments: list, discharge: str | int, path) -> int:
    """Index of the discharge to fit: "largest" (default) is the first within 2 % of the largest
    discharged capacity, so a file's full discharge wins over shorter ones (pulses, partial
    discharges) and the earliest of an aging series is taken; "first"; or a 1-based number."""
    if isinstance(discharge, str) and discharge.isdigit():
        discharge = int(discharge)
    if isinstance(discharge, int):
        if not 1 <= discharge <= len(segments):
            raise CalibrationError(f"{path}: discharge {discharge} asked for, the file has {len(segments)} CC discharges")
        return discharge - 1
    if discharge not in DISCHARGE_CHOICES or discharge == "all":
        raise CalibrationError(f"discharge: {discharge!r} is not allowed; allowed: {', '.join(DISCHARGE_CHOICES)}, "
                               "a number from 1 or a comma list of them")
    if discharge == "first":
        return 0
    capacity = np.array([seg["discharged_ah"].iloc[-1] for seg in segments])
    return int(np.argmax(capacity >= 0.98 * capacity.max()))


def pick_discharges(segments: list, discharge, path) -> list[int]:
    """Indices of the discharges to fit: ``"all"``, a comma list of 1-based numbers
    (``"1,3"``), or one as :func:`pick_discharge` chooses."""
    if discharge == "all":
        return list(range(len(segments)))
    if isinstance(discharge, str) and "," in discharge:
        return [pick_discharge(segments, part.strip(), path) for part in discharge.split(",") if part.strip()]
    return [pick_discharge(segments, discharge, path)]


class VoltageProblem:
    """Simulates a CC discharge for given parameter values.

    The model is built once (temperature is an input), or once per curve for
    ``thermal="measured"`` (the curve's temperature trace is part of the model).
    """

    def __init__(self, parameter_set: str, fit_names: list[str], model: str = "spme", mesh: dict | None = None,
                 thermal: str = "ambient", fixed: dict | None = None):
        if thermal not in THERMAL_MODES:
            raise CalibrationError(f"thermal: {thermal!r} is not allowed; allowed: {', '.join(THERMAL_MODES)}")
        self.parameter_set = parameter_set
        self.fixed = dict(fixed or {})  # set values replaced for every solve (a capacity scaling)
        pv = self.set_values()
        for name in fit_names:
            problem = input_name_problem(pv, name, parameter_set, verb="fit")
            if problem:
                raise CalibrationError(f"--fit: {problem}")
        self.fit_names = list(fit_names)
        self.initial = np.array([default_value(pv, n) for n in fit_names])
        self.lower_voltage_v = float(pv["Lower voltage cut-off [V]"])
        self.upper_voltage_v = float(pv["Upper voltage cut-off [V]"])
        self.nominal_capacity_ah = float(pv["Nominal cell capacity [A.h]"])
        # physical ceilings: no fraction above one, no particle fuller than its maximum concentration
        self.upper_limits = {n: ceiling[0] for n in fit_names if (ceiling := physical_ceiling(pv, n))}
        self.model = model
        self.mesh = mesh or {"x_n": 10, "x_s": 5, "x_p": 10, "r_n": 15, "r_p": 15}
        self.thermal = thermal
        self._simulations: dict[object, pybamm.Simulation] = {}
        self.simulations = 0
        self.failed_solves = 0
        self._recent: dict[tuple, np.ndarray] = {}  # the last solves: reports and figures ask for the same ones again

    def set_values(self) -> pybamm.ParameterValues:
        """The parameter set with the problem's fixed values (a capacity scaling) in place."""
        pv = pybamm.ParameterValues(self.parameter_set)
        pv.update(self.fixed)
        return pv

    def traced(self, curve: Curve) -> bool:
        """Whether the curve's temperature is its logged trace (else a constant)."""
        return self.thermal == "measured" and curve.trace_time_s is not None

    def held_temperature_k(self, curve: Curve) -> float:
        """The constant cell (for 'lumped', starting) temperature of a curve not following its trace."""
        return curve.mean_temperature_k if self.thermal == "mean" else (curve.start_temperature_k or curve.mean_temperature_k)

    def temperature_source(self, curve: Curve) -> str:
        """What the simulated cell's temperature is, in words (for the report)."""
        if curve.trace_time_s is None:
            return f"stated {curve.mean_temperature_k - 273.15:g} degC (no temperature trace in the file)"
        if self.traced(curve):
            return "logged trace"
        which = "mean" if self.thermal == "mean" else "first"
        return f"{which} reading, {self.held_temperature_k(curve) - 273.15:.1f} degC"

    def parameter_values(self, curve: Curve | None) -> pybamm.ParameterValues:
        """The set with the fitted parameters and current as inputs, and the temperature as an
        input (curve None) or the curve's own (its trace, or its constant for ``thermal``)."""
        pv = self.set_values()
        set_inputs(pv, self.fit_names + ["Current function [A]"])
        if curve is None:
            pv["Ambient temperature [K]"] = "[input]"
            pv["Initial temperature [K]"] = "[input]"
        elif self.traced(curve):
            # held at the last reading after the trace ends (the solve runs past the measured end)
            t = np.append(curve.trace_time_s, curve.trace_time_s[-1] + 10 * curve.duration_s + 1e4)
            temp = np.append(curve.trace_temperature_k, curve.trace_temperature_k[-1])
            pv["Ambient temperature [K]"] = lambda y, z, time: pybamm.Interpolant(t, temp, time, interpolator="linear")
            pv["Initial temperature [K]"] = float(temp[0])
        else:
            pv.update({"Ambient temperature [K]": self.held_temperature_k(curve), "Initial temperature [K]": self.held_temperature_k(curve)})
        return pv

    def model_instance(self) -> pybamm.BaseModel:
        cls = pybamm.lithium_ion.SPMe if self.model == "spme" else pybamm.lithium_ion.DFN
        return cls({"thermal": "lumped" if self.thermal == "lumped" else "isothermal"})

    def _build(self, curve: Curve | None) -> pybamm.Simulation:
        return pybamm.Simulation(self.model_instance(), parameter_values=self.parameter_values(curve),
                                 solver=pybamm.IDAKLUSolver(rtol=1e-6, atol=1e-6), var_pts=self.mesh,
                                 output_variables=["Voltage [V]", "Discharge capacity [A.h]"])

    def _simulation_for(self, curve: Curve) -> tuple[pybamm.Simulation, dict]:
        """The curve's simulation and the inputs that are not fitted parameters."""
        traced = self.traced(curve)
        key = (curve.name, curve.duration_s, curve.trace_temperature_k.tobytes()) if traced else "temperature as input"
        if key not in self._simulations:
            self._simulations[key] = self._build(curve if traced else None)
        inputs = {"Current function [A]": curve.current_a}
        if not traced:
            inputs.update({"Ambient temperature [K]": self.held_temperature_k(curve), "Initial temperature [K]": self.held_temperature_k(curve)})
        return self._simulations[key], inputs

    def simulate(self, curve: Curve, values) -> np.ndarray:
        """Simulated voltage at the curve's measured discharged capacities."""
        trace = curve.trace_temperature_k.tobytes() if self.traced(curve) else b""
        key = (curve.name, curve.current_a, curve.duration_s, curve.discharged_ah.tobytes(), trace,
               np.asarray(values, dtype=float).tobytes())
        if key in self._recent:
            return self._recent[key].copy()
        sim, inputs = self._simulation_for(curve)
        inputs.update(zip(self.fit_names, map(float, values)))
        t_end = 1.5 * curve.duration_s
        try:
            sol = sim.solve([0, t_end], inputs=inputs, t_interp=np.linspace(0, t_end, 600))
        except pybamm.SolverError:
            self.failed_solves += 1
            return np.full_like(curve.voltage_v, self.lower_voltage_v)
        self.simulations += 1
        q = sol["Discharge capacity [A.h]"].entries
        v = sol["Voltage [V]"].entries
        self._recent[key] = np.interp(curve.discharged_ah, q, v, right=v[-1])
        if len(self._recent) > RECENT_SOLVES:
            self._recent.pop(next(iter(self._recent)))
        return self._recent[key].copy()

    def window_mismatch(self, curve: Curve, margin_v: float = 0.05) -> str | None:
        """A note when the measured discharge leaves the parameter set's voltage window (the
        set may describe another cell or chemistry); None when it stays inside."""
        low, high = float(curve.voltage_v.min()), float(curve.voltage_v.max())
        if low >= self.lower_voltage_v - margin_v and high <= self.upper_voltage_v + margin_v:
            return None
        return (f"{curve.name} spans {high:.2f}-{low:.2f} V, outside {self.parameter_set}'s window "
                f"{self.upper_voltage_v:g}-{self.lower_voltage_v:g} V: the set may describe another cell or chemistry")

    def rmse_mv(self, curve: Curve, values) -> float:
        return float(1000 * np.sqrt(np.mean((self.simulate(curve, values) - curve.voltage_v) ** 2)))

    def capacity_ah(self, curve: Curve, values=None) -> float:
        """The model's discharge capacity at the curve's current and temperature, at ``values``
        (default: the set's), down to the voltage the measured discharge ended at (or the
        set's cut-off, if the model stops first): the same window as the measured capacity."""
        sim, inputs = self._simulation_for(curve)
        inputs.update(zip(self.fit_names, map(float, self.initial if values is None else values)))
        t_end = 2.0 * 3600.0 * max(self.nominal_capacity_ah, curve.discharged_ah[-1]) / curve.current_a
        try:
            sol = sim.solve([0, t_end], inputs=inputs, t_interp=np.linspace(0, t_end, 2000))
        except pybamm.SolverError as exc:
            raise CalibrationError(f"{curve.name}: the model's discharge at {curve.current_a:.3g} A failed "
                                   f"({str(exc).splitlines()[0][:120]}); try --capacity-scaling off") from exc
        q, v = sol["Discharge capacity [A.h]"].entries, sol["Voltage [V]"].entries
        below = np.flatnonzero(v <= curve.voltage_v[-1])
        return float(q[below[0]] if len(below) else q[-1])


def capacity_scaling(problem: VoltageProblem, curves: list[Curve], mode: str = "auto") -> dict | None:
    """How the parameter set's cell is resized to a measured cell of another size (None for "off").

    The lowest-current fitted curve's capacity is compared with the model's at the same
    current and temperature, down to the same end voltage (so a discharge over part of the
    window compares like with like). When their ratio passes the mode's factor (CAPACITY_SCALING),
    the electrode area and the set's other size parameters (CAPACITY_SCALED) are multiplied
    by it, so the fitted parameters describe the electrodes rather than the cell's size.
    Never applied when a size parameter is itself fitted."""
    if mode not in CAPACITY_SCALING:
        raise CalibrationError(f"capacity scaling: {mode!r} is not allowed; allowed: {', '.join(CAPACITY_SCALING)}")
    factor = CAPACITY_SCALING[mode]
    if factor is None:
        return None
    curve = min(curves, key=lambda c: c.current_a)
    measured_ah, model_ah = float(curve.discharged_ah[-1]), problem.capacity_ah(curve)
    ratio = measured_ah / model_ah
    pv = problem.set_values()
    sized = [n for n in CAPACITY_SCALED if n in pv.keys()]
    fitted = [n for n in sized if n in problem.fit_names]
    applied = max(ratio, 1 / ratio) > factor + 1e-3 and not fitted
    return {"mode": mode, "curve": curve.name, "measured_ah": measured_ah, "model_ah": model_ah, "ratio": ratio,
            "applied": applied, "fixed": {n: float(pv[n]) * ratio for n in sized} if applied else {},
            "reason": (f"measured {measured_ah:.4g} A.h vs model {model_ah:.4g} A.h at {curve.current_a:.3g} A; "
                       + (f"not scaled: {', '.join(fitted)} fitted" if fitted else "scaled" if applied
                          else f"within {factor:g}x, left to the fit"))}


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
        hi.append(min(b, problem.upper_limits.get(name, np.inf)))
    return np.array(lo), np.array(hi)


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




def _search_space(problem: VoltageProblem) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bounds, scale (the optimiser works in value / scale) and the clipped starting point."""
    lo, hi = _bounds(problem)
    scale = np.where(np.abs(problem.initial) > 0, np.abs(problem.initial), (hi - lo) / 2 + 1e-12)
    return lo, hi, scale, np.clip(problem.initial, lo, hi)


def _residuals(problem: VoltageProblem, curves: list[Curve], scale: np.ndarray):
    return lambda z: np.concatenate([problem.simulate(c, z * scale) - c.voltage_v for c in curves])


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
