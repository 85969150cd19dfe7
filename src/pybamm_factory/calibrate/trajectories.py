"""Fit degradation parameters to measured degradation trajectories at several temperatures.

Conventions of a trajectory table (CSV or Parquet, one row per reference test of a cell):

- ``cell_id``: any label; ``temperature_c``: the temperature the cell aged at (degC; the
  cell's own measured temperature where known, since an isothermal model ages at the
  temperature it is given, not the chamber's);
- ``cycle``: aging cycles of the usage protocol before this reference test (0 = fresh);
- ``soh``: capacity of the reference test relative to the cell's first one (fraction);
- optional ``lam_ne_pct``, ``lam_pe_pct``: loss of active material in each electrode, in %
  of the fresh electrode's capacity, from the lab's own degradation-mode analysis (a blank
  is fine: that point is not fitted);
- optional loss of lithium inventory, in one of two conventions that degradation-mode
  analyses use (name the column after the one yours uses; a table with both is refused):
  ``lli_capacity_pct``, lithium lost in % of the fresh cell's capacity (lithium counted in
  A.h on the capacity axis, as Kirkaldy et al.'s analysis does: their LLI is the change of
  the positive electrode's capacity minus the electrode offset, over the fresh C/10
  capacity), or ``lli_pct``, lithium lost in % of all lithium in both electrodes (PyBaMM's
  "Loss of lithium inventory [%]"; tools that sum x*Q over both electrodes). For an LG M50
  the second denominator is about 1.5x the first, so the same loss reads about 1.5x larger
  as ``lli_capacity_pct``;
- optional ``pe_lithiation_top``, ``pe_lithiation_bottom``: the positive electrode's
  lithiation at the top (charged) and bottom (discharged) of the fresh reference discharge,
  in the degradation-mode analysis's own frame (0 at the top of its positive half-cell curve,
  1 at its end; only the cycle-0 row of each cell is used). A DMA counts the lithium above
  that frame's zero only, so lithium that leaves with lost positive material below it is not
  in its LLI while the model's lithium books hold it. Given these, the simulated
  ``lli_capacity_pct`` is counted in the same frame (:func:`~..labels.tables.lli_capacity_pct_in_frame`);
  without them, all lithium counts. Kirkaldy et al.'s fitting parameters give them as
  1 - ``PE_hi`` and 1 - ``PE_lo``: their positive stoichiometries are the electrode's state
  of charge, ``lo`` at the cell's bottom (their LLI, the change of PE capacity minus offset,
  is the lithium in their frame only with this reading).

The usage between reference tests (protocol, window, rates, RPT) is a factory design with
one protocol (``kirkaldy-expt2`` holds Kirkaldy et al.'s); the factory's own aging engine
simulates each cell under it with RPTs forced to the measured cycles and cycle jumps in
between. Residuals are the simulated minus the measured values at every RPT after the
first, each divided by its target (SOH 0.5 %-points, modes 1 %-point), so the fit spends
its effort where the targets are tight. The optimiser is SciPy's bounded trust-region
least squares over log10 of each rate (linear for an activation energy, in 10 kJ/mol);
the Jacobian is a forward difference whose points are solved in parallel. PyBOP's
problems and costs are built around one simulation of a time series; a multi-cell,
multi-thousand-cycle aging run with forced RPTs is none, so the fit stays on SciPy.
The uncertainty is the Gauss-Newton covariance s^2 (J^T J)^-1 at the optimum.
"""

from __future__ import annotations

import copy
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..design.spec import Design, parse_design
from ..labels.tables import frame_window_problem
from .curve import CalibrationError

REQUIRED_COLUMNS = ("cell_id", "temperature_c", "cycle", "soh")
LLI_COLUMNS = ("lli_capacity_pct", "lli_pct")  # the two conventions (module docstring)
MODE_COLUMNS = (*LLI_COLUMNS, "lam_ne_pct", "lam_pe_pct")
FRAME_COLUMNS = ("pe_lithiation_top", "pe_lithiation_bottom")  # the DMA's positive frame (module docstring)
# the target each column is fitted to (residual units): SOH 0.5 %-points, modes 1 %-point
TARGETS = {"soh": 0.005, **{c: 1.0 for c in MODE_COLUMNS}}
MISSING_PENALTY = 50.0  # residual (in targets) of a point a failed simulation did not reach


