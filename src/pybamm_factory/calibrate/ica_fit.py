"""Fit the electrodes' OCP voltage spreads to a measured slow discharge's ICA peaks.

A single-particle model draws each two-phase plateau of an electrode as a spike in the
incremental capacity (ICA, dQ/dV); a measured cell's peaks are lower and wider, because
its particles do not all switch at one potential (:mod:`~pybamm_factory.simulate.ocp_spread`).
This fit finds, for each electrode, the spread of particle potentials [V] that brings
the simulated peak heights to the measured ones.

- **Measured:** a slow constant-current discharge (C/4 or slower, so the curve is close to
  the open-circuit one; C/10 or slower is better) read by :func:`~pybamm_factory.readers.read_cycler`; by default
  the file's discharge of largest capacity.
- **Simulated:** the design's median cell (every varied parameter at its median), from
  full charge (the parameter set's upper cut-off), at the same C-rate relative to each
  cell's own capacity, down to the measured curve's last voltage (kept inside the set's
  cut-offs), at the measured temperature, with the design's model, options and mesh.
- **Compared:** both curves go through the factory's own ICA code
  (:func:`~pybamm_factory.labels.curves.smoothed_curve`, the code that labels datasets).
  The measured curve's two ICA peaks, as the labels find them (``ica_peak1/2``), are the targets; a simulated peak's
  height is the simulated curve's largest dQ/dV within ``window_v`` of the measured peak's
  voltage (the two cells' voltages differ by tens of mV). Heights are divided by the
  cell's own discharged capacity (1/V), so a 4.8 A.h cell and a 5 A.h model compare.
  Cost: the mean squared log ratio of simulated to measured heights.
- **Optimiser:** SciPy's bounded Nelder-Mead over the spreads (0 to 40 mV). PyBOP is not
  used here: each evaluation rebuilds the model (the spread is tabulated into the OCP,
  not a solver input), and two parameters against a handful of peak heights do not need
  its machinery. A spread that ends within 0.5 mV of a bound is flagged unidentified;
  spreads under 0.5 mV are simulated as 0 (the design check's smallest non-zero spread).
  A point whose solve fails or stops short of the cut-off scores as bad; if the design as
  given cannot be simulated, or no point can, the fit stops with one line saying so.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from ..design.schema import Design
from ..errors import FactoryError
from ..labels.curves import ica_dva_features, interior_ica
from ..parameters import MIN_OCP_SPREAD_V, SPREAD_SUFFIX

ELECTRODE_OCPS = {"negative": "Negative electrode OCP [V]", "positive": "Positive electrode OCP [V]"}
SPREAD_BOUNDS_V = (0.0, 0.04)
START_V = 0.01


class IcaFitError(FactoryError, ValueError):
    """A measured discharge or option the ICA fit cannot use."""


def spread_name(electrode: str) -> str:
    return ELECTRODE_OCPS[electrode] + SPREAD_SUFFIX


@dataclass
class DischargeCurve:
    """One constant-current discharge: discharged capacity [A.h] and voltage [V]."""

    capacity_ah: np.ndarray
    voltage_v: np.ndarray
    current_a: float
    temperature_k: float
    source: str

    @property
    def c_rate(self) -> float:
        return self.current_a / float(self.capacity_ah[-1])


def ica_curve(curve: DischargeCurve) -> tuple[np.ndarray, np.ndarray]:
    """Voltage [V] and dQ/dV divided by the discharged capacity [1/V], by the labels' ICA
    code (:func:`~pybamm_factory.labels.curves.interior_ica`: 0 in the first and last 8 %)."""
    grid, voltage, _, _, dqdv = interior_ica(curve.capacity_ah, curve.voltage_v)
    return voltage, dqdv / grid[-1]


def measured_peaks(curve: DischargeCurve) -> list[tuple[float, float]]:
    """The curve's two ICA peaks as the labels find them (most prominent first):
    (voltage [V], height per capacity [1/V])."""
    feats = ica_dva_features(curve.capacity_ah, curve.voltage_v)
    peaks = [(feats[f"ica_peak{k}_v"], feats[f"ica_peak{k}_ah_per_v"] / float(curve.capacity_ah[-1])) for k in (1, 2)]
    if not all(np.isfinite(h) for _, h in peaks):
        raise IcaFitError(f"{curve.source}: the discharge has fewer than two ICA peaks; the fit needs two")
    return peaks


def heights_near(curve: DischargeCurve, targets, window_v: float) -> np.ndarray:
    """The curve's largest normalised dQ/dV within ``window_v`` of each target voltage."""
    voltage, height = ica_curve(curve)
    out = []
    for v_target, _ in targets:
        near = np.abs(voltage - v_target) <= window_v
        out.append(float(height[near].max()) if near.any() else np.nan)
    return np.array(out)


