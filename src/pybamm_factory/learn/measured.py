"""Measured files -> observations (one row per cell and reference test) with the features
of :mod:`learn.features`, computed by the same functions as for the factory's data.

Accepted inputs, told apart by their content:

* **spectrum files** (anything ``read_spectrum`` reads): one observation per sweep, in
  file order; the cell is the file's stem unless ``cell_id`` is given, so a cell's
  spectra given as several files need one ``cell_id``;
* **wide spectrum tables** with one spectrum per row: columns ``ZReal_<f>Hz`` and
  ``ZImag_<f>Hz`` (the layout of Zhang et al. 2020), a cell column (``cell``,
  ``cell_id``, ``seriesIdx``), a ``cycle`` column and optionally a capacity column
  (``Q``, ``capacity...``), which gives a measured SOH (capacity / the cell's first);
  the sign of the imaginary columns is decided from the data (capacitive arc negative);
* **RPT summary tables**: one row per reference test with a capacity column (the lowest
  C-rate one when several, e.g. ``C/10 Capacity (mA.h)``), optionally a resistance
  column and a cycle column (``Ageing Cycles``, ``cycle``) - the layout of Kirkaldy et al.;
  usage columns where the table has them: cumulative charge throughput (a column naming
  ``throughput`` and not energy, in A.h or mA.h, counting charge and discharge), elapsed
  days (a column naming ``day``; else days between the rows' first ``date`` column) and
  temperature (a column naming ``temperature``, degC unless it says K); a cumulative
  column left empty at the first row counts as 0 there;
* **cycler exports** (anything ``read_cycler`` reads): each constant-current discharge
  longer than ``min_discharge_s`` is a reference discharge, resampled onto the factory's
  101-point capacity grid before its ICA/DVA features are taken; its usage is the
  throughput (|I| integrated) and test time from the file's start to the discharge's,
  and the mean of the file's temperature column up to it.

The first observation of each cell is the reference of its relative features, so give a
cell's measurements from its first one on.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..labels.curves import curve_table
from ..readers import ReaderError, discharge_segments, is_wide_spectrum_header, read_cycler, read_spectrum
from .features import add_relative, add_usage, curve_observables, spectrum_observables

CELL_COLUMNS = ("cell_id", "cell", "seriesidx", "series_idx", "battery", "battery_id")
CYCLE_COLUMNS = ("cycle", "cycle_index", "cycles", "ageing cycles", "aging cycles", "cycle_number")


def _column(columns, names) -> str | None:
    lower = {str(c).strip().lower(): c for c in columns}
    for n in names:
        if n in lower:
            return lower[n]
    return None


def _head_columns(path: Path) -> list[str] | None:
    try:
        head = pd.read_csv(path, nrows=2)
    except Exception:  # noqa: BLE001 - not a plain CSV: another reader decides
        return None
    return [str(c) for c in head.columns]


def _is_wide_spectra(columns) -> bool:
    return is_wide_spectrum_header(columns)


def _capacity_columns(columns) -> list[str]:
    return [c for c in columns if "capacity" in c.lower() and "throughput" not in c.lower()]


def _is_rpt_table(columns) -> bool:
    return bool(_capacity_columns(columns)) and not any(c.lower().startswith(("voltage", "current")) for c in columns)


def _ah_factor(column: str) -> float:
    text = column.lower().replace(" ", "")
    return 1e-3 if ("mah" in text or "ma.h" in text) else 1.0


def _c_rate_of(column: str) -> float:
    m = re.search(r"c\s*/\s*([0-9.]+)", column, re.I)
    if m:
        return 1.0 / float(m.group(1))
    m = re.search(r"([0-9.]+)\s*c\b", column, re.I)
    return float(m.group(1)) if m else np.inf


def read_wide_spectra(path: Path) -> pd.DataFrame:
    spectra = read_spectrum(path)  # one sweep per row of the table, its other columns carried along
    columns = [c for c in spectra.columns if c not in ("sweep_id", "soc", "frequency_hz", "z_real_ohm", "z_imag_ohm")]
    cell_col = _column(columns, CELL_COLUMNS)
    cycle_col = _column(columns, CYCLE_COLUMNS)
    cap_cols = [c for c in columns if c in ("Q",) or "capacity" in c.lower()]
    rows = []
    for k, (_, g) in enumerate(spectra.groupby("sweep_id", sort=False)):
        first = g.iloc[0]
        row = {"cell_id": f"{path.stem}:{first[cell_col]}" if cell_col else path.stem,
               "cycle": float(first[cycle_col]) if cycle_col else float(k),
               "source": f"{path.name}:row{k}"}
        if cap_cols:
            row["capacity_measured"] = float(first[cap_cols[0]]) * _ah_factor(cap_cols[0])
        row.update(spectrum_observables(g["frequency_hz"].to_numpy(), g["z_real_ohm"].to_numpy(),
                                        g["z_imag_ohm"].to_numpy()))
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["note"] = f"{path.name}: {'; '.join(spectra.attrs['notes'])}; {spectra.attrs['convention']}"
    return frame


def _named(columns, word: str, unless: tuple[str, ...] = ()) -> str | None:
    return next((c for c in columns if word in c.lower() and not any(u in c.lower() for u in unless)), None)


def _cumulative(values: pd.Series) -> pd.Series:
    values = pd.to_numeric(values, errors="coerce").astype(float)
    if len(values) and np.isnan(values.iloc[0]) and values.notna().any():
        values.iloc[0] = 0.0  # nothing counted yet at the first reference test
    return values


def _temperature_c(values: pd.Series, column: str) -> pd.Series:
    """Running mean of a temperature column up to each row (degC; kelvin when the name says
    so), rows before the first reading take the first running mean."""
    t = pd.to_numeric(values, errors="coerce").astype(float)
    if re.search(r"\(\s*k\s*\)|\[\s*k\s*\]|kelvin", column, re.I):
        t = t - 273.15
    return t.expanding().mean().bfill()


def _rpt_usage(table: pd.DataFrame, columns) -> pd.DataFrame:
    """Cumulative throughput (A.h), elapsed days and running-mean temperature of an RPT table's rows."""
    out = pd.DataFrame(index=table.index)
    tp = _named(columns, "throughput", unless=("energy", "w.h", "wh"))
    out["throughput_ah"] = _cumulative(table[tp]) * _ah_factor(tp) if tp else np.nan
    day = _named(columns, "day")
    date = _named(columns, "date")
    if day:
        out["elapsed_days"] = _cumulative(table[day])
    elif date:
        when = pd.to_datetime(table[date], errors="coerce")
        out["elapsed_days"] = (when - when.dropna().iloc[0]).dt.total_seconds() / 86400.0 if when.notna().any() else np.nan
    else:
        out["elapsed_days"] = np.nan
    temp = _named(columns, "temperature")
    out["usage_temperature_c"] = _temperature_c(table[temp], temp) if temp else np.nan
    out.attrs["columns"] = [c for c in (tp, day or date, temp) if c]
    return out


