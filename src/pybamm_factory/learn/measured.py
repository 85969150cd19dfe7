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
from ..readers.derived import throughput_ah
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


def _pick(columns, pattern: str, unless: str | None = None, prefer: str | None = None) -> str | None:
    """The column whose name matches ``pattern`` (a regex, case-insensitive) and not
    ``unless``; among several, the first that also matches ``prefer``, else the first."""
    found = [c for c in columns if re.search(pattern, c, re.I) and not (unless and re.search(unless, c, re.I))]
    preferred = [c for c in found if prefer and re.search(prefer, c, re.I)]
    return (preferred or found or [None])[0]


def _cumulative(values: pd.Series) -> pd.Series | None:
    """A running total (throughput, days); None when it is not one (it falls anywhere)."""
    values = pd.to_numeric(values, errors="coerce").astype(float)
    if not values.notna().any() or (values.dropna().diff() < 0).any():
        return None
    if np.isnan(values.iloc[0]):
        values.iloc[0] = 0.0  # nothing counted yet at the first reference test
    return values


def _temperature_c(values: pd.Series, column: str) -> pd.Series:
    """Running mean of a temperature column up to each row, in degC: kelvin when the name
    says so (``(K)``, ``[K]``, ``_K``, kelvin) or the readings' median is above 150. Rows
    before the first reading take the first running mean."""
    t = pd.to_numeric(values, errors="coerce").astype(float)
    if re.search(r"[(\[_ ]\s*k\s*[)\]]?\s*$|kelvin", column, re.I) or t.median() > 150:
        t = t - 273.15
    return t.expanding().mean().bfill()


# usage columns of an RPT summary, by name: the charge moved (not energy, not per cycle or per
# set); days since the start (not since the last test); a date per test (the one with the
# fewest gaps, a test's or RPT's first); the temperature (an average or ambient one first,
# never a maximum, minimum, rise or set point)
THROUGHPUT = (r"throughput", r"energy|w\.?h\b|per[ _]|increment|delta")
DAYS = (r"\bdays?\b", r"since last|per[ _]|between|increment|delta")
DATE = (r"\bdate\b", r"update")
TEMPERATURE = (r"temp", r"max|min|rise|set ?point|delta", r"av(e|g|erage)|mean|ambient|chamber")


def _rpt_usage(table: pd.DataFrame, columns) -> pd.DataFrame:
    """Cumulative throughput (A.h), elapsed days and running-mean temperature of an RPT
    table's rows; ``attrs["columns"]`` names the columns used, ``attrs["notes"]`` what was not."""
    out = pd.DataFrame(index=table.index)
    used, notes = [], []
    tp = _pick(columns, *THROUGHPUT)
    moved = _cumulative(table[tp]) if tp else None
    if tp and moved is None:
        notes.append(f"'{tp}' is not a running total: no throughput")
    out["throughput_ah"] = moved * _ah_factor(tp) if moved is not None else np.nan
    if moved is not None:
        used.append(f"'{tp}' (taken as charge and discharge moved)")
    day = _pick(columns, *DAYS)
    days = _cumulative(table[day]) if day else None
    if days is not None:
        used.append(f"'{day}'")
    else:
        dates = [c for c in columns if re.search(DATE[0], c, re.I) and not re.search(DATE[1], c, re.I)]
        parsed = {c: pd.to_datetime(table[c], errors="coerce") for c in dates}
        best = max(dates, key=lambda c: (parsed[c].notna().sum(), bool(re.search(r"rpt|test|measure", c, re.I))),
                   default=None)
        if best is not None and pd.notna(parsed[best].iloc[0]):
            days = (parsed[best] - parsed[best].iloc[0]).dt.total_seconds() / 86400.0
            used.append(f"'{best}' (days since the first test)")
        elif best is not None:
            notes.append(f"'{best}' has no date at the first test: no elapsed days")
    out["elapsed_days"] = days if days is not None else np.nan
    temp = _pick(columns, *TEMPERATURE)
    out["usage_temperature_c"] = _temperature_c(table[temp], temp) if temp else np.nan
    if temp:
        used.append(f"'{temp}'")
    out.attrs["columns"], out.attrs["notes"] = used, notes
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
    used, skipped = usage.attrs["columns"], usage.attrs["notes"]
    frame.attrs["note"] = (f"{path.name}: {len(table)} reference tests, capacity from '{cap}'"
                           + (f", resistance from '{res_col}'" if res_col else "")
                           + (f", usage from {', '.join(used)}" if used else "")
                           + (f" ({'; '.join(skipped)})" if skipped else ""))
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
    dt = np.clip(np.diff(t), 0.0, None)  # a clock that steps back adds nothing
    moved_ah = throughput_ah(data)
    # time-weighted running mean of the temperature (a cycler logs densest in its tests)
    temp = data["temperature_c"].to_numpy(float)
    seen = np.isfinite(temp)
    weight = np.concatenate([[0.0], dt]) * seen
    with np.errstate(invalid="ignore", divide="ignore"):
        temperature = np.cumsum(np.where(seen, temp, 0.0) * weight) / np.cumsum(weight)
    temperature = pd.Series(temperature).ffill().bfill().to_numpy(float) if seen.any() else np.full(len(t), np.nan)
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
        # usage is counted within one file: a cell split over several files (each counting
        # from its own start) gets none, rather than totals that restart
        for column in ("throughput_ah", "elapsed_days"):
            if column in frame:
                split = frame.dropna(subset=[column]).groupby("cell_id")["file_order"].transform("nunique") > 1
                cells = set(frame.loc[split[split].index, "cell_id"])
                if cells:
                    frame.loc[frame["cell_id"].isin(cells), column] = np.nan
                    notes.append(f"{column} not counted for {', '.join(sorted(map(str, cells)))}: "
                                 f"its files each count from their own start")
        frame = add_usage(frame, throughput_ah="throughput_ah", days="elapsed_days", capacity_ah="capacity_measured",
                          order="order")
        first = frame.groupby("cell_id", sort=False)["capacity_measured"].transform("first")
        frame["soh_measured"] = frame["capacity_measured"] / first
    return frame, notes
