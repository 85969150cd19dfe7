"""Calibration: read cycler exports, fit PyBaMM parameters, write a calibrated design."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np

from ..design.spec import load_design, read_design_file
from ..readers import ReaderError, cycle_capacities, discharge_segments, read_cycler, read_spectrum

# the fitting code needs PyBaMM: imported when first used, so reading files does not load it
_LAZY = {"fit_aging": ".aging_fit", "measured_fade": ".aging_fit", "MODEL_LABELS": ".problem", "CalibrationError": ".curve",
         "Curve": ".curve", "FitResult": ".fit", "VoltageProblem": ".problem", "capacity_scaling": ".problem",
         "fit_parameters": ".fit", "leave_one_curve_out": ".fit", "calibrated_design": ".design_writer",
         "check_names": ".design_writer", "plot_design_cells": ".figures", "plot_fit": ".figures",
         "simulate_design_cells": ".design_writer", "write_design": ".design_writer"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CalibrationError", "Curve", "FitResult", "ReaderError", "VoltageProblem", "calibrate", "calibrate_aging",
           "fit_aging", "measured_fade", "score_curves",
           "cycle_capacities", "discharge_segments", "fit_parameters", "leave_one_curve_out", "read_cycler", "read_spectrum"]


def calibrate(data: list[str | Path], fit: list[str], out: str | Path, parameter_set: str | None = None,
              held_out: list[str | Path] = (), base_design: str | Path = "default", model: str | None = None,
              thermal: str = "ambient", max_evaluations: int = 200, report_dir: str | Path | None = None,
              optimiser: str = "least-squares", leave_one_out: bool = True, discharge: str | int = "largest",
              check_cells: int = 20, capacity_scaling_mode: str = "auto", read_options: dict | None = None,
              temperature_c: dict | float | None = None, initial_state: str = "set") -> dict:
    """Fit ``fit`` parameters to the CC discharges in ``data``; write the design and a report.

    Returns the report (also written as ``calibration_report.json`` with a figure of
    measured vs simulated curves before and after, beside the design by default).
    ``parameter_set`` and ``model`` default to the base design's, so the fit and the runs
    of the calibrated design share one model; others are allowed and the report says so.
    ``discharge`` picks the CC discharge of each file (:func:`~.curve.pick_discharge`).
    ``leave_one_out`` (three or more curves) refits once without each curve, reports how
    well each refit predicts its left-out curve, and widens the design's spread to the
    jackknife std where that is larger than the covariance's (:func:`leave_one_curve_out`).
    ``check_cells`` cell designs drawn from the written design are simulated on the fitted
    curves, scored and drawn as a band over them (:func:`~.design_writer.simulate_design_cells`;
    0 skips it). ``capacity_scaling_mode``: "auto" fits (and writes) a measured cell more than
    1.5x larger or smaller than the set's with the set's electrode area and size parameters
    scaled to it; "on" scales any cell; "off" never (:func:`~.problem.capacity_scaling`).
    ``read_options`` go to :func:`read_cycler` for every file (format, column mapping, the
    constant current of a time-and-voltage file), and what they assumed is in the report.
    ``temperature_c``: the test temperature (degC) of files that record none, one number
    for all or ``{file name or stem: degC}``; such a file without one is refused, never
    assumed. ``discharge="all"`` or ``"1,3"`` fits several discharges of a file, named
    ``<file>:<index>``. Parameters the data do not identify (at a bound, no curvature, a
    spread as large as the value) are listed in the report's ``unidentified`` and marked so
    in the written design. ``initial_state``: "set" starts every discharge from the set's (or
    fitted) initial concentrations, "rest-voltage" from the file's rest voltage before the load
    at the fitted lithium inventory (:class:`~.problem.VoltageProblem`).
    """
    from .design_writer import calibrated_design, check_base_runs, check_names, simulate_design_cells, write_design
    from .figures import plot_design_cells, plot_fit
    from .fit import fit_parameters, leave_one_curve_out
    from .problem import MODEL_LABELS, VoltageProblem, capacity_scaling

    check_names(list(fit))
    design = load_design(base_design)
    parameter_set = parameter_set or design.parameter_set
    model = model or design.model
    curves, held = (_curves_of(paths, discharge, read_options, temperature_c) for paths in (data, held_out))
    if parameter_set != design.parameter_set:  # refused before the fit, not after it
        check_base_runs(design, parameter_set)
    # the fit simulates the cell the written design runs: the base design's cell with the fitted values
    problem = VoltageProblem(parameter_set, list(fit), model=model, thermal=thermal, initial_state=initial_state,
                             base=design)
    scaling = capacity_scaling(problem, curves, capacity_scaling_mode)
    if scaling and scaling["applied"]:
        problem = VoltageProblem(parameter_set, list(fit), model=model, thermal=thermal, fixed=scaling["fixed"],
                                 initial_state=initial_state, base=design)
    result = fit_parameters(problem, curves, held, max_evaluations=max_evaluations, optimiser=optimiser)
    loo = leave_one_curve_out(problem, curves, result, max_evaluations, optimiser) if leave_one_out else None
    if loo:
        result.design_std = np.maximum(result.std, list(loo["jackknife_std"].values()))
        result.design_std_source = "the larger of the fit covariance's and the leave-one-curve-out jackknife's"
    raw = calibrated_design(design, result, parameter_set, [c.name for c in curves], fixed=problem.fixed, runs_fit_set=True)
    design_path = write_design(raw, out)
    report_dir = Path(report_dir) if report_dir else design_path.parent / f"{design_path.stem}_calibration"
    figure = plot_fit(problem, curves, held, result, report_dir / "fit_before_after.png")
    check = None
    if check_cells > 0:
        cells = simulate_design_cells(problem, curves, raw, check_cells)
        check = {**cells.summary(curves), "figure": str(plot_design_cells(problem, curves, result, cells, report_dir / "design_cells.png"))}
    report = {"design": str(design_path), "parameter_set": parameter_set, "model": model, "thermal": thermal,
              "initial_state": initial_state,
              "base_cell": {"design": design.name, "values": problem.base_values, "model_options": problem.base_options},
              "temperature_source": {c.name: problem.temperature_source(c) for c in curves + held},
              "discharge_used": {c.name: c.source for c in curves + held},
              "fitted_curves": [str(p) for p in data], "held_out_curves": [str(p) for p in held_out],
              "capacity_scaling": scaling,
              "figure": str(figure), **result.as_dict(), "leave_one_curve_out": loo,
              "sampled_cells": check}
    notes = [n for n in map(problem.window_mismatch, curves + held) if n]
    if parameter_set != design.parameter_set:
        notes.append(f"fitted with {parameter_set}; the written design runs {parameter_set} too (the base design "
                     f"'{design.name}' ran {design.parameter_set})")
    if result.correlation() is not None and "correlations" not in raw:
        notes.append(f"the fit's correlations are not in the design: its sampler is {design.sampler}, whose Sobol "
                     "indices assume independent inputs")
    if model != design.model:
        notes.append(f"fitted with the {MODEL_LABELS[model]} model; the design runs the {MODEL_LABELS[design.model]} model")
    if notes:
        report["notes"] = notes
    (report_dir / "calibration_report.json").write_text(json.dumps(report, indent=2))
    return report


def _curves_of(paths, discharge, read_options, temperature_c) -> list:
    """The CC discharges of each file (:meth:`~.curve.Curve.all_from_file`), with the stated
    temperature of files that record none: one number for all or ``{file name or stem: degC}``."""
    from .curve import Curve

    def temperature_of(path):
        if temperature_c is None or isinstance(temperature_c, (int, float)):
            return temperature_c
        path = Path(path)
        return temperature_c.get(path.name, temperature_c.get(path.stem, temperature_c.get("*")))
    return [c for p in paths for c in Curve.all_from_file(p, discharge=discharge, read_options=read_options,
                                                          temperature_c=temperature_of(p))]


def score_curves(design: str | Path, data: list[str | Path], model: str | None = None, thermal: str = "ambient",
                 discharge: str | int = "largest", read_options: dict | None = None,
                 temperature_c: dict | float | None = None, initial_state: str = "set",
                 figure: str | Path | None = None) -> dict:
    """How close a design's cell comes to measured CC discharges, without fitting anything.

    The design's central cell (its fixed values, each varied parameter's centre, its
    fresh-cell model options: :class:`~.problem.VoltageProblem` with ``base``) and, for
    reference, its parameter set's own cell are simulated on each curve (the design's model
    unless ``model``; ``thermal`` and ``initial_state`` as for :func:`calibrate`). Returns, per
    curve, the RMSE of each in mV and the measured and simulated capacities down to the
    voltage the measured discharge ended at. Use it to check a calibrated design on cells or
    labs it was not fitted to. ``figure``: also draw measured against both cells there (PNG).
    """
    from .curve import CalibrationError
    from .problem import VoltageProblem

    cell = load_design(design)
    model = model or cell.model
    curves = _curves_of(data, discharge, read_options, temperature_c)
    designed = VoltageProblem(cell.parameter_set, [], model=model, thermal=thermal, initial_state=initial_state, base=cell)
    bare = VoltageProblem(cell.parameter_set, [], model=model, thermal=thermal, initial_state=initial_state)

    def capacity(c):
        try:
            return designed.capacity_ah(c)
        except CalibrationError:  # the discharge to the cut-off failed; the RMSE holds the cut-off voltage
            return None
    rows = {c.name: {"source": c.source, "current_a": c.current_a, "temperature_source": designed.temperature_source(c),
                     "measured_capacity_ah": float(c.discharged_ah[-1]),
                     "design_capacity_ah": capacity(c), "design_rmse_mv": designed.rmse_mv(c, []),
                     "parameter_set_rmse_mv": bare.rmse_mv(c, [])} for c in curves}
    report = {"design": cell.name, "parameter_set": cell.parameter_set, "model": model, "thermal": thermal,
              "initial_state": initial_state, "base_cell": {"values": designed.base_values, "model_options": designed.base_options},
              "failed_solves": designed.failed_solves + bare.failed_solves, "curves": rows}
    if figure is not None:
        from .figures import plot_scores

        report["figure"] = str(plot_scores(designed, bare, curves, Path(figure), names=(cell.name, cell.parameter_set)))
    return report


def calibrate_aging(data: str | Path, parameter: str, out: str | Path, base_design: str | Path = "default",
                    rpt_interval: int = 5, max_evaluations: int = 25, **fit_options) -> dict:
    """Fit a degradation-rate parameter to a measured fade curve; write the design and report.
    ``fit_options`` go to :func:`fit_aging` (``decades``, ``starting_value``)."""
    from .aging_fit import fit_aging
    from .design_writer import calibrated_design, write_design
    from .fit import FitResult

    report = fit_aging(data, parameter, base_design=base_design, rpt_interval=rpt_interval,
                       max_evaluations=max_evaluations, **fit_options)
    std = report["std"] if np.isfinite(report["std"]) else 0.1 * report["fitted"]
    fit = FitResult([parameter], np.array([report["starting_value"]]), np.array([report["fitted"]]), np.array([std]),
                    np.array([[std**2]]), bounds=[tuple(report["search_range"])])
    raw = calibrated_design(load_design(base_design), fit, "the base design's parameter set", [Path(data).name])
    design_path = write_design(raw, out)
    report["design"] = str(design_path)
    Path(design_path.with_name(design_path.stem + "_aging_calibration.json")).write_text(json.dumps(report, indent=2))
    return report


def start_values(design: str | Path) -> dict[str, float]:
    """The values a fit warm-started from ``design`` begins at: its fixed values and the
    medians of its distributions, except where a trajectory calibration report sits beside
    it (``<stem>_aging_calibration/aging_calibration_report.json``, as calibrate-aging
    writes): there its fitted values, per cell ({cell: value}) for a parameter fitted per
    cell. A calibrated spread clipped at a fit bound (an unidentified parameter) has its
    median away from the fit."""
    warm = load_design(design)
    values = {**{k: float(v) for k, v in warm.fixed.items()},
              **{k: float(d.ppf(0.5)) for k, d in warm.varied.items()}}
    path = Path(design)
    report = path.with_name(path.stem + "_aging_calibration") / "aging_calibration_report.json"
    if path.suffix in (".yaml", ".yml") and report.is_file():
        for name, note in json.loads(report.read_text()).get("parameters", {}).items():
            if isinstance(note.get("per_cell"), dict):
                values[name] = {str(c): float(v) for c, v in note["per_cell"].items()}
            elif isinstance(note.get("fitted"), (int, float)):
                values[name] = float(note["fitted"])
    return values


def calibrate_aging_trajectories(trajectories: str | Path, fit: list[str], out: str | Path,
                                 usage_design: str | Path = "kirkaldy-expt2", base_design: str | Path = "default",
                                 max_evaluations: int | None = None, workers: int = 1, leave_one_out: bool = True,
                                 loo_evaluations: int | None = None, start_design: str | Path | None = None,
                                 per_cell: list[str] | tuple[str, ...] = (), progress=None) -> dict:
    """Fit aging parameters to measured SOH / LLI / LAM trajectories (all cells at once),
    predict each temperature from the others, and write ``base_design`` with the fitted
    parameters as distributions (``out``), a JSON report and a figure beside it. The cells
    are simulated under ``usage_design``'s protocol with ``base_design``'s model (options,
    parameter set, mesh, solver), the model the fitted parameters will be used in. The fit
    starts from the parameter set's values, or from ``start_design``'s values where it names
    the parameter (:func:`start_values`), e.g. a previous calibration refitted with one term
    more or for longer; the start scan of rates is then skipped. ``max_evaluations``
    defaults to 15 per fitted value and one more. A parameter named in
    ``per_cell`` is fitted once per cell (cell-to-cell variation, e.g. a break-in that one
    cell shows and another does not); the design spreads it over the cells' values, and a
    held-out cell is predicted with the mean of the others'."""
    from .curve import CalibrationError
    from .design_writer import aging_calibrated_design, write_design
    from .figures import plot_trajectories
    from .trajectories import PARAMETERS, TrajectoryProblem, fit_trajectories, read_trajectories, starting_x
    from .trajectories import leave_one_out as loo

    unknown = [name for name in fit if name not in PARAMETERS]
    if unknown:
        raise CalibrationError(f"--fit: '{unknown[0]}' is not a fittable aging parameter; allowed: {', '.join(PARAMETERS)}")
    measured = read_trajectories(trajectories)
    base = load_design(base_design)
    problem = TrajectoryProblem(load_design(usage_design), measured, [PARAMETERS[name] for name in fit], model_design=base,
                                per_cell=tuple(per_cell))
    max_evaluations = max_evaluations or 15 * (len(problem.slots) + 1)  # about 15 Jacobians
    start, scan = None, (1.0, 3.0, 10.0, 30.0)
    if start_design is not None:
        start, scan = starting_x(problem, start_values(start_design)), ()
    result = fit_trajectories(problem, x0=start, max_evaluations=max_evaluations, workers=workers, scan=scan,
                              progress=progress)
    before = problem.simulate_many([result.x0], workers)[0]
    loo_evaluations = loo_evaluations or max(8, max_evaluations // 4)
    held = loo(problem, result, max_evaluations=loo_evaluations, workers=workers, progress=progress) \
        if leave_one_out and len(problem.cells) > 1 else None
    loo_xs = [{name: row[f"x:{name}"] for name in fit} for _, row in held.iterrows()] if held is not None else []
    source = f"{Path(trajectories).name} ({len(problem.cells)} cells) under design '{problem.usage_design.name}'"
    raw, notes = aging_calibrated_design(base, problem, result, loo_xs, source)
    raw["description"] = (raw.get("description", "") + f" Aging parameters fitted to {source}.").strip()
    design_path = write_design(raw, out)
    report_dir = design_path.with_name(design_path.stem + "_aging_calibration")
    figure = plot_trajectories(measured, result.simulated, before, report_dir / "trajectories_fit.png")
    report = {
        "trajectories": str(trajectories), "usage_design": problem.usage_design.name, "design": str(design_path),
        "cells": [{"cell_id": c, "temperature_c": t - 273.15, "rpt_cycles": r} for c, t, r in problem.cells],
        "parameters": notes, "start_design": str(start_design) if start_design is not None else None,
        "per_cell": list(problem.per_cell),
        "positive_frames": positive_frames(problem, result.simulated),
        "starting_values": {label: p.from_x(v) for label, (p, _), v in zip(problem.labels, problem.slots, result.x0)},
        "cost_before": result.cost_before, "cost_after": result.cost_after, "evaluations": result.evaluations,
        "optimiser": "scipy.optimize.least_squares (trf, bounded), forward-difference Jacobian solved in parallel",
        "optimiser_message": result.message, "at_bound": result.at_bound, "wall_time_s": result.wall_time_s,
        "correlation": {"names": result.names, "matrix": result.correlation.tolist()}
        if result.correlation is not None else None,
        "errors_before": result.errors_before.to_dict("records"), "errors_after": result.errors_after.to_dict("records"),
        "leave_one_temperature_out": held.to_dict("records") if held is not None else None,
        "simulated": result.simulated.to_dict("records"), "figure": str(figure),
        "targets": "SOH within 0.5 %-points, LLI and LAM within 1 %-point at every RPT",
    }
    (report_dir / "aging_calibration_report.json").write_text(json.dumps(report, indent=2, default=float))
    return report


def positive_frames(problem, simulated) -> dict:
    """Per cell: the DMA's positive frame the table gave (or None: all lithium counted), the
    fitted model's positive window at the first RPT, and the model lithiation at the frame's zero."""
    from ..labels.tables import positive_frame_zero

    out = {}
    for cell, _, _ in problem.cells:
        frame = problem.frames.get(cell)
        rows = simulated[simulated["cell_id"] == cell]
        model = (float(rows["pe_model_top"].iloc[0]), float(rows["pe_model_bottom"].iloc[0])) if len(rows) else None
        out[cell] = None if frame is None else {
            "dma_top": frame[0], "dma_bottom": frame[1],
            "model_top": model[0] if model else None, "model_bottom": model[1] if model else None,
            "model_lithiation_at_dma_zero": positive_frame_zero(model, frame) if model else None}
    return out


def calibrate_eis(spectrum: str | Path, out: str | Path, base_design: str | Path = "default", fit: list[str] | None = None,
                  band_hz: tuple[float, float] = (0.1, 1000.0), temperature_c: float = 25.0,
                  max_evaluations: int = 80) -> dict:
    """Fit the EIS model's parameters to a measured spectrum of a fresh cell (with an SOC
    column) and write the base design with them (``out``), a report and a figure beside it."""
    from ..design.spec import resolve_design_path
    from .design_writer import write_design
    from .eis_fit import DEFAULT_FIT, EIS_PARAMETERS, EisFitError, EisProblem, eis_calibrated_raw, eis_design, fit_eis, plot_eis_fit

    names = tuple(fit or DEFAULT_FIT)
    unknown = [n for n in names if n not in EIS_PARAMETERS]
    if unknown:
        raise EisFitError(f"--fit: unknown parameter {unknown[0]} (allowed: {', '.join(EIS_PARAMETERS)})")
    measured = read_spectrum(spectrum)
    if measured["soc"].isna().any():
        raise ReaderError(f"{spectrum}: the spectrum has no soc column; calibrate-eis needs the SOC of every sweep")
    base_path = resolve_design_path(base_design)
    raw = read_design_file(base_path)
    base = load_design(base_path)
    problem = EisProblem(eis_design(base, raw, names), measured, names, band_hz=band_hz,
                         temperature_k=temperature_c + 273.15)
    result = fit_eis(problem, max_evaluations=max_evaluations)
    design_path = write_design(eis_calibrated_raw(raw, result, Path(spectrum).name), out)
    report_dir = design_path.with_name(design_path.stem + "_eis_calibration")
    figure = plot_eis_fit(problem, result, report_dir / "eis_fit.png")
    result.table.to_csv(report_dir / "eis_features.csv", index=False, float_format="%.5g")
    report = {
        "spectrum": str(spectrum), "base_design": str(base_path), "design": str(design_path),
        "fitted": result.values, "at_bound_unidentified": result.at_bound,
        "rms_relative_residual_before": result.initial_rms, "rms_relative_residual_after": result.final_rms,
        "band_hz": list(band_hz), "temperature_c": temperature_c, "evaluations": result.evaluations,
        "wall_s": result.wall_s, "features": result.table.to_dict("records"), "figure": str(figure),
    }
    (report_dir / "eis_calibration_report.json").write_text(json.dumps(report, indent=2, default=float))
    return report


def calibrate_ica(data: str | Path, out: str | Path, temperature_c: float, base_design: str | Path = "default",
                  discharge: str | int = "largest", electrodes=("negative", "positive"),
                  max_evaluations: int = 40, read_options: dict | None = None) -> dict:
    """Fit each electrode's OCP voltage spread to the ICA peak heights of a measured slow
    discharge (:mod:`~.ica_fit`) and write the base design with them fixed (``out``), a
    report and a figure beside it. ``temperature_c`` is the test temperature; a file's own
    temperature column, where it has one, is reported beside it but not used."""
    import copy

    from ..design.spec import resolve_design_path
    from .curve import pick_discharge
    from .design_writer import write_design
    from .ica_fit import DischargeCurve, IcaFitError, fit_ica, plot_ica_fit, spread_name

    segments = discharge_segments(read_cycler(data, **(read_options or {})))
    if not segments:
        raise IcaFitError(f"{data}: no constant-current discharge of a minute or more in the file")
    chosen = segments[pick_discharge(segments, discharge, data)]
    c_rate = float(chosen["current_a"].mean() / chosen["discharged_ah"].iloc[-1])
    if c_rate > 0.25:
        raise IcaFitError(f"{data}: the discharge chosen runs at C/{1 / c_rate:.1f}; ICA peak heights need C/4 or "
                          "slower (pick another with --discharge)")
    measured = DischargeCurve(chosen["discharged_ah"].to_numpy(float), chosen["voltage_v"].to_numpy(float),
                              float(chosen["current_a"].mean()), temperature_c + 273.15, Path(data).name)
    base_path = resolve_design_path(base_design)
    raw = read_design_file(base_path)
    fit = fit_ica(load_design(base_path), measured, electrodes=tuple(electrodes),
                  max_evaluations=max_evaluations)
    raw = copy.deepcopy(raw)
    fixed = raw.setdefault("fixed", {})
    for electrode, value in fit.spreads_v.items():
        if value > 0:
            fixed[spread_name(electrode)] = float(f"{value:.4g}")
        else:
            fixed.pop(spread_name(electrode), None)
    design_path = write_design(raw, out)
    report_dir = design_path.with_name(design_path.stem + "_ica_calibration")
    figure = plot_ica_fit(fit, report_dir / "ica_fit.png")
    recorded = chosen["temperature_c"].dropna()
    report = {
        "data": str(data), "base_design": str(base_path), "design": str(design_path),
        "discharge_c_rate": c_rate, "temperature_c": temperature_c,
        "file_temperature_c": float(recorded.mean()) if len(recorded) else None,
        "spreads_v": fit.spreads_v, "at_bound_unidentified": fit.at_bound,
        "peaks": [{"voltage_v": v, "height_measured_per_v": h, "height_before_per_v": float(b),
                   "height_after_per_v": float(a)}
                  for (v, h), b, a in zip(fit.targets, fit.heights_before, fit.heights_after)],
        "cost_before": fit.cost_before, "cost_after": fit.cost_after, "evaluations": fit.evaluations,
        "wall_s": fit.wall_s, "figure": str(figure),
    }
    (report_dir / "ica_calibration_report.json").write_text(json.dumps(report, indent=2, default=float))
    return report