@dataclass(frozen=True)
class FitParameter:
    """A fitted parameter: searched in log10 (rates) or linearly in ``unit`` steps."""

    name: str
    low: float
    high: float
    log: bool = True
    unit: float = 1.0  # the size of one step of x for a linear parameter
    start: float | None = None  # the start where the parameter set's value is outside the bounds (0: term off)
    scanned: bool = True  # multiplied with the other rates in the start scan (a rate, not a shape term)

    def to_x(self, value: float) -> float:
        return math.log10(value) if self.log else value / self.unit

    def from_x(self, x: float) -> float:
        return 10.0 ** x if self.log else x * self.unit

    @property
    def x_bounds(self) -> tuple[float, float]:
        return self.to_x(self.low), self.to_x(self.high)


# OKane2022's degradation parameters with the ranges a fit may search (literature value
# four decades wide for rates; activation energy 0-120 kJ/mol)
PARAMETERS = {
    "SEI solvent diffusivity [m2.s-1]": FitParameter("SEI solvent diffusivity [m2.s-1]", 1e-24, 1e-18),
    "SEI growth activation energy [J.mol-1]": FitParameter("SEI growth activation energy [J.mol-1]", 0.0, 1.2e5,
                                                           log=False, unit=1e4),
    "Negative electrode LAM constant proportional term [s-1]":
        FitParameter("Negative electrode LAM constant proportional term [s-1]", 1e-10, 1e-4),
    "Positive electrode LAM constant proportional term [s-1]":
        FitParameter("Positive electrode LAM constant proportional term [s-1]", 1e-10, 1e-4),
    "Negative electrode LAM activation energy [J.mol-1]":
        FitParameter("Negative electrode LAM activation energy [J.mol-1]", -1.2e5, 1.2e5, log=False, unit=1e4),
    "Positive electrode LAM activation energy [J.mol-1]":
        FitParameter("Positive electrode LAM activation energy [J.mol-1]", -1.2e5, 1.2e5, log=False, unit=1e4),
    "Lithium plating kinetic rate constant [m.s-1]": FitParameter("Lithium plating kinetic rate constant [m.s-1]",
                                                                  1e-13, 1e-6),
    # the break-in of each electrode's LAM (parameters.LAM_BREAK_IN): a fresh cell's extra
    # LAM rate as a multiple of the long-run one, and the time it decays over
    "Negative electrode LAM break-in factor": FitParameter("Negative electrode LAM break-in factor", 1e-2, 1e3,
                                                           start=3.0, scanned=False),
    "Positive electrode LAM break-in factor": FitParameter("Positive electrode LAM break-in factor", 1e-2, 1e3,
                                                           start=3.0, scanned=False),
    "LAM break-in time constant [h]": FitParameter("LAM break-in time constant [h]", 1.0, 1e4, start=100.0,
                                                   scanned=False),
}


# --- reading -------------------------------------------------------------------------