def median_design(design: Design, spreads: dict) -> Design:
    """The design's median cell with the given OCP spreads fixed (the design's own
    spreads are replaced)."""
    fixed = {n: v for n, v in design.fixed.items() if not n.endswith(SPREAD_SUFFIX)}
    fixed.update({name: float(dist.ppf(np.array([0.5]))[0]) for name, dist in design.varied.items()})
    fixed.update({spread_name(e): float(v) for e, v in spreads.items() if v > 0})
    return dataclasses.replace(design, fixed=fixed, varied={})


def simulate_discharge(design: Design, spreads: dict, c_rate: float, temperature_k: float,
                       end_voltage_v: float | None = None) -> DischargeCurve:
    """The median cell's discharge from full charge at ``c_rate`` (per its nominal capacity)
    to ``end_voltage_v`` (default and limit: the parameter set's lower cut-off). Raises
    :class:`IcaFitError` when the solve fails or stops more than 50 mV short of it."""
    import pybamm

    from ..parameters import make_model
    from ..simulate.aging import apply_lam_activation, base_parameter_values

    cell = median_design(design, spreads)
    pv = base_parameter_values(cell)
    pv.update({"Ambient temperature [K]": temperature_k, "Initial temperature [K]": temperature_k})
    apply_lam_activation(pv, cell, temperature_k)
    lowest = float(pv["Lower voltage cut-off [V]"])
    end = lowest if end_voltage_v is None else min(max(end_voltage_v, lowest), float(pv["Upper voltage cut-off [V]"]) - 0.1)
    current = c_rate * float(pv["Nominal cell capacity [A.h]"])
    period = max(1.0, 3600.0 / c_rate / 2000.0)
    experiment = pybamm.Experiment([f"Discharge at {current:.6g} A until {end:.4g} V ({period:.3g} second period)"])
    sim = pybamm.Simulation(make_model(design.model, design.model_options), parameter_values=pv,
                            experiment=experiment, var_pts=design.mesh or None)
    try:
        solution = sim.solve(initial_soc=1.0)
    except pybamm.SolverError as exc:
        raise IcaFitError(f"the discharge failed to solve: {str(exc).splitlines()[0][:160]}") from None
    voltage = np.asarray(solution["Voltage [V]"].entries, dtype=float)
    if voltage[-1] > end + 0.05:
        raise IcaFitError(f"the discharge stopped at {voltage[-1]:.3f} V, short of {end:.3f} V")
    return DischargeCurve(np.asarray(solution["Discharge capacity [A.h]"].entries, dtype=float), voltage, current,
                          temperature_k, "simulated")


@dataclass
class IcaFit:
    """The fitted spreads [V], the peaks compared and the cost before and after."""

    spreads_v: dict
    targets: list  # (voltage, height) of the measured peaks
    heights_before: np.ndarray
    heights_after: np.ndarray
    cost_before: float
    cost_after: float
    evaluations: int
    wall_s: float
    at_bound: list = field(default_factory=list)
    curves: dict = field(default_factory=dict)  # "measured" / "before" / "after" -> DischargeCurve


def _cost(heights, targets) -> float:
    wanted = np.array([h for _, h in targets])
    if not np.all(np.isfinite(heights)) or np.any(heights <= 0):
        return 10.0
    return float(np.mean(np.log(heights / wanted) ** 2))


