"""The problem: the parameters to fit, their bounds, the PyBaMM set-up and the cost.

:class:`VoltageProblem` holds the parameter set, the names to fit (checked against the
set) and their starting values, the model (SPMe or DFN, built once, with the fitted
parameters, the current and the temperature as inputs) and simulates a measured
:class:`~.curve.Curve` for given parameter values. ``_bounds`` and ``_search_space`` are
the search range (relative to the set's value, wider for transport and kinetic
constants, capped at physical ceilings) and the scale the optimiser works in;
``_residuals`` is the cost, simulated minus measured voltage over all curves.
:func:`capacity_scaling` resizes the set's cell to a measured cell of another size.

Temperature (``thermal``): "ambient" (default) holds each curve at its first temperature
reading, the chamber temperature before the load; "mean" at its mean reading; "measured"
makes the cell follow the curve's own logged temperature trace (an isothermal model whose
ambient temperature is that trace, so the parameter set's Arrhenius terms see the
self-heating; the surface reading stands in for the core); "lumped" solves PyBaMM's lumped
thermal model from the first reading. A curve without a temperature column is held at
25 degC and says so.

Initial state (``initial_state``): "set" (default) starts every discharge from the set's
(or the fitted) initial concentrations; "rest-voltage" starts each curve where the set's
open-circuit voltage equals the file's rest voltage before the load, moving lithium
between the electrodes at the set's (or the fitted) lithium inventory: the fitted initial
concentrations then fix the inventory, the measured rest voltage the state of charge
(:meth:`VoltageProblem.initial_concentrations`). Discharges that started from different
charges (a charge ending at another temperature, say) then start where the cell was.

Base design (``base``): the cell a calibrated design runs is its base design's cell with the
fitted values in place: the base's fixed values and the centre of each varied parameter
(:meth:`~pybamm_factory.design.schema.Distribution.centre`), such as an impedance fit's
exchange currents and contact resistance or the OCP spreads, and its model options other
than degradation and thermal ones (contact resistance). With ``base`` given,
the fit simulates that cell, so the written design's cells are the cells that were fitted;
a parameter being fitted replaces the base's value of the same name. Without it, the
parameter set's own cell.

Residuals compare voltages at the measured discharged capacities; past the simulated
end of discharge the simulated voltage stays at its last value, so a model that
runs out of capacity early is penalised.
"""

from __future__ import annotations

import numpy as np
import pybamm

from ..parameters import activation_target, input_name_problem, make_model, modified_target, parameter_values, physical_ceiling
from ..simulate.inputs import apply_fixed, default_value, set_inputs
from .curve import CalibrationError, Curve
from .options import CAPACITY_SCALING, INITIAL_STATES, THERMAL_MODES

# starting bounds, relative to the parameter set's value
RELATIVE_BOUNDS = (0.5, 1.5)
ABSOLUTE_BOUNDS = {"Contact resistance [Ohm]": (0.0, 0.05)}
# '<name> (activation energy)' [J.mol-1]: from none to well above the 17-35 kJ/mol of the LG M50 sets
ACTIVATION_BOUNDS = (0.0, 1.5e5)
# transport and kinetic constants are uncertain by orders of magnitude
WIDE_RELATIVE_BOUNDS = (0.05, 20.0)
WIDE_PATTERNS = ("diffusivity", "conductivity", "rate constant", "exchange")
MODEL_LABELS = {"spme": "SPMe", "dfn": "DFN"}
INITIAL_CONCENTRATIONS = ("Initial concentration in negative electrode [mol.m-3]", "Initial concentration in positive electrode [mol.m-3]")
RECENT_SOLVES = 64  # simulated curves kept per problem (a calibration asks for about 2 per curve again)
# a cell of another size: these scale together with the measured capacity (electrode area,
# the capacity C-rates refer to, and the volume and cooling surface of the lumped thermal model)
CAPACITY_SCALED = ("Electrode width [m]", "Nominal cell capacity [A.h]", "Cell volume [m3]", "Cell cooling surface area [m2]")
# "auto" scales a cell 1.5x larger or smaller than the set's: beyond that the fitted fractions,
# searched within 0.5-1.5x and capped at 1, cannot make up the difference; "on" scales any cell