def read_trajectories(path: str | Path) -> pd.DataFrame:
    """A trajectory table (see the module's conventions), or a folder in the layout of
    Kirkaldy et al.'s published data (``DMA Output/cell X/`` beside ``... Extracted Data.csv``)."""
    path = Path(path)
    if path.is_dir():
        return read_kirkaldy(path)
    if not path.exists():
        raise CalibrationError(f"{path}: no such file")
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise CalibrationError(f"{path}: missing column '{missing[0]}'; a trajectory table needs "
                               f"{', '.join(REQUIRED_COLUMNS)} (optional {', '.join(MODE_COLUMNS)})")
    for col in ("temperature_c", "cycle", "soh", *[c for c in (*MODE_COLUMNS, *FRAME_COLUMNS) if c in frame.columns]):
        values = pd.to_numeric(frame[col], errors="coerce")
        if col in REQUIRED_COLUMNS and values.isna().any():
            raise CalibrationError(f"{path}: column '{col}' has a blank or non-numeric value at row "
                                   f"{int(np.flatnonzero(values.isna())[0])}")
        frame[col] = values
    if ((frame["soh"] <= 0) | (frame["soh"] > 1.5)).any():
        raise CalibrationError(f"{path}: column 'soh' must be a fraction of the first capacity in (0, 1.5]")
    if (frame["cycle"] < 0).any():
        raise CalibrationError(f"{path}: column 'cycle' must be >= 0")
    for cell, group in frame.groupby("cell_id", sort=False):
        if group["cycle"].min() != 0:
            raise CalibrationError(f"{path}: cell '{cell}' has no fresh reference test (cycle 0)")
        if group["temperature_c"].nunique() != 1:
            raise CalibrationError(f"{path}: cell '{cell}' has more than one temperature_c; one per cell")
    if all(c in frame.columns and frame[c].notna().any() for c in LLI_COLUMNS):  # a blank column is not given
        raise CalibrationError(f"{path}: both {' and '.join(LLI_COLUMNS)}; keep the one your degradation-mode "
                               "analysis reports (lli_capacity_pct: % of the fresh capacity; lli_pct: % of all "
                               "lithium in both electrodes)")
    for col in (*MODE_COLUMNS, *FRAME_COLUMNS):
        if col not in frame.columns:
            frame[col] = np.nan
    check_frames(frame, path)
    frame["cell_id"] = frame["cell_id"].astype(str)
    return frame[[*REQUIRED_COLUMNS, *MODE_COLUMNS, *FRAME_COLUMNS]].sort_values(["cell_id", "cycle"]).reset_index(drop=True)


def check_frames(frame: pd.DataFrame, path) -> None:
    """The positive frame columns: both or neither at a cell's fresh test, 0 <= top < bottom <= 1,
    and only beside ``lli_capacity_pct`` (the convention they are applied to)."""
    fresh = frame[frame["cycle"] == 0]
    given = fresh[list(FRAME_COLUMNS)].notna()
    if not given.to_numpy().any():
        return
    if frame["lli_pct"].notna().any():
        raise CalibrationError(f"{path}: {' and '.join(FRAME_COLUMNS)} apply to lli_capacity_pct; this table gives "
                               "lli_pct (drop the two columns, or give the LLI as lli_capacity_pct)")
    for (_, row), count in zip(fresh.iterrows(), given.sum(axis=1)):
        if count == 1:
            raise CalibrationError(f"{path}: cell '{row['cell_id']}' gives one of pe_lithiation_top and "
                                   "pe_lithiation_bottom at cycle 0; give both or neither")
        problem = frame_window_problem(row["pe_lithiation_top"], row["pe_lithiation_bottom"]) if count else None
        if problem:
            raise CalibrationError(f"{path}: cell '{row['cell_id']}': pe_lithiation_top and pe_lithiation_bottom at "
                                   f"cycle 0 {problem}")


