"""Write fitted parameter distributions back as a design that ``run`` accepts, and
simulate the written design's own cells on the measured curves (their figures are in
:mod:`.figures`)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ..design.manifest import build_manifest
from ..design.spec import Design, parse_design
from .curve import CalibrationError, Curve
from .fit import FitResult
from .problem import VoltageProblem

MIN_RELATIVE_STD = 0.002  # a spread narrower than 0.2 % of the value is widened to it
TRUNCATION_SIGMAS = 3.0


def calibrated_design(design: Design, fit: FitResult, parameter_set: str, sources: list[str], fixed: dict | None = None,
                      runs_fit_set: bool = False) -> dict:
    """The base design's YAML with the fitted parameters as truncated normals, and ``fixed``
    (the fit's set values, e.g. a capacity scaling) as fixed parameters. ``runs_fit_set``:
    the design runs ``parameter_set`` (the set the fit used) instead of the base design's."""
    raw = copy.deepcopy(design.raw)
    for name, value in (fixed or {}).items():
        raw.setdefault("fixed", {})[name] = float(value)
        raw.get("varied", {}).pop(name, None)
    raw["name"] = f"{design.name}-calibrated"
    switched = runs_fit_set and parameter_set != design.parameter_set
    if switched:
        raw["parameter_set"] = parameter_set
        raw["parameter_set_source"] = f"{parameter_set} as shipped with PyBaMM (the set the calibration fitted with)"
    raw["description"] = (f"{design.description} Calibrated: {', '.join(fit.names)} fitted with {parameter_set} "
                          f"to {', '.join(sources)}.").strip()
    varied = raw.setdefault("varied", {})
    unidentified = fit.unidentified()
    for name, value, std, (lower, upper) in zip(fit.names, fit.values, fit.spread(), fit.bounds):
        spread = std if math.isfinite(std) and std > MIN_RELATIVE_STD * abs(value) else MIN_RELATIVE_STD * abs(value)
        spread = spread or 1e-6
        # truncated at 3 std, and never outside the range the fit searched (which keeps it physical)
        low = max(value - TRUNCATION_SIGMAS * spread, lower)
        varied[name] = {"distribution": "normal", "mean": float(value), "std": float(spread), "low": float(low),
                        "high": float(min(value + TRUNCATION_SIGMAS * spread, upper)),
                        "source": (f"UNIDENTIFIED by these data ({unidentified[name]}); " if name in unidentified else "")
                        + f"calibrated to {', '.join(sources)} (mean = fit, std = {fit.design_std_source})"}
        raw.get("fixed", {}).pop(name, None)
    correlations = _correlation_block(raw.get("correlations"), fit)
    if correlations and raw.get("sampler", "lhs") == "lhs":  # Saltelli's estimators assume independent inputs
        raw["correlations"] = correlations
    if switched:
        check_base_runs(design, parameter_set, raw)
    else:
        parse_design(raw, f"calibrated design from {design.source}")  # it must load as it will be run
    return raw


def check_base_runs(design: Design, parameter_set: str, raw: dict | None = None) -> None:
    """Refuse, in one line, a base design that does not run with another parameter set (its
    fixed or varied names are not that set's parameters, say); ``raw``: the design to check
    (default: the base itself with the set switched)."""
    if raw is None:
        raw = {**copy.deepcopy(design.raw), "parameter_set": parameter_set}
    try:
        parse_design(raw, f"calibrated design from {design.source}")
    except ValueError as exc:
        raise CalibrationError(f"--parameter-set {parameter_set}: the base design '{design.name}' (written for "
                               f"{design.parameter_set}) does not run with it: {exc}; use a base design written for "
                               f"{parameter_set}") from None


def _correlation_block(base: dict | None, fit: FitResult) -> dict | None:
    """The fit's correlations, beside any the base design holds between parameters not
    refitted (block-diagonal: the fit says nothing about the two groups' dependence)."""
    names, blocks, sources = [], [], []
    if base:
        keep = [i for i, n in enumerate(base["names"]) if n not in fit.names]
        if len(keep) >= 2:
            names += [base["names"][i] for i in keep]
            blocks.append(np.array(base["matrix"], dtype=float)[np.ix_(keep, keep)])
            sources.append(f"{', '.join(names)}: the base design's ({base.get('source') or 'no source given'})")
    matrix = fit.correlation()
    if matrix is not None:
        names += list(fit.names)
        blocks.append(matrix)
        sources.append("the fitted parameters: the fit's Gauss-Newton covariance as correlations")
    if len(names) < 2:
        return None
    joined = np.zeros((len(names), len(names)))
    start = 0
    for block in blocks:
        joined[start:start + len(block), start:start + len(block)] = block
        start += len(block)
    return {"names": names, "matrix": joined.tolist(), "source": "; ".join(sources)}


@dataclass
class DesignCells:
    """Cell designs drawn from a calibrated design and simulated on the measured curves."""

    cells: int
    seed: int
    failed: int  # solves that failed (a cell whose rest voltage lies above the set's cut-off, say)
    voltage_v: dict  # curve name -> array (solved cells x the curve's points)

    def summary(self, curves: list[Curve]) -> dict:
        """Median and p90 over the solved cells of each curve's RMSE [mV]."""
        rmse = {c.name: 1000 * np.sqrt(np.mean((self.voltage_v[c.name] - c.voltage_v) ** 2, axis=1)) for c in curves}
        return {"cells": self.cells, "seed": self.seed, "failed": self.failed,
                "rmse_mv_median": {n: float(np.median(v)) if len(v) else None for n, v in rmse.items()},
                "rmse_mv_p90": {n: float(np.percentile(v, 90)) if len(v) else None for n, v in rmse.items()}}


def simulate_design_cells(problem: VoltageProblem, curves: list[Curve], raw: dict, cells: int = 20, seed: int = 0) -> DesignCells:
    """How close the calibrated design's own cells stay to the measured curves: ``cells``
    cell designs drawn by the design's own sampler, each simulated on every curve. Cells
    whose solve fails are counted and left out."""
    design = parse_design(raw, "calibrated design")
    manifest = build_manifest(design, cells * design.conditions_per_cell_design, seed).drop_duplicates("cell_design_id")
    voltages, failed = {c.name: [] for c in curves}, 0
    for row in manifest[problem.fit_names].to_numpy(float):
        failures = problem.failed_solves
        simulated = {c.name: problem.simulate(c, row) for c in curves}
        if problem.failed_solves > failures:
            failed += 1
            continue
        for name, v in simulated.items():
            voltages[name].append(v)
    return DesignCells(len(manifest), seed, failed, {c.name: np.array(voltages[c.name]).reshape(-1, len(c.voltage_v)) for c in curves})


def write_design(raw: dict, path: str | Path) -> Path:
    """Write the design YAML; its name is the file's stem, so `--design NAME` finds it."""
    path = Path(path)
    raw = {**raw, "name": path.stem}
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Written by `pybamm-factory calibrate`; distributions centred on the fit.\n"
    path.write_text(header + yaml.safe_dump(raw, sort_keys=False))
    return path


def check_names(names: list[str]) -> None:
    if not names:
        raise CalibrationError("--fit: name at least one PyBaMM parameter to fit")


# --- aging parameters fitted to measured trajectories --------------------------------

# Cell-to-cell spread added to every fitted rate: +/-0.1 decade (x0.79 to x1.26). Same-batch
# cells cycled alike reach 80 % over 978-1,361 cycles (48 Sanyo cells, Baumhoefer et al.
# 2014: +/-16 % about the median); a square-root fade reaches a fixed loss after a number
# of cycles inversely proportional to its rate, so a rate spread of about that size gives
# a life spread of that size. One cell per temperature cannot measure it here.
CELL_TO_CELL_DECADES = 0.1
CELL_TO_CELL_ACTIVATION_J_PER_MOL = 2000.0
UNIDENTIFIED_DECADES = 1.0  # a rate whose 2-sigma half-width exceeds this is reported unidentified


def _cell_to_cell_floor(parameter) -> float:
    """The cell-to-cell floor of a fitted aging parameter's half-width, in its x units."""
    return CELL_TO_CELL_DECADES if parameter.log else CELL_TO_CELL_ACTIVATION_J_PER_MOL / parameter.unit


def aging_spread(parameter, x: float, x_std: float, loo_x: list[float]) -> tuple[float, float, str]:
    """Low and high of a fitted aging parameter's distribution (in its own units) and how
    the half-width was chosen: the largest of two Gauss-Newton sigmas, the half-range of
    the leave-one-temperature-out refits, and the cell-to-cell floor."""
    floor = _cell_to_cell_floor(parameter)
    candidates = {"2 sigma (Gauss-Newton)": 2 * x_std if math.isfinite(x_std) else 0.0,
                  "leave-one-temperature-out range": 0.5 * (max(loo_x) - min(loo_x)) if loo_x else 0.0,
                  "cell-to-cell floor": floor}
    why, half = max(candidates.items(), key=lambda kv: kv[1])
    lo_x, hi_x = parameter.x_bounds
    low, high = max(x - half, lo_x), min(x + half, hi_x)
    return parameter.from_x(low), parameter.from_x(high), why


def aging_calibrated_design(base: Design, problem, fit, loo: list[dict], source: str) -> tuple[dict, dict]:
    """``base``'s YAML with each fitted aging parameter of ``problem`` as a distribution
    around the fit; returns it and, per parameter, how its spread was chosen and whether it
    is identified. ``loo`` holds each leave-one-out refit's x by parameter name.

    A per-cell parameter (cell-to-cell variation) is reported at the mean of its cells'
    fitted values in x (``fitted``), and its range spans every cell's value, widened to at
    least the cell-to-cell floor about that mean; it counts as unidentified where any cell's
    value is, and its source names those cells."""
    raw = copy.deepcopy(base.raw)
    varied = raw.setdefault("varied", {})
    notes = {}
    xs, stds = problem.split(fit.x), problem.split(fit.x_std)
    for p in problem.parameters:
        loo_x = [row[p.name] for row in loo if p.name in row]
        if p.name in problem.per_cell:
            cells = xs[p.name]
            x = float(np.mean(list(cells.values())))
            flags = {c: _unidentified(p, stds[p.name][c], f"{p.name} | cell {c}" in fit.at_bound) for c in cells}
            floor = _cell_to_cell_floor(p)
            lo_x, hi_x = p.x_bounds
            low = p.from_x(max(min(min(cells.values()), x - floor), lo_x))
            high = p.from_x(min(max(max(cells.values()), x + floor), hi_x))
            by_cells = min(cells.values()) <= x - floor and max(cells.values()) >= x + floor
            why = f"range of the {len(cells)} cells' own fitted values" if by_cells else \
                f"range of the {len(cells)} cells' own fitted values, widened to the cell-to-cell floor"
            unidentified = any(flags.values())
            extra = {"per_cell": {c: p.from_x(v) for c, v in cells.items()},
                     "per_cell_x_std": dict(stds[p.name]),
                     "per_cell_identified": {c: not f for c, f in flags.items()}}
            x_std = float(np.mean(list(stds[p.name].values())))
            detail = ", ".join(f"cell {c} {p.from_x(v):.3g}{' (unidentified)' if flags[c] else ''}"
                               for c, v in cells.items())
            text = f"fitted per cell to {source}: {detail}; mean {p.from_x(x):.4g}, spread from the {why}"
        else:
            x, x_std = float(xs[p.name]), float(stds[p.name])
            low, high, why = aging_spread(p, x, x_std, loo_x)
            unidentified = _unidentified(p, x_std, p.name in fit.at_bound)
            extra = {}
            text = f"fitted to {source}: {p.from_x(x):.4g}, spread from the {why}"
        notes[p.name] = {"fitted": p.from_x(x), "x_std": x_std, "low": low, "high": high, "spread_from": why,
                         "identified": not unidentified, **extra}
        label = "UNIDENTIFIED by these data (spread or bound); " if unidentified else ""
        varied[p.name] = {"distribution": "log-uniform" if p.log else "uniform", "low": float(low), "high": float(high),
                          "source": f"{label}{text}"}
        raw.get("fixed", {}).pop(p.name, None)
    parse_design(raw, f"aging-calibrated design from {base.source}")
    return raw, notes


def _unidentified(parameter, x_std: float, at_bound: bool) -> bool:
    return not math.isfinite(x_std) or 2 * x_std > (UNIDENTIFIED_DECADES if parameter.log else 2.0) or at_bound