def read_rpt_table(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path)
    columns = [str(c) for c in table.columns]
    caps = sorted(_capacity_columns(columns), key=_c_rate_of)
    cap = caps[0]
    res_col = next((c for c in columns if "resistance" in c.lower()), None)
    cycle_col = _column(columns, CYCLE_COLUMNS)
    usage = _rpt_usage(table, columns)
    rows = []
    for k in range(len(table)):
        capacity = float(table[cap].iloc[k]) * _ah_factor(cap)
        row = {"cell_id": path.stem, "cycle": float(table[cycle_col].iloc[k]) if cycle_col else float(k),
               "source": f"{path.name}:row{k}", "capacity_measured": capacity, "curve_capacity_ah": capacity,
               **usage.iloc[k].to_dict()}
        if res_col is not None:
            unit = 1e-3 if "mohm" in res_col.lower().replace(" ", "") else 1.0
            row["resistance_ohm"] = float(table[res_col].iloc[k]) * unit
        rows.append(row)
    frame = pd.DataFrame(rows)
    used = usage.attrs["columns"]
    frame.attrs["note"] = (f"{path.name}: {len(table)} reference tests, capacity from '{cap}'"
                           + (f", resistance from '{res_col}'" if res_col else "")
                           + (f", usage from {', '.join(repr(c) for c in used)}" if used else ""))
    return frame