def read_kirkaldy(root: str | Path) -> pd.DataFrame:
    """Kirkaldy et al. (J. Power Sources 2024) layout: per cell, ``... cell X (TdegC) -
    Extracted Data.csv`` (ageing cycles and the mean cell temperature of each ageing set)
    and ``DMA Output/cell X/*DM data*.csv`` (SoH, LLI, LAM NE_tot, LAM PE as fractions;
    their LLI is lithium lost over the fresh capacity, so it becomes ``lli_capacity_pct``) and
    ``*fitting parameters*.csv`` (the positive frame of each RPT: ``pe_lithiation_top`` =
    1 - ``PE_hi``, ``pe_lithiation_bottom`` = 1 - ``PE_lo``; module docstring).
    The temperature is the cells' own mean over the ageing sets (they self-heat above the
    chamber); ``chamber_temperature_c`` keeps the chamber's."""
    root = Path(root)
    frames = []
    for extracted in sorted(root.glob("* - cell * - Extracted Data.csv")):
        label = extracted.name.split(" - cell ")[1].split(" ")[0]
        chamber = float(extracted.name.split("(")[1].split("degC")[0])
        dm_files = sorted((root / "DMA Output" / f"cell {label}").glob("*DM data*.csv"))
        if not dm_files:
            raise CalibrationError(f"{root}: no 'DMA Output/cell {label}/*DM data*.csv' beside {extracted.name}")
        data, modes = pd.read_csv(extracted), pd.read_csv(dm_files[0])
        for col in ("Ageing Cycles", "Age set average temperature (degC)"):
            if col not in data.columns:
                raise CalibrationError(f"{extracted}: missing column '{col}'")
        for col in ("SoH", "LLI", "LAM NE_tot", "LAM PE"):
            if col not in modes.columns:
                raise CalibrationError(f"{dm_files[0]}: missing column '{col}'")
        n = min(len(data), len(modes))
        cell_temperature = float(pd.to_numeric(data["Age set average temperature (degC)"], errors="coerce").mean())
        windows = sorted((root / "DMA Output" / f"cell {label}").glob("*fitting parameters*.csv"))
        window = pd.read_csv(windows[0]) if windows else pd.DataFrame({"PE_lo": [np.nan] * n, "PE_hi": [np.nan] * n})
        for col in ("PE_lo", "PE_hi"):
            if col not in window.columns:
                raise CalibrationError(f"{windows[0]}: missing column '{col}'")
        window = window.reindex(range(n))
        frames.append(pd.DataFrame({
            "cell_id": label, "temperature_c": round(cell_temperature, 1),
            "cycle": data["Ageing Cycles"][:n].astype(int), "soh": modes["SoH"][:n].astype(float),
            "lli_capacity_pct": 100 * modes["LLI"][:n], "lam_ne_pct": 100 * modes["LAM NE_tot"][:n],
            "lam_pe_pct": 100 * modes["LAM PE"][:n],
            "pe_lithiation_top": 1.0 - window["PE_hi"].to_numpy(float), "pe_lithiation_bottom": 1.0 - window["PE_lo"].to_numpy(float),
            "chamber_temperature_c": chamber}))
    if not frames:
        raise CalibrationError(f"{root}: no '* - cell * - Extracted Data.csv' files (Kirkaldy et al. layout)")
    frame = pd.concat(frames, ignore_index=True)
    frame["lli_pct"] = np.nan  # the other convention (module docstring); not reported
    check_frames(frame, root)
    return frame[[*REQUIRED_COLUMNS, *MODE_COLUMNS, *FRAME_COLUMNS, "chamber_temperature_c"]]


# --- the problem -----------------------------------------------------------------------

def _simulate_cell(design: Design, temperature_k: float, row: dict, rpt_cycles: list[int],
                   frame_window: tuple[float, float] | None = None) -> dict:
    """One cell's aging run (in a worker): RPT cycles, SOH and modes, and its status.
    ``frame_window``: the DMA's positive frame (module docstring), in which
    ``lli_capacity_pct`` is then counted; ``lli_capacity_all_pct`` counts all lithium."""
    from ..labels.tables import lli_capacity_pct, lli_capacity_pct_in_frame
    from ..simulate.aging import get_aging_engine

    engine = get_aging_engine(design, design.protocols[0].protocol_id, temperature_k)
    engine.ensure_built(row)
    run = engine.run(row, rpt_cycles=rpt_cycles)
    q0 = np.ptp(run.snapshots[0].discharged_ah) if run.snapshots else np.nan
    modes = {c: [float(s.summary[c]) for s in run.snapshots] for c in ("lam_ne_pct", "lam_pe_pct")}
    # both LLI conventions counted from the first RPT, as a measured table counts (0 at its fresh test)
    first = run.snapshots[0].summary if run.snapshots else {}
    modes["lli_pct"] = [float(s.summary["lli_pct"] - first["lli_pct"]) for s in run.snapshots]
    modes["lli_capacity_all_pct"] = [lli_capacity_pct(s.summary, first, q0) for s in run.snapshots]
    model_window = (run.snapshots[0].pe_lithiation_top, run.snapshots[0].pe_lithiation_bottom) if run.snapshots \
        else (math.nan, math.nan)
    modes["lli_capacity_pct"] = modes["lli_capacity_all_pct"] if frame_window is None else [
        lli_capacity_pct_in_frame(s.summary, first, q0, model_window, frame_window) for s in run.snapshots]
    return {"status": run.status, "failure_reason": run.failure_reason,
            "cycle": [int(s.cycle) for s in run.snapshots], "pe_model_window": model_window,
            "soh": [float(np.ptp(s.discharged_ah) / q0) for s in run.snapshots], **modes}


