"""Fit a degradation-rate parameter to a measured capacity-vs-cycle series.

The measured cycler file gives the fade curve (discharge capacity per cycle, relative to
its first full cycle) and the protocol (median charge and discharge currents relative to
the first capacity, mean temperature, voltage window clipped to the parameter set's
cut-offs). The factory's own aging engine then simulates that protocol, with a
reference test at the measured discharge rate every ``rpt_interval`` cycles, and a
bounded one-dimensional search over log10 of the parameter minimises the RMSE between
simulated SOH and measured relative capacity at the RPT cycles. The error is reported in
A.h (SOH error times the measured first capacity); the uncertainty of log10(parameter)
is the Gauss-Newton variance s^2 / (J^T J) from a central-difference Jacobian.
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np
from scipy.optimize import minimize_scalar

from ..design.spec import load_design, parse_design
from ..readers import cycle_capacities, read_cycler
from ..simulate.aging import AgingEngine
from .curve import CalibrationError


def measured_fade(path) -> dict:
    """Fade curve and protocol of a cycler export (full cycles only)."""
    frame = read_cycler(path)
    caps = cycle_capacities(frame)
    caps = caps[caps["discharge_capacity_ah"] > 0.8 * caps["discharge_capacity_ah"].median()].reset_index(drop=True)
    if len(caps) < 4:
        raise CalibrationError(f"{path}: needs at least 4 full discharge cycles for an aging fit, found {len(caps)}")
    q0 = float(caps["discharge_capacity_ah"].iloc[0])
    dis = frame.loc[frame["step_type"] == "discharge", "current_a"]
    chg = -frame.loc[frame["step_type"] == "charge", "current_a"]
    temp = frame["temperature_c"].mean()
    return {
        "cycles": (caps["cycle_index"] - caps["cycle_index"].iloc[0]).to_numpy(float),
        "relative_capacity": (caps["discharge_capacity_ah"] / q0).to_numpy(float),
        "first_capacity_ah": q0,
        "discharge_c_rate": float(dis.median() / q0),
        "charge_c_rate": float(chg.median() / q0),
        "upper_voltage_v": float(frame["voltage_v"].max()),
        "lower_voltage_v": float(frame["voltage_v"].min()),
        "temperature_c": float(temp) if math.isfinite(temp) else 25.0,
    }


def _design_for(base, fade: dict, parameter: str, rpt_interval: int):
    design = load_design(base)
    if parameter not in design.raw.get("varied", {}) and parameter not in design.raw.get("fixed", {}):
        from ..simulate.aging import base_parameter_values

        if parameter not in base_parameter_values(design).keys():
            raise CalibrationError(f"--fit: '{parameter}' is not a parameter of {design.parameter_set}")
    raw = copy.deepcopy(design.raw)
    pv_upper = float(design.protocols[0].upper_voltage_v)
    pv_lower = float(design.protocols[0].lower_voltage_v)
    c_chg, c_dis = min(fade["charge_c_rate"], 5.0), min(fade["discharge_c_rate"], 5.0)
    raw["protocols"] = [{"id": "measured", "charge_c_rate": {"low": c_chg, "high": c_chg * 1.000001},
                         "discharge_c_rate": {"low": c_dis, "high": c_dis * 1.000001},
                         "upper_voltage_v": min(fade["upper_voltage_v"], pv_upper),
                         "lower_voltage_v": max(fade["lower_voltage_v"], pv_lower), "rest_min": 5}]
    raw["ambient_temperatures_c"] = [round(fade["temperature_c"], 2)]
    n = int(fade["cycles"][-1])
    raw["aging"] = {**raw["aging"], "max_cycles": n, "rpt_interval_cycles": min(rpt_interval, n), "stop_soh": 0.3,
                    "rpt_discharge_c_rate": c_dis}
    raw["eis"] = {**raw.get("eis", {}), "enabled": False}
    raw["varied"] = {parameter: {"low": 1e-300, "high": 1e300}} if parameter not in raw.get("varied", {}) else \
        {parameter: raw["varied"][parameter]}
    return design, parse_design(raw, f"aging fit of {parameter}")


def fit_aging(path, parameter: str = "SEI solvent diffusivity [m2.s-1]", base_design="default",
              rpt_interval: int = 5, decades: float = 2.0, starting_value: float | None = None,
              max_evaluations: int = 25) -> dict:
    """Fit ``parameter`` (searched in log10) to the fade of ``path``; returns a report."""
    t0 = time.perf_counter()
    fade = measured_fade(path)
    base, design = _design_for(base_design, fade, parameter, rpt_interval)
    engine = AgingEngine(design, design.protocols[0], design.ambient_temperatures_k[0])
    varied = base.varied.get(parameter)
    start = starting_value or (math.sqrt(varied.low * varied.high) if varied else float(base.fixed.get(parameter)))
    row_base = {name: float(start) for name in design.varied}
    row_base.update({name: dist.low for name, dist in design.protocols[0].factors.items()})
    evaluations = []

    def residuals(log_value):
        run = engine.run({**row_base, parameter: 10.0 ** log_value})
        cycles = np.array([s.cycle for s in run.snapshots], float)
        caps = np.array([s.discharged_ah[-1] for s in run.snapshots])
        if len(cycles) < 2:
            return np.full(len(fade["cycles"]), 1.0)
        sim = np.interp(fade["cycles"], cycles, caps / caps[0], right=np.nan)
        sim = np.where(np.isfinite(sim), sim, caps[-1] / caps[0] - 1.0)  # stopped early: large penalty
        return sim - fade["relative_capacity"]

    def objective(log_value):
        r = residuals(log_value)
        evaluations.append((float(log_value), float(np.sqrt(np.mean(r**2)))))
        return float(np.mean(r**2))

    x0 = math.log10(start)
    result = minimize_scalar(objective, bounds=(x0 - decades, x0 + decades), method="bounded",
                             options={"xatol": 0.02, "maxiter": max_evaluations})
    best = float(result.x)
    r = residuals(best)
    h = 0.05
    jac = (residuals(best + h) - residuals(best - h)) / (2 * h)
    s2 = float(r @ r) / max(1, len(r) - 1)
    var_log = s2 / float(jac @ jac) if float(jac @ jac) > 0 else math.nan
    value = 10.0 ** best
    before = np.sqrt(np.mean(residuals(x0) ** 2))
    return {
        "file": str(path), "parameter": parameter, "fitted": value, "log10_fitted": best,
        "log10_std": math.sqrt(var_log) if math.isfinite(var_log) else math.nan,
        "std": value * math.log(10) * math.sqrt(var_log) if math.isfinite(var_log) else math.nan,
        "starting_value": start, "search_range": [10.0 ** (x0 - decades), 10.0 ** (x0 + decades)],
        "rmse_ah_before": float(before * fade["first_capacity_ah"]),
        "rmse_ah_after": float(np.sqrt(np.mean(r**2)) * fade["first_capacity_ah"]),
        "measured_cycles": fade["cycles"].tolist(), "measured_relative_capacity": fade["relative_capacity"].tolist(),
        "simulated_relative_capacity": (fade["relative_capacity"] + r).tolist(),
        "protocol": {k: fade[k] for k in ("charge_c_rate", "discharge_c_rate", "upper_voltage_v", "lower_voltage_v",
                                           "temperature_c")},
        "evaluations": len(evaluations), "wall_time_s": time.perf_counter() - t0,
        "method": "bounded 1-D search over log10(parameter) (scipy.optimize.minimize_scalar); "
                  "std from the Gauss-Newton variance of log10(parameter)",
    }