class VoltageProblem:
    """Simulates a CC discharge for given parameter values.

    The model is built once (temperature is an input), or once per curve for
    ``thermal="measured"`` (the curve's temperature trace is part of the model).
    """

    def __init__(self, parameter_set: str, fit_names: list[str], model: str = "spme", mesh: dict | None = None,
                 thermal: str = "ambient", fixed: dict | None = None, initial_state: str = "set", base=None):
        if thermal not in THERMAL_MODES:
            raise CalibrationError(f"thermal: {thermal!r} is not allowed; allowed: {', '.join(THERMAL_MODES)}")
        if initial_state not in INITIAL_STATES:
            raise CalibrationError(f"initial state: {initial_state!r} is not allowed; allowed: {', '.join(INITIAL_STATES)}")
        self.initial_state = initial_state
        self.parameter_set = parameter_set
        self.fixed = dict(fixed or {})  # set values replaced for every solve (a capacity scaling)
        # the base design's central cell (fixed values and varied centres, of names the set knows;
        # the factory's own ageing terms are among them and a discharge does not use them)
        # and its fresh-cell model options
        own = parameter_values(parameter_set).keys()
        self.base_values = {n: v for n, v in (base_cell_values(base, fit_names) if base is not None else {}).items()
                            if (modified_target(n) or n) in own}
        self.base_options = base_cell_options(base) if base is not None else {}
        pv = self.set_values()
        self._read_only_values = pv  # for lookups of set values; parameter_values() builds its own copy
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
        # "rest-voltage": both initial concentrations are inputs, set per curve from its rest voltage
        self.state_names = [n for n in INITIAL_CONCENTRATIONS if n not in fit_names] if initial_state == "rest-voltage" else []
        self._ocp = self._ocp_tables(pv) if initial_state == "rest-voltage" else None

    @staticmethod
    def _ocp_tables(pv: pybamm.ParameterValues) -> dict:
        """The set's electrode OCPs on a stoichiometry grid (at the reference temperature)."""
        sto = np.linspace(1e-4, 1 - 1e-4, 4001)
        tables = {"sto": sto}
        for electrode in ("negative", "positive"):
            ocp = pv[f"{electrode.capitalize()} electrode OCP [V]"]
            value = ocp(pybamm.Vector(sto)) if callable(ocp) else pybamm.Scalar(float(ocp))
            tables[electrode] = np.broadcast_to(np.asarray(pv.process_symbol(value).evaluate()).ravel(), sto.shape).copy()
        return tables

    def initial_concentrations(self, curve: Curve, values) -> dict:
        """Both electrodes' initial concentrations at which the set's OCV is the curve's rest
        voltage, at the lithium inventory of ``values`` (fitted fractions and concentrations
        or the set's). Empty when the state is the set's or the curve has no rest voltage."""
        if self.initial_state != "rest-voltage" or curve.rest_voltage_v is None:
            return {}
        pv, given = self._read_only_values, dict(zip(self.fit_names, map(float, values)))

        def value(name):
            return given.get(name, float(pv[name]))
        cap = {e: value(f"{e.capitalize()} electrode active material volume fraction") * value(f"{e.capitalize()} electrode thickness [m]")
               for e in ("negative", "positive")}
        c_max = {e: value(f"Maximum concentration in {e} electrode [mol.m-3]") for e in ("negative", "positive")}
        c0 = dict(zip(("negative", "positive"), (value(n) for n in INITIAL_CONCENTRATIONS)))
        inventory = cap["negative"] * c0["negative"] + cap["positive"] * c0["positive"]
        x = self._ocp["sto"]  # negative stoichiometry; the positive one follows from the inventory
        y = (inventory - cap["negative"] * c_max["negative"] * x) / (cap["positive"] * c_max["positive"])
        ok = (y > self._ocp["sto"][0]) & (y < self._ocp["sto"][-1])
        if not ok.any():
            return {}
        ocv = np.interp(y[ok], self._ocp["sto"], self._ocp["positive"]) - self._ocp["negative"][ok]
        order = np.argsort(ocv)  # the OCV rises with the negative stoichiometry
        xn = float(np.interp(curve.rest_voltage_v, ocv[order], x[ok][order]))
        yp = (inventory - cap["negative"] * c_max["negative"] * xn) / (cap["positive"] * c_max["positive"])
        return {INITIAL_CONCENTRATIONS[0]: xn * c_max["negative"], INITIAL_CONCENTRATIONS[1]: yp * c_max["positive"]}

    def set_values(self) -> pybamm.ParameterValues:
        """The parameter set with the problem's fixed values (a capacity scaling) in place."""
        pv = parameter_values(self.parameter_set)
        apply_fixed(pv, self.base_values)
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
        set_inputs(pv, self.fit_names + self.state_names + ["Current function [A]"])
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
        return make_model(self.model, {**self.base_options, "thermal": "lumped" if self.thermal == "lumped" else "isothermal"})

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
        inputs.update(self._state_inputs(curve, values))
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

    def _state_inputs(self, curve: Curve, values) -> dict:
        """The initial concentrations of ``initial_state`` as inputs (none for "set")."""
        if self.initial_state != "rest-voltage":
            return {}
        given = dict(zip(self.fit_names, map(float, values)))
        pv = None
        state = self.initial_concentrations(curve, values)
        for name in INITIAL_CONCENTRATIONS:
            if name not in state:
                pv = pv or self._read_only_values
                state[name] = given.get(name, float(pv[name]))
        return state

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
        inputs.update(self._state_inputs(curve, self.initial if values is None else values))
        t_end = 2.0 * 3600.0 * max(self.nominal_capacity_ah, curve.discharged_ah[-1]) / curve.current_a
        try:
            sol = sim.solve([0, t_end], inputs=inputs, t_interp=np.linspace(0, t_end, 2000))
        except pybamm.SolverError as exc:
            raise CalibrationError(f"{curve.name}: the model's discharge at {curve.current_a:.3g} A failed "
                                   f"({str(exc).splitlines()[0][:120]}); try --capacity-scaling off") from exc
        q, v = sol["Discharge capacity [A.h]"].entries, sol["Voltage [V]"].entries
        below = np.flatnonzero(v <= curve.voltage_v[-1])
        return float(q[below[0]] if len(below) else q[-1])