@dataclass
class TrajectoryProblem:
    """Measured trajectories, the usage that made them, and the parameters to fit.

    ``model_design`` (default: the usage design) supplies the model: its model, options,
    parameter set, fixed values, mesh and solver replace the usage design's, so parameters
    are fitted with the model that will use them. ``fixed`` holds values for the design's other varied parameters (default: the
    median of each distribution); parameters not named keep the parameter set's value.
    """

    usage_design: Design
    trajectories: pd.DataFrame
    parameters: list[FitParameter]
    fixed: dict = field(default_factory=dict)
    compile_model: bool | None = None  # None: as the design says
    model_design: Design | None = None
    per_cell: tuple[str, ...] = ()  # parameters fitted once per cell (cell-to-cell variation), not shared

    def __post_init__(self):
        if len(self.usage_design.protocols) != 1:
            raise CalibrationError(f"design '{self.usage_design.name}': the usage design needs exactly one protocol, "
                                   f"has {len(self.usage_design.protocols)}")
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            raise CalibrationError("--fit: a parameter is named twice")
        raw = copy.deepcopy(self.usage_design.raw)
        if self.model_design is not None:
            for key in ("model", "model_options", "parameter_set", "fixed", "mesh", "solver"):
                raw.pop(key, None)
                if key in self.model_design.raw:
                    raw[key] = copy.deepcopy(self.model_design.raw[key])
        others = {k: v for k, v in raw.get("varied", {}).items() if k not in names}
        self.fixed = {**{k: float(self.usage_design.varied[k].ppf(0.5)) for k in others}, **self.fixed}
        raw["varied"] = {p.name: {"distribution": "uniform", "low": p.low, "high": p.high} for p in self.parameters}
        raw["varied"].update({k: {"distribution": "uniform", "low": v, "high": v * 1.000001 if v else 1e-300}
                              for k, v in self.fixed.items()})
        raw["ambient_temperatures_c"] = sorted({float(t) for t in self.trajectories["temperature_c"]})
        raw["aging"] = {**raw["aging"], "max_cycles": int(self.trajectories["cycle"].max()),
                        "rpt_interval_cycles": int(self.trajectories["cycle"].max()), "stop_soh": 0.3}
        raw["aging"].pop("rpt_pulse", None)  # pulses are not fitted
        raw["aging"].pop("rpt_fade_step", None)
        raw["eis"] = {**raw.get("eis", {}), "enabled": False}
        if self.compile_model is not None:
            raw.setdefault("solver", {})["compile"] = bool(self.compile_model)
        try:
            self.design = parse_design(raw, f"aging fit on {self.usage_design.name}")
        except Exception as exc:
            raise CalibrationError(str(exc)) from exc
        self.cells = []
        self.frames = {}  # cell -> its DMA's positive frame at the fresh test, or None (all lithium counts)
        for cell, g in self.trajectories.groupby("cell_id", sort=True):
            self.cells.append((str(cell), float(g["temperature_c"].iloc[0]) + 273.15, sorted(int(c) for c in g["cycle"] if c > 0)))
            fresh = g[g["cycle"] == 0]
            window = tuple(float(fresh[c].iloc[0]) if c in g and len(fresh) else math.nan for c in FRAME_COLUMNS)
            self.frames[str(cell)] = window if all(math.isfinite(v) for v in window) else None
        if isinstance(self.per_cell, str):  # one name, not its characters
            self.per_cell = (self.per_cell,)
        unknown = [name for name in self.per_cell if name not in names]
        if unknown:
            raise CalibrationError(f"--per-cell: '{unknown[0]}' is not a fitted parameter; allowed: {', '.join(names)}")
        self.per_cell = tuple(dict.fromkeys(self.per_cell))
        self._solved: dict = {}  # (cell, row) -> one cell's result: a Jacobian column of a per-cell value solves one cell

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def slots(self) -> list[tuple[FitParameter, str | None]]:
        """The entries of x in order: (parameter, None) for a shared one, (parameter, cell)
        for each cell of a per-cell one."""
        return [(p, cell) for p in self.parameters
                for cell in ([c for c, _, _ in self.cells] if p.name in self.per_cell else [None])]

    @property
    def labels(self) -> list[str]:
        """x's entries by name; a per-cell value reads ``<parameter> | cell <id>``."""
        return [p.name if cell is None else f"{p.name} | cell {cell}" for p, cell in self.slots]

    def split(self, x) -> dict:
        """x by parameter name: a float, or for a per-cell parameter {cell: x}."""
        out: dict = {}
        for (p, cell), v in zip(self.slots, x):
            if cell is None:
                out[p.name] = float(v)
            else:
                out.setdefault(p.name, {})[cell] = float(v)
        return out

    def join(self, by_name: dict) -> np.ndarray:
        """x from :meth:`split`'s form; a per-cell parameter given one value (or the values of
        other cells only) takes that value (their mean in x) for every cell it lacks."""
        x = []
        for p, cell in self.slots:
            v = by_name[p.name]
            if isinstance(v, dict):
                v = v[cell] if cell in v else float(np.mean(list(v.values())))
            x.append(float(v))
        return np.asarray(x)

    def row(self, x, cell: str | None = None) -> dict:
        """The parameter values ``cell`` (any, if no parameter is per-cell) is simulated with."""
        return {**self.fixed, **{p.name: p.from_x(float(v)) for (p, c), v in zip(self.slots, x) if c in (None, cell)}}

    def subset(self, cell_ids) -> TrajectoryProblem:
        keep = self.trajectories["cell_id"].isin([str(c) for c in cell_ids])
        return TrajectoryProblem(self.usage_design, self.trajectories[keep].reset_index(drop=True), self.parameters,
                                 dict(self.fixed), self.compile_model, self.model_design, self.per_cell)

    def simulate_many(self, xs, workers: int = 1) -> list[pd.DataFrame]:
        """Simulated trajectories (one frame per x, all cells), solving in parallel; a cell
        whose parameter values were solved before is not solved again."""
        keys, tasks = [], {}
        for x in xs:
            for cell, t_k, rpts in self.cells:
                key = (cell, tuple(sorted(self.row(x, cell).items())))
                keys.append(key)
                if key not in self._solved:
                    tasks[key] = (self.design, t_k, dict(key[1]), rpts, self.frames.get(cell))
        if workers > 1 and len(tasks) > 1:
            from joblib import Parallel, delayed

            solved = Parallel(n_jobs=min(workers, len(tasks)), backend="loky", batch_size=1, max_nbytes=None)(
                delayed(_simulate_cell)(*task) for task in tasks.values())
        else:
            solved = [_simulate_cell(*task) for task in tasks.values()]
        self._solved.update(zip(tasks, solved))
        results = [self._solved[k] for k in keys]
        frames = []
        for i in range(len(xs)):
            parts = []
            for (cell, t_k, _), res in zip(self.cells, results[i * len(self.cells):(i + 1) * len(self.cells)]):
                part = pd.DataFrame({k: res[k] for k in ("cycle", "soh", *MODE_COLUMNS, "lli_capacity_all_pct")})
                part.insert(0, "cell_id", cell)
                part["pe_model_top"], part["pe_model_bottom"] = res["pe_model_window"]
                part["status"] = res["status"]
                part["failure_reason"] = res["failure_reason"]
                parts.append(part)
            frames.append(pd.concat(parts, ignore_index=True))
        return frames

    def residuals(self, simulated: pd.DataFrame) -> np.ndarray:
        """(simulated - measured) / target at every measured point after cycle 0."""
        merged = self.trajectories[self.trajectories["cycle"] > 0].merge(
            simulated, on=["cell_id", "cycle"], how="left", suffixes=("", "_sim"))
        parts = []
        for col, target in TARGETS.items():
            measured = merged[col].to_numpy(float)
            sim = merged[f"{col}_sim"].to_numpy(float)
            r = (sim - measured) / target
            r = np.where(np.isnan(measured), 0.0, np.where(np.isnan(sim), MISSING_PENALTY, r))
            parts.append(r)
        return np.concatenate(parts)

    def errors(self, simulated: pd.DataFrame) -> pd.DataFrame:
        """Per cell and measured column (a column the table leaves blank, e.g. the other LLI
        convention, has no entry): the largest and the RMS absolute error over the RPTs after
        cycle 0 (SOH in %-points like the modes)."""
        merged = self.trajectories[self.trajectories["cycle"] > 0].merge(
            simulated, on=["cell_id", "cycle"], how="left", suffixes=("", "_sim"))
        measured = [col for col in TARGETS if self.trajectories[col].notna().any()]
        rows = []
        for cell, g in merged.groupby("cell_id", sort=True):
            row = {"cell_id": cell, "temperature_c": float(g["temperature_c"].iloc[0])}
            for col in measured:
                scale = 100.0 if col == "soh" else 1.0
                d = (g[f"{col}_sim"] - g[col]).to_numpy(float) * scale
                d = d[np.isfinite(g[col].to_numpy(float))]
                row[f"{col}_max_pp"] = float(np.nanmax(np.abs(d))) if d.size and np.isfinite(d).any() else math.nan
                row[f"{col}_rms_pp"] = float(np.sqrt(np.nanmean(d**2))) if d.size and np.isfinite(d).any() else math.nan
                row[f"{col}_missing"] = int(np.isnan(d).sum())
            rows.append(row)
        return pd.DataFrame(rows)