def fit_ica(design: Design, measured: DischargeCurve, electrodes=("negative", "positive"),
            window_v: float = 0.06, max_evaluations: int = 40) -> IcaFit:
    """Fit the OCP spreads of ``electrodes`` to the measured curve's ICA peak heights."""
    unknown = [e for e in electrodes if e not in ELECTRODE_OCPS]
    if unknown:
        raise IcaFitError(f"--electrode: unknown electrode {unknown[0]!r} (allowed: {', '.join(ELECTRODE_OCPS)})")
    started = time.perf_counter()
    targets = measured_peaks(measured)
    c_rate = measured.c_rate
    end_v = float(measured.voltage_v[-1])
    # "before": the fitted electrodes at the set's own OCP (a base design's spreads on them
    # are ignored, so the fit does not depend on them), the others as the base design has them
    own = {e: 0.0 if e in electrodes else float(design.fixed.get(spread_name(e), 0.0)) for e in ELECTRODE_OCPS}
    try:
        before = simulate_discharge(design, own, c_rate, measured.temperature_k, end_v)
    except IcaFitError as exc:
        raise IcaFitError(f"the design as given cannot be simulated at the measured rate: {exc}") from None
    heights_before = heights_near(before, targets, window_v)
    seen: dict = {}

    def evaluate(x):
        key = tuple(0.0 if v < MIN_OCP_SPREAD_V else round(float(v), 6) for v in x)
        if key not in seen:
            spreads = {**own, **dict(zip(electrodes, key))}
            try:
                curve = simulate_discharge(design, spreads, c_rate, measured.temperature_k, end_v)
            except IcaFitError:  # a failed or short solve is a bad point, not the end of the fit
                seen[key] = (10.0, None)
            else:
                seen[key] = (_cost(heights_near(curve, targets, window_v), targets), curve)
        return seen[key][0]

    lo, hi = SPREAD_BOUNDS_V
    # every evaluation is kept in `seen`; the best one with a curve is the result
    minimize(evaluate, np.full(len(electrodes), START_V), method="Nelder-Mead", bounds=[(lo, hi)] * len(electrodes),
             options={"maxfev": max_evaluations, "xatol": 2e-4, "fatol": 1e-4,
                      "initial_simplex": _simplex(len(electrodes))})
    solved = [k for k in seen if seen[k][1] is not None]
    if not solved:
        raise IcaFitError(f"no spread tried ({len(seen)} points) could be simulated")
    best = min(solved, key=lambda k: seen[k][0])
    after = seen[best][1]
    spreads = {**own, **dict(zip(electrodes, best))}
    at_bound = [e for e, v in zip(electrodes, best) if v - lo < 5e-4 or hi - v < 5e-4]
    return IcaFit(spreads, targets, heights_before, heights_near(after, targets, window_v),
                  _cost(heights_before, targets), seen[best][0], len(seen), time.perf_counter() - started,
                  at_bound, {"measured": measured, "before": before, "after": after})


def _simplex(n: int) -> np.ndarray:
    simplex = np.full((n + 1, n), START_V)
    for i in range(n):
        simplex[i + 1, i] = START_V * 2.0
    return simplex


def plot_ica_fit(fit: IcaFit, path):
    """Measured, before and after: dQ/dV per capacity against voltage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, style in (("measured", dict(color="k", lw=2.0)), ("before", dict(color="tab:blue", ls="--")),
                       ("after", dict(color="tab:red"))):
        voltage, height = ica_curve(fit.curves[key])
        voltage, height = voltage[height > 0], height[height > 0]
        label = {"measured": f"measured ({fit.curves[key].source})", "before": "simulated, the set's own OCPs",
                 "after": "simulated, fitted spreads " + ", ".join(f"{e} {1000 * v:.1f} mV"
                                                                  for e, v in fit.spreads_v.items())}[key]
        ax.plot(voltage, height, label=label, **style)
    for v, h in fit.targets:
        ax.plot([v], [h], "ko", ms=5)
    ax.set_xlabel("Voltage [V]")
    ax.set_ylabel("dQ/dV / capacity [1/V]")
    ax.set_title(f"Incremental capacity at C/{1 / fit.curves['measured'].c_rate:.0f}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