def base_cell_values(design, fit_names) -> dict:
    """The base design's central cell, as fixed values: its fixed values and the centre of
    each varied parameter (``Distribution.centre``), less the names being fitted
    (their fitted values replace them)."""
    values = {**design.fixed, **{name: dist.centre() for name, dist in design.varied.items()}}
    return {name: value for name, value in values.items() if name not in fit_names}


def base_cell_options(design) -> dict:
    """The base design's model options that a fresh cell's discharge sees (not degradation,
    which a discharge of hours does not move, nor the thermal model, which the problem sets)."""
    from ..simulate.eis import DEGRADATION_OPTIONS

    return {k: v for k, v in design.model_options.items() if k not in DEGRADATION_OPTIONS and k != "thermal"}


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


def _bounds(problem: VoltageProblem):
    lo, hi = [], []
    for name, value in zip(problem.fit_names, problem.initial):
        if name in ABSOLUTE_BOUNDS:
            a, b = ABSOLUTE_BOUNDS[name]
        elif activation_target(name):
            a, b = ACTIVATION_BOUNDS
        elif any(p in name.lower() for p in WIDE_PATTERNS):
            a, b = WIDE_RELATIVE_BOUNDS[0] * value, WIDE_RELATIVE_BOUNDS[1] * value
        else:
            a, b = sorted((RELATIVE_BOUNDS[0] * value, RELATIVE_BOUNDS[1] * value))
        lo.append(a)
        hi.append(min(b, problem.upper_limits.get(name, np.inf)))
    return np.array(lo), np.array(hi)


def _search_space(problem: VoltageProblem) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bounds, scale (the optimiser works in value / scale) and the clipped starting point."""
    lo, hi = _bounds(problem)
    scale = np.where(np.abs(problem.initial) > 0, np.abs(problem.initial), (hi - lo) / 2 + 1e-12)
    return lo, hi, scale, np.clip(problem.initial, lo, hi)


def _residuals(problem: VoltageProblem, curves: list[Curve], scale: np.ndarray):
    return lambda z: np.concatenate([problem.simulate(c, z * scale) - c.voltage_v for c in curves])