@dataclass
class TrajectoryFit:
    """The result of :func:`fit_trajectories`."""

    names: list[str]
    x0: np.ndarray
    x: np.ndarray
    values: dict
    x_std: np.ndarray  # Gauss-Newton standard deviation of x (log10 units or `unit` steps)
    cost_before: float
    cost_after: float
    errors_before: pd.DataFrame
    errors_after: pd.DataFrame
    simulated: pd.DataFrame
    evaluations: int
    wall_time_s: float
    at_bound: list[str]
    message: str
    # Gauss-Newton correlation of x's entries (in ``names`` order), for drawing them jointly
    correlation: np.ndarray | None = None


def starting_x(problem: TrajectoryProblem, values: dict | None = None) -> np.ndarray:
    """Each parameter's start in x: ``values`` where given (e.g. a previous fit), else the
    usage design's parameter set, else (outside the bounds, as a term that is off) its own
    ``start``."""
    from ..simulate.aging import base_parameter_values

    pv = base_parameter_values(problem.usage_design)

    def x_of(p: FitParameter, value) -> float:
        value = float(value)
        if not p.low <= value <= p.high and p.start is not None:
            value = p.start
        return p.to_x(min(max(value, p.low), p.high))

    by_name = {}
    for p in problem.parameters:
        value = (values or {}).get(p.name, pv[p.name])
        # per-cell values (from a per-cell fit) stay per cell; join gives a cell they lack their mean in x
        by_name[p.name] = {c: x_of(p, v) for c, v in value.items()} if isinstance(value, dict) else x_of(p, value)
    return problem.join(by_name)