def read_spectrum_file(path: Path, cell_id: str | None) -> pd.DataFrame:
    spectra = read_spectrum(path)
    rows = []
    for k, (sweep_id, g) in enumerate(spectra.groupby("sweep_id", sort=False)):
        rows.append({"cell_id": cell_id or path.stem, "cycle": np.nan, "source": str(sweep_id),
                     "soc_measured": g["soc"].iloc[0],
                     **spectrum_observables(g["frequency_hz"], g["z_real_ohm"], g["z_imag_ohm"])})
    frame = pd.DataFrame(rows)
    frame.attrs["note"] = f"{path.name}: {len(rows)} spectra"
    return frame


def read_cycler_file(path: Path, cell_id: str | None, min_discharge_s: float = 600.0) -> pd.DataFrame:
    data = read_cycler(path)
    charging = data.loc[data["step_type"] == "charge", "voltage_v"]
    # the charge limit the file's charges hold (their CV step): a high quantile, so a
    # spike or a charge pulse's overshoot does not set it
    upper_v = float(charging.quantile(0.995)) if len(charging) else float("nan")
    # usage up to each record: charge moved (|I| integrated, A.h), test time, running-mean temperature
    t = data["time_s"].to_numpy(float)
    current = np.abs(data["current_a"].to_numpy(float))
    moved_ah = np.concatenate([[0.0], np.cumsum(0.5 * (current[1:] + current[:-1]) * np.diff(t) / 3600.0)])
    temperature = data["temperature_c"].expanding().mean().bfill().to_numpy(float)
    rows = []
    for seg in discharge_segments(data, min_duration_s=min_discharge_s):
        table = curve_table(seg["discharged_ah"].to_numpy(), seg["voltage_v"].to_numpy())
        start = seg.attrs["start_row"]
        rows.append({"cell_id": cell_id or path.stem, "cycle": float(seg["cycle_index"].iloc[0]), "source": path.name,
                     "throughput_ah": float(moved_ah[start]), "elapsed_days": float(t[start]) / 86400.0,
                     "usage_temperature_c": float(temperature[start]),
                     "capacity_measured": float(seg["discharged_ah"].iloc[-1]),
                     "discharge_current_a": float(seg["current_a"].median()),
                     "lower_voltage_v": float(seg["voltage_v"].min()), "upper_voltage_v": upper_v,
                     **curve_observables(table["discharged_capacity_ah"], table["voltage_v"])})
    if not rows:
        raise ReaderError(f"{path}: no constant-current discharge longer than {min_discharge_s:g} s")
    frame = pd.DataFrame(rows)
    frame.attrs["note"] = f"{path.name}: {len(rows)} constant-current discharges"
    return frame


def observations(paths, cell_id: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Features of every measured file, relative features added per cell; and one note per file."""
    frames, notes = [], []
    for order, path in enumerate(Path(p) for p in paths):
        if not path.is_file():
            raise ReaderError(f"{path}: no such file")
        columns = _head_columns(path) if path.suffix.lower() in (".csv", ".txt", "") else None
        if columns and _is_wide_spectra(columns):
            frame = read_wide_spectra(path)
        elif columns and _is_rpt_table(columns):
            frame = read_rpt_table(path)
        else:
            try:
                frame = read_spectrum_file(path, cell_id)
            except ReaderError:
                frame = read_cycler_file(path, cell_id)
        if cell_id and "cell_id" in frame:
            frame["cell_id"] = cell_id
        frame["file_order"] = order
        notes.append(frame.attrs.get("note", path.name))
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    # observation order within a cell: its cycle column, else the order given (files, rows, sweeps)
    frame["order"] = frame["cycle"].fillna(pd.Series(np.arange(len(frame), dtype=float), index=frame.index))
    frame = add_relative(frame, cell="cell_id", order="order")
    if "capacity_measured" in frame:
        frame = add_usage(frame, throughput_ah="throughput_ah", days="elapsed_days", capacity_ah="capacity_measured")
    if "capacity_measured" in frame:
        first = frame.groupby("cell_id", sort=False)["capacity_measured"].transform("first")
        frame["soh_measured"] = frame["capacity_measured"] / first
    return frame, notes