def fit_trajectories(problem: TrajectoryProblem, x0=None, max_evaluations: int = 40, workers: int = 1,
                     step: float = 0.2, scan=(1.0, 3.0, 10.0, 30.0), progress: Callable[[str], None] | None = None
                     ) -> TrajectoryFit:
    """Least-squares fit of ``problem.parameters`` to the measured trajectories.

    Starts from ``x0`` (default: the parameter set's values) and first tries every rate
    multiplied by each factor of ``scan`` together (one solve each, in parallel), keeping
    the best as the start: literature rates can be a decade or more off, further than a
    local method finds its way from. The optimiser then works on the offset from that
    start (so its first trust region is one decade, not the size of the log values).
    ``step`` is the forward-difference step in x: a jumped aging run moves by a few
    hundredths of a %-point when a rate changes slightly, so the step must be large
    enough for a change in the rate to stand out of that (0.2 decade = x1.6).
    """
    from scipy.optimize import least_squares

    t0 = time.perf_counter()
    params = [p for p, _ in problem.slots]
    labels = problem.labels
    shorts = [re.sub(r" \[[^]]*\]", "", label) for label in labels]  # without units, for the progress line
    lower = np.array([p.x_bounds[0] for p in params])
    upper = np.array([p.x_bounds[1] for p in params])
    if x0 is None:
        x0 = starting_x(problem)
    x0 = np.clip(np.asarray(x0, float), lower, upper)
    cache: dict[tuple, tuple[np.ndarray, pd.DataFrame]] = {}
    count = [0]

    def key(x):
        return tuple(np.round(x, 10))

    def evaluate(xs):
        # by point x: its residuals, and the count the budget is in (distinct points). The
        # problem keeps each cell's solve by its values, so a point that changes one cell's
        # per-cell value solves that cell only; the two caches hold different things.
        todo = list({key(x): x for x in xs if key(x) not in cache}.values())
        if todo:
            for x, frame in zip(todo, problem.simulate_many(todo, workers)):
                cache[key(x)] = (problem.residuals(frame), frame)
            count[0] += len(todo)
        return [cache[key(x)] for x in xs]

    def say(x, r):
        if progress:
            progress(f"evaluation {count[0]}: cost {0.5 * float(r @ r):.1f} at "
                     + ", ".join(f"{short} {p.from_x(v):.3g}" for short, p, v in zip(shorts, params, x)))

    logs = np.array([p.log and p.scanned for p in params])
    starts = [np.clip(x0 + logs * math.log10(f), lower, upper) for f in scan] if len(scan) else [x0]
    scanned = evaluate(starts)
    best = int(np.argmin([float(r @ r) for r, _ in scanned]))
    start = starts[best]
    say(start, scanned[best][0])

    def fun(u):
        r, _ = evaluate([start + u])[0]
        say(start + u, r)
        return r

    def jac(u):
        x = start + u
        steps = np.where(x + step <= upper, step, -step)  # backward where forward would leave the bounds
        points = [x + np.eye(len(x))[i] * steps[i] for i in range(len(x))]
        base, _ = evaluate([x])[0]
        return np.column_stack([(r - base) / s for (r, _), s in zip(evaluate(points), steps)])

    r0, sim0 = evaluate([x0])[0]
    left = max(2, (max_evaluations - count[0]) // (len(x0) + 1))
    result = least_squares(fun, np.zeros(len(x0)), jac=jac, bounds=(lower - start, upper - start), method="trf",
                           x_scale=1.0, max_nfev=left, xtol=1e-3, ftol=1e-3)
    x = start + result.x
    r, sim = evaluate([x])[0]
    J = jac(result.x)
    dof = max(1, len(r) - len(x))
    s2 = float(r @ r) / dof
    try:
        covariance = s2 * np.linalg.inv(J.T @ J)
        x_std = np.sqrt(np.clip(np.diag(covariance), 0, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            correlation = np.clip(covariance / np.outer(x_std, x_std), -1.0, 1.0)
    except np.linalg.LinAlgError:
        x_std = np.full(len(x), np.nan)
        correlation = np.full((len(x), len(x)), np.nan)
    at_bound = [label for label, v, lo, hi in zip(labels, x, lower, upper) if min(v - lo, hi - v) < 1e-3]
    return TrajectoryFit(
        names=labels, x0=x0, x=x, values={label: p.from_x(v) for label, p, v in zip(labels, params, x)}, x_std=x_std,
        cost_before=0.5 * float(r0 @ r0), cost_after=0.5 * float(r @ r),
        errors_before=problem.errors(sim0), errors_after=problem.errors(sim), simulated=sim,
        evaluations=count[0], wall_time_s=time.perf_counter() - t0, at_bound=at_bound, message=str(result.message),
        correlation=correlation)


def leave_one_out(problem: TrajectoryProblem, fit: TrajectoryFit, max_evaluations: int = 24, workers: int = 1,
                  progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Refit without each temperature in turn (from the full fit) and predict it: the
    held-out cell's errors with the parameters the other cells gave. A per-cell parameter
    of the held-out cell is unknown to the others; it is predicted by their mean (in x).
    Each row holds the refit's x of every parameter as ``x:<name>`` (a per-cell one: the mean)."""
    rows = []
    full = problem.split(fit.x)
    for cell, t_k, _ in problem.cells:
        others = [c for c, _, _ in problem.cells if c != cell]
        part = problem.subset(others)
        sub = fit_trajectories(part, x0=part.join(full), max_evaluations=max_evaluations, workers=workers,
                               scan=(), progress=progress)
        refit = part.split(sub.x)
        held = problem.subset([cell])
        predicted = held.simulate_many([held.join(refit)], workers)[0]
        err = held.errors(predicted).iloc[0].to_dict()
        xs = {f"x:{name}": float(np.mean(list(v.values()))) if isinstance(v, dict) else v for name, v in refit.items()}
        rows.append({"held_out_cell": cell, "temperature_c": t_k - 273.15,
                     **xs, **{k: v for k, v in err.items() if k != "cell_id"}})
    return pd.DataFrame(rows)
