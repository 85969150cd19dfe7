"""One reader per cycler export format, normalised to one frame; ``read_cycler`` picks the reader.

Normalised cycler frame (one row per record):

==============  =========================================================
``time_s``      seconds since the first record (absolute stamps are ignored)
``current_a``   amperes, **positive = discharge** (PyBaMM's convention)
``voltage_v``   terminal voltage, volts
``temperature_c`` degrees Celsius, null when the file has none
``cycle_index`` cycle number as the cycler counts it (derived when absent)
``step_index``  step number as the cycler counts it (derived when absent)
``step_type``   ``charge`` | ``discharge`` | ``rest``
==============  =========================================================

Sign conventions mapped from (each format's own words):

* Maccor: with a ``State`` column (C, D, R, ...), the state gives the sign and
  ``|Amps|`` the size (exports with unsigned current work too); without it, negative
  ``Amps`` = discharge.
* Neware (three-level export): the step type (``CC_DChg``, ``CC_Chg``, ``Rest``, ...)
  gives the sign, ``|Current(A)|`` the size.
* Arbin (``Test_Time`` or ``Test Time (s)`` layouts): positive ``Current`` = charge, so
  the sign is flipped.
* BioLogic EC-Lab text: positive ``I/mA`` = oxidation at the working electrode
  (charge of a full cell), so the sign is flipped and mA become A.
* Generic delimited table (comma, tab or semicolon; decimal commas; preamble lines):
  columns by name, units from the header (``Current (mA)``, ``I/mA``, ``Voltage [mV]``,
  ``time/min``, a temperature in K), time as seconds, ``hh:mm:ss`` / ``Nd hh:mm:ss`` or
  date-times; or an explicit ``columns`` mapping. A Parquet table (PyProBE's layout:
  ``Time [s]``, ``Current [A]``, ``Voltage [V]``, ``Step``) is read the same way. The current sign comes from a state or
  step-type column (C / D / R, ``CC_DChg``, ``Rest``) when there is one, then from
  ``current_sign``, else it is inferred from the data: on discharge the voltage falls
  under load, so the sign that makes current and dV/dt anti-correlated is taken as
  discharge. What was used is reported in ``frame.attrs["current_convention"]``.

``detect_format`` tells the formats apart, ``step_types`` types steps where the file does not,
and values no single cell gives (``VOLTAGE_WINDOW_V``, ``MAX_CURRENT_A``) are refused.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .decode import HEAD_BYTES, _lines, _read_text, _workbook_kind
from .errors import ReaderError, _fail
from .vocabulary import (
    _CHARGE_WORDS,
    _DISCHARGE_WORDS,
    HEADER_SCAN_LINES,
    UNIT_FACTORS,
    _decimal,
    _header_line,
    _hms_to_seconds,
    _is_cycler_header,
    _is_spectrum_header,
    _is_time_voltage_header,
    _kinds_from_state,
    _seconds,
    _state_from_columns,
    _unit_split,
    _units_row,
    column_roles,
    is_wide_spectrum_header,
    split_header,
)

COLUMNS = ["time_s", "current_a", "voltage_v", "temperature_c", "cycle_index", "step_index", "step_type"]
FORMATS = ("auto", "maccor", "neware", "arbin", "biologic", "csv", "matlab", "parquet")
REST_FRACTION = 0.01  # a step at 1 % of the largest |I| or more is loaded (see step_types)
CAPACITY_FRACTION = 0.01  # ... as is a step moving 1 % of the busiest step's charge or more
NOISE_SIGMAS = 5.0  # ... if its median current stands this many robust spreads above zero
LEVEL_JUMP = 0.1  # without step numbers, a new step where |I| jumps by more than 10 %


def detect_format(path: str | Path) -> str:
    """Guess the export format from the file's first lines (of its data sheet for a workbook)."""
    head = _read_text(Path(path), head=True)[0][:HEAD_BYTES]
    lines = head.splitlines()
    if "EC-Lab ASCII FILE" in head or "BT-Lab ASCII FILE" in head:
        return "biologic"
    if "Rec#" in head and ("Amps" in head or "Amp-hr" in head):
        return "maccor"
    if len(lines) > 3 and lines[0].startswith(("Cycle ID", "Cycle Index")) and lines[1].startswith(",") \
            and lines[2].startswith(",,"):
        return "neware"  # three-level export: cycle, step and record header lines
    header = _header_line(lines, _is_cycler_header)
    if header is not None:
        names = {split_header(c)[0] for c in header[2]}
        if {"testtime", "cycleindex", "datapoint"} <= names:
            return "arbin"
        if any(re.match(r"<?(Ewe|Ecell)>?/V$", c) for c in header[2]):
            return "biologic"  # EC-Lab export without its header block
        return "csv"
    _no_cycler_table(path, lines)


_NO_CURRENT_HINT = ("time and voltage columns but no current; for a curve measured at a known constant current, "
                    "state it (--current-a, or --c-rate with --capacity-ah; constant_current_a in Python)")


def _no_cycler_table(path: Path, lines: list[str]):
    """Fail with what the file looks like instead of a cycler table."""
    if _header_line(lines, _is_spectrum_header) or _header_line(lines, is_wide_spectrum_header):
        _fail(path, "an impedance spectrum, not a cycler record; read it with `pybamm-factory eis-features`")
    if _header_line(lines, _is_time_voltage_header, min_fields=2):
        _fail(path, _NO_CURRENT_HINT)
    _fail(path, "unrecognised export; expected a Maccor, Neware, Arbin, BioLogic text export, or a delimited table, "
                "Excel sheet or MATLAB file with time, current and voltage columns")


def step_types(current_a, time_s=None, step_index=None) -> np.ndarray:
    """``charge`` / ``discharge`` / ``rest`` per record, decided per step.

    Steps are the file's step numbers, or (without them) runs of records whose current
    keeps its sign and does not jump by more than ``LEVEL_JUMP`` of its size (and more than
    the file's record-to-record noise) from one record to the next. A step is loaded (its median current's sign gives discharge or charge)
    when its median current stands above its own noise (``NOISE_SIGMAS`` times the robust
    record-to-record spread of its current) and either reaches ``REST_FRACTION`` of the file's largest current (a
    pulse) or moves at least ``CAPACITY_FRACTION`` of the charge of the file's busiest step
    (a slow capacity check: a C/20 step beside a fast pulse is a discharge, not a rest).
    A rest with a small constant offset moves next to no charge and stays a rest."""
    current_a = np.asarray(current_a, dtype=float)
    n = len(current_a)
    out = np.full(n, "rest", dtype=object)
    if n == 0:
        return out
    time_s = np.arange(n, dtype=float) if time_s is None else np.asarray(time_s, dtype=float)
    if step_index is None or pd.isna(np.asarray(step_index, dtype=float)).all():
        finite = np.nan_to_num(current_a)
        change = np.abs(np.diff(finite))
        noise = 1.4826 / np.sqrt(2) * np.median(change) if change.size else 0.0
        level_jump = (change > LEVEL_JUMP * np.maximum(np.abs(finite[1:]), np.abs(finite[:-1]))) & (change > NOISE_SIGMAS * noise)
        new_step = np.concatenate([[True], (np.sign(finite[1:]) != np.sign(finite[:-1])) | level_jump])
        blocks = np.cumsum(new_step)
    else:
        index = np.asarray(step_index, dtype=float)
        blocks = np.cumsum(np.concatenate([[True], index[1:] != index[:-1]]))
    dq = np.zeros(n)
    dq[1:] = 0.5 * (current_a[1:] + current_a[:-1]) * np.diff(time_s) / 3600.0
    jump = np.abs(np.diff(current_a, prepend=np.nan))
    first = np.concatenate([[True], blocks[1:] != blocks[:-1]])
    jump[first], dq[first] = np.nan, 0.0  # nothing across step boundaries
    steps = pd.DataFrame({"block": blocks, "current": current_a, "jump": jump, "dq": dq}).groupby("block", sort=False)
    level = steps["current"].median().fillna(0.0).to_numpy()
    noise = (1.4826 / np.sqrt(2)) * steps["jump"].median().fillna(0.0).to_numpy()  # record-to-record noise
    moved = steps["dq"].sum().abs().to_numpy()
    scale = np.nanmax(np.abs(current_a)) if np.isfinite(current_a).any() else 0.0
    loaded = (np.abs(level) > NOISE_SIGMAS * noise) & (np.abs(level) > 0) & (
        (np.abs(level) >= REST_FRACTION * scale) | (moved >= CAPACITY_FRACTION * moved.max()))
    kind = np.where(loaded, np.where(level > 0, "discharge", "charge"), "rest")
    position = np.cumsum(first) - 1  # the step number (0, 1, ...) of every record
    out[:] = kind[position]
    return out


def _derive_steps(step_type: np.ndarray) -> np.ndarray:
    change = np.concatenate([[True], step_type[1:] != step_type[:-1]])
    return np.cumsum(change)


def _derive_cycles(step_type: np.ndarray, step_index: np.ndarray) -> np.ndarray:
    """A new cycle at each discharge step that follows a charge step."""
    cycle = np.zeros(len(step_type), dtype=int)
    current, seen_charge, last_step = 0, False, None
    for i, (kind, step) in enumerate(zip(step_type, step_index)):
        if step != last_step:
            if kind == "discharge" and seen_charge:
                current += 1
                seen_charge = False
            if kind == "charge":
                seen_charge = True
            last_step = step
        cycle[i] = current
    return cycle


# What a cell's record can hold; beyond it a unit is wrong (mV under a 'V' header, mA labelled
# 'A') or the column is not what its name says. Wide enough for any single cell: the largest
# prismatic cells hold a few hundred A.h and are cycled at a few hundred A.
VOLTAGE_WINDOW_V = (-0.5, 6.0)
MAX_CURRENT_A = 2000.0


def _plausible(frame: pd.DataFrame, path: Path) -> None:
    """Refuse values no single cell gives, naming the likely cause, in one line."""
    voltage = frame["voltage_v"].to_numpy(float)
    low, high = VOLTAGE_WINDOW_V
    outside = (voltage < low) | (voltage > high)
    if outside.mean() > 0.01:
        median = float(np.median(voltage))
        cause = (" (millivolts under a volt header?)" if median > 100 else
                 " (negative voltages: a reversed lead, or a different column?)" if median < 0 else "")
        _fail(path, f"{outside.mean():.0%} of voltages outside {low} to {high} V, median {median:.4g} V{cause}; "
                    "state the unit in the header or map the column with --column")
    peak = float(np.nanmax(np.abs(frame["current_a"].to_numpy(float)))) if len(frame) else 0.0
    if peak > MAX_CURRENT_A:
        _fail(path, f"currents up to {peak:.4g} A, beyond any single cell's {MAX_CURRENT_A:g} A (milliamps labelled "
                    "amperes?); state the unit with --current-unit mA")


def _finish(frame: pd.DataFrame, path: Path, fmt: str, convention: str) -> pd.DataFrame:
    rows = len(frame)
    frame = frame.dropna(subset=["time_s", "current_a", "voltage_v"])
    finite = np.isfinite(frame[["time_s", "current_a", "voltage_v"]].to_numpy(float)).all(axis=1)
    frame = frame[finite].reset_index(drop=True)
    if frame.empty:
        _fail(path, f"no data rows found for format '{fmt}'")
    dropped = rows - len(frame)
    _plausible(frame, path)
    frame["time_s"] = frame["time_s"].astype(float) - float(frame["time_s"].iloc[0])
    if "step_type" not in frame or frame["step_type"].isna().all():
        frame["step_type"] = step_types(frame["current_a"], frame["time_s"],
                                        frame["step_index"] if "step_index" in frame else None)
    if "step_index" not in frame or frame["step_index"].isna().all():
        frame["step_index"] = _derive_steps(frame["step_type"].to_numpy())
    notes = list(frame.attrs.get("notes", []))
    if dropped:
        notes.append(f"{dropped} of {rows} rows dropped (empty, text, NaN or inf time, current or voltage)")
    if "cycle_index" not in frame or frame["cycle_index"].isna().all():
        frame["cycle_index"] = _derive_cycles(frame["step_type"].to_numpy(), frame["step_index"].to_numpy())
    elif frame["cycle_index"].nunique() == 1:
        derived = _derive_cycles(frame["step_type"].to_numpy(), frame["step_index"].to_numpy())
        if derived.max() > derived.min():  # one cycle number over alternating charges and discharges
            notes.append(f"the file's cycle column holds {frame['cycle_index'].iloc[0]:g} on every row while charge and "
                         f"discharge steps alternate: cycles derived from the steps ({derived.max() - derived.min() + 1})")
            frame["cycle_index"] = derived
    if "temperature_c" not in frame:
        frame["temperature_c"] = np.nan
    frame = frame[COLUMNS].astype({"time_s": float, "current_a": float, "voltage_v": float, "temperature_c": float,
                                   "cycle_index": "int64", "step_index": "int64", "step_type": str})
    frame.attrs.update({"source": str(path), "format": fmt, "current_convention": convention, "notes": notes})
    return frame


def _signed_by_state(magnitude: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    sign = np.where(kinds == "discharge", 1.0, np.where(kinds == "charge", -1.0, 0.0))
    return np.abs(magnitude) * sign


def read_maccor(path: Path) -> pd.DataFrame:
    lines = _lines(path)
    header = next((i for i, line in enumerate(lines[:50]) if line.startswith("Rec#") or "\tAmps\t" in line), None)
    if header is None:
        _fail(path, "Maccor export without a 'Rec#' header line in its first 50 lines")
    sep = max(("\t", ",", ";"), key=lines[header].count)  # tab export, or a comma/semicolon CSV of it
    df = pd.read_csv(io.StringIO("\n".join(lines[header:])), sep=sep, low_memory=False)
    df.columns = [c.strip() for c in df.columns]
    need = {"Amps", "Volts"}
    if not need <= set(df.columns):
        _fail(path, f"Maccor export lacks columns {sorted(need - set(df.columns))}")
    roles = column_roles(df.columns)
    time_column = next((c for c in ("Test (Sec)", "Test (Min)", "TestTime") if c in df), None) \
        or roles.get("time") or roles.get("clock")  # 'Test Time (Hr)', or the 'DPt Time' clock
    if time_column is None:
        _fail(path, "Maccor export without a test-time column ('Test (Sec)', 'Test (Min)', 'TestTime') or a clock")
    time_s = _seconds(df[time_column], split_header(time_column)[1])
    if time_s is None:
        _fail(path, f"Maccor column {time_column!r} is not seconds, minutes or 'hh:mm:ss'")
    amps = pd.to_numeric(df["Amps"], errors="coerce").to_numpy()
    kinds = _kinds_from_state(df["State"]) if "State" in df else None
    if kinds is not None:
        current, convention = _signed_by_state(amps, kinds), "Maccor State column (D = discharge), |Amps|"
    else:
        current, convention = -amps, "Maccor Amps, negative = discharge"
        kinds = None  # typed per step in _finish
    temp_col = roles.get("temperature")  # the cell's over the chamber's
    frame = pd.DataFrame({
        "time_s": time_s, "current_a": current, "voltage_v": pd.to_numeric(df["Volts"], errors="coerce"),
        "temperature_c": pd.to_numeric(df[temp_col], errors="coerce") if temp_col else np.nan,
        "cycle_index": pd.to_numeric(df.get("Cyc#"), errors="coerce") if "Cyc#" in df else np.nan,
        "step_index": pd.to_numeric(df.get("Step"), errors="coerce") if "Step" in df else np.nan,
        "step_type": kinds if kinds is not None else np.nan,
    })
    return _finish(frame, path, "maccor", convention)


def _neware_kind(step_type: str) -> str:
    """One step type in the state words of :func:`_kinds_from_state`; anything else is a rest."""
    s = step_type.strip().lower()
    return "discharge" if _DISCHARGE_WORDS.search(s) else "charge" if _CHARGE_WORDS.search(s) else "rest"


def read_neware(path: Path) -> pd.DataFrame:
    """Neware three-level export: cycle rows, step rows (one leading empty field) and
    record rows (two leading empty fields), each with its own header line."""
    rows = list(csv.reader(io.StringIO(_read_text(path)[0])))
    if len(rows) < 4:
        _fail(path, "Neware export needs three header lines and data")
    record_header = rows[2]
    step_header = rows[1]

    def col(header, pattern):
        return next((i for i, h in enumerate(header) if re.search(pattern, h, re.I)), None)

    i_time = col(record_header, r"^total time") or col(record_header, r"^time")
    i_cur = col(record_header, r"^current")
    i_volt = col(record_header, r"^voltage")
    i_temp = col(record_header, r"^T1|temp")
    i_step_idx = col(step_header, r"step index")
    i_step_type = col(step_header, r"step type")
    if None in (i_time, i_cur, i_volt, i_step_type):
        _fail(path, "Neware export: record header needs Total Time, Current and Voltage; step header needs Step Type")
    records, cycle, step, kind = [], 0, 0, "rest"
    for row in rows[3:]:
        if not row or not any(row):
            continue
        if row[0].strip():
            cycle = int(float(row[0]))
        elif len(row) > 1 and row[1].strip():
            step = int(float(row[i_step_idx])) if i_step_idx is not None else step + 1
            kind = _neware_kind(row[i_step_type])
        else:
            records.append((row[i_time], row[i_cur], row[i_volt], row[i_temp] if i_temp is not None and i_temp < len(row) else "",
                            cycle, step, kind))
    if not records:
        _fail(path, "Neware export without record rows (two leading empty fields)")
    df = pd.DataFrame(records, columns=["time", "current", "voltage", "temp", "cycle_index", "step_index", "step_type"])
    current = _signed_by_state(pd.to_numeric(df["current"], errors="coerce").to_numpy(), df["step_type"].to_numpy())
    frame = pd.DataFrame({
        "time_s": _hms_to_seconds(df["time"]), "current_a": current,
        "voltage_v": pd.to_numeric(df["voltage"], errors="coerce"),
        "temperature_c": pd.to_numeric(df["temp"], errors="coerce"),
        "cycle_index": df["cycle_index"], "step_index": df["step_index"], "step_type": df["step_type"],
    })
    return _finish(frame, path, "neware", "Neware step type (DChg = discharge), |Current|")


def read_arbin(path: Path) -> pd.DataFrame:
    """Arbin CSV (Test_Time / 'Test Time (s)', Current, Voltage, Cycle_Index, Step_Index, ...)."""
    frame = read_csv_generic(path, current_sign="discharge-negative")
    frame.attrs.update({"format": "arbin", "current_convention": "Arbin Current, positive = charge (flipped)"})
    return frame


def read_biologic(path: Path) -> pd.DataFrame:
    """EC-Lab / BT-Lab text export (with or without its header block): ``time/s``, ``I/mA``
    or ``<I>/mA``, ``Ecell/V`` or ``Ewe/V``, ``cycle number``, ``Ns``; units from the header."""
    frame = read_csv_generic(path, current_sign="discharge-negative")
    frame.attrs.update({"format": "biologic",
                        "current_convention": "BioLogic I, positive = oxidation/charge (flipped; unit from the header)"})
    return frame


def infer_discharge_sign(current, voltage) -> float:
    """+1 if positive current is discharge in this data, -1 otherwise (voltage falls on discharge)."""
    current = np.asarray(current, dtype=float)
    dv = np.diff(np.asarray(voltage, dtype=float))
    i = current[1:]
    scale = np.nanmax(np.abs(i)) if len(i) else 0
    mask = (np.abs(i) > 0.05 * scale) & (dv != 0)
    if mask.sum() < 3:
        raise ValueError("too few loaded points with voltage change to infer the current sign")
    return 1.0 if np.mean(np.sign(i[mask]) * np.sign(dv[mask])) < 0 else -1.0


def read_csv_generic(path: Path, columns: dict | None = None, current_sign: str = "auto",
                     current_unit: str = "auto", constant_current_a: float | None = None) -> pd.DataFrame:
    """Any delimited table (comma, tab or semicolon; decimal commas; preamble lines before
    the header). Columns are found by name (``column_roles``) unless ``columns`` maps the
    normalised names to the file's; units come from the header (A / mA, s / min / h, V / mV)
    unless ``current_unit`` states it. Time may be numbers, 'hh:mm:ss' or date-times.
    Current sign: a state or step-type column (C / D / R, CC_DChg, ...) signs |current|;
    else ``current_sign`` states it, or it is inferred from the data (voltage falls on
    discharge). A file of time and voltage only (a digitised or published curve) is read
    with a stated ``constant_current_a`` (positive = discharge)."""
    lines = _lines(path)
    if constant_current_a is None:
        header = _header_line(lines, _is_cycler_header)
    else:
        header = _header_line(lines, _is_time_voltage_header, min_fields=2)
    if header is None and not columns:
        if constant_current_a is None and _header_line(lines, _is_time_voltage_header, min_fields=2):
            _fail(path, _NO_CURRENT_HINT)
        _fail(path, f"no header line naming time, {'current and ' if constant_current_a is None else 'and '}voltage "
                    f"columns in the first {HEADER_SCAN_LINES} lines; pass a column mapping")
    k, sep, fields = header if header else (0, None, None)
    body = lines[k:]
    units = _units_row(fields, body[1], sep) if header and len(body) > 1 else {}
    if units:  # a units line (Digatron): the units join the header, as 'Current [mA]'
        body = [sep.join(f if _unit_split(f)[1] or f not in units else f"{f} [{units[f]}]" for f in fields)] + body[2:]
    # the C parser: pandas' python parser misreads decimal-comma exponents ("1,0007e+03")
    df = pd.read_csv(io.StringIO("\n".join(body)), sep=sep, engine="c" if sep else "python", decimal=_decimal(sep, body[1:]))
    df.columns = [str(c).strip().strip('"') for c in df.columns]
    return table_frame(df, path, "csv", columns, current_sign, current_unit, constant_current_a)


def table_frame(df: pd.DataFrame, path, fmt: str, columns: dict | None = None, current_sign: str = "auto",
                current_unit: str = "auto", constant_current_a: float | None = None) -> pd.DataFrame:
    """The normalised frame of a table already split into named columns (a delimited file,
    a workbook sheet, the arrays of a MATLAB file); see :func:`read_csv_generic`."""
    mapping = {"time_s": "time", "current_a": "current", "voltage_v": "voltage", "temperature_c": "temperature",
               "cycle_index": "cycle", "step_index": "step"}
    roles = column_roles(df.columns)
    for normalised, column in (columns or {}).items():
        roles[mapping.get(normalised, normalised)] = column
    if constant_current_a is not None:
        if roles.get("current") in df.columns:
            _fail(path, f"the file has a current column {roles['current']!r}; a stated constant current is for files "
                        "of time and voltage only")
        if not np.isfinite(constant_current_a) or constant_current_a == 0:
            _fail(path, f"stated constant current {constant_current_a!r} A must be a non-zero number")
    missing = [r for r in ("current", "voltage") if roles.get(r) not in df.columns
               and not (r == "current" and constant_current_a is not None)]
    if missing or not ({"time", "clock"} & set(roles)):
        hint = f" ({_NO_CURRENT_HINT})" if missing == ["current"] else ""
        _fail(path, f"{fmt} table lacks columns for {missing or ['time']}; found {list(df.columns)[:10]}; "
                    f"pass a column mapping{hint}")
    time_s = None
    for role in ("time", "clock"):  # test time first; a clock column when that is missing, unreadable or resets
        if role in roles and time_s is None:
            parsed = _seconds(df[roles[role]], split_header(roles[role])[1])
            time_s = parsed if parsed is not None and (parsed.dropna().diff().dropna() >= 0).all() else None
    if time_s is None:
        named = [roles[r] for r in ("time", "clock") if r in roles]
        _fail(path, f"time column(s) {named} are not increasing seconds, 'hh:mm:ss' or date-times")
    v_factor = UNIT_FACTORS["voltage"].get(split_header(roles["voltage"])[1], 1.0)
    voltage = pd.to_numeric(df[roles["voltage"]], errors="coerce").to_numpy(float) * v_factor
    kinds = None
    if constant_current_a is not None:
        current = np.full(len(df), float(constant_current_a))
        convention = (f"stated constant current {abs(constant_current_a):g} A "
                      f"({'discharge' if constant_current_a > 0 else 'charge'}); the file has no current column")
    else:
        unit = current_unit.lower() if current_unit != "auto" else split_header(roles["current"])[1]
        if unit not in UNIT_FACTORS["current"]:
            _fail(path, f"current unit {unit!r} not understood; allowed: A, mA, uA")
        current = pd.to_numeric(df[roles["current"]], errors="coerce").to_numpy(float) * UNIT_FACTORS["current"][unit]
        kinds, state_column = _state_from_columns(df) if current_sign == "auto" else (None, None)
        if kinds is not None:
            current = _signed_by_state(current, kinds)
            convention = f"state column {state_column!r} (discharge / charge / rest), |current|"
        elif current_sign == "auto":
            sign = infer_discharge_sign(current, voltage)
            convention = f"inferred from data: {'positive' if sign > 0 else 'negative'} = discharge"
            current = sign * current
        elif current_sign in ("discharge-positive", "discharge-negative"):
            current = current if current_sign == "discharge-positive" else -current
            convention = f"stated: {current_sign}"
        else:
            _fail(path, f"current_sign '{current_sign}' not allowed; allowed: auto, discharge-positive, discharge-negative")
    frame = pd.DataFrame({"time_s": time_s, "current_a": current, "voltage_v": voltage})
    if "temperature" in roles:
        frame["temperature_c"] = pd.to_numeric(df[roles["temperature"]], errors="coerce")
        if split_header(roles["temperature"])[1] == "k":
            frame["temperature_c"] -= 273.15
    for name, role in (("cycle_index", "cycle"), ("step_index", "step")):
        if role in roles:
            frame[name] = pd.to_numeric(df[roles[role]], errors="coerce")
    if kinds is not None:
        frame["step_type"] = kinds
        if "step_index" not in frame:
            frame["step_index"] = _derive_steps(kinds)
    return _finish(frame, path, fmt, convention)


_MAT_HEADERS = {b"MATLAB 5.0 MAT-file": "5", b"MATLAB 7.3 MAT-file": "7.3"}


def _mat_version(path: Path) -> str | None:
    """'5' (v5 to v7, read by SciPy) or '7.3' (HDF5, read by h5py) from a MAT-file's text
    header; None for other files. A ``.mat`` without that header (MATLAB v4) is refused."""
    with open(path, "rb") as fh:
        head = fh.read(32)
    version = next((v for magic, v in _MAT_HEADERS.items() if head.startswith(magic)), None)
    if version is None and Path(path).suffix.lower() == ".mat":
        _fail(path, "a .mat file without a MATLAB 5.0 / 7.3 header (MATLAB v4 or not a MAT-file); save it with "
                    "save(..., '-v7') or '-v7.3', or export a CSV")
    return version


def _mat_leaves(path: Path, version: str) -> dict[str, np.ndarray]:
    """Every numeric vector in a MAT-file, by its dotted path ('data.current_a'; 'tests(2).time'
    for an element of a struct array)."""
    leaves: dict[str, np.ndarray] = {}

    def keep(name, value):
        array = np.asarray(value)
        if array.dtype.kind in "fiub" and array.size > 1 and (array.ndim == 1 or (array.ndim == 2 and min(array.shape) == 1)):
            leaves[name] = array.astype(float).ravel()

    if version == "7.3":
        import h5py

        with h5py.File(path, "r") as fh:
            fh.visititems(lambda name, obj: keep(name.replace("/", "."), obj[()])
                          if isinstance(obj, h5py.Dataset) and not name.startswith("#") else None)
        return leaves
    from scipy.io import loadmat

    def walk(name, value):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{name}.{key}" if name else key, item)
        elif isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype == object):
            for k, item in enumerate(value):
                walk(f"{name}({k + 1})", item)
        elif isinstance(value, np.ndarray):
            keep(name, value)

    walk("", {k: v for k, v in loadmat(path, simplify_cells=True).items() if not k.startswith("__")})
    return leaves


def read_matlab(path: Path, columns: dict | None = None, current_sign: str = "auto", current_unit: str = "auto",
                constant_current_a: float | None = None) -> pd.DataFrame:
    """A MATLAB file (v5-v7 through SciPy, v7.3 through h5py) holding time, current and
    voltage as vectors of one length under one parent (top-level variables, or the fields of
    one struct). The vectors' own names give their roles and units, as header names do in a
    table (``time_s``, ``current_a``, ``Voltage``). Where several structs hold such vectors
    (one per test), the one with the most records is read and the others are named in a note.
    MATLAB ``table`` and ``timetable`` objects are stored in a form neither library reads:
    save them with ``table2struct(T, 'ToScalar', true)`` first."""
    leaves = _mat_leaves(path, _mat_version(path))
    parents: dict[str, dict[str, np.ndarray]] = {}
    for name, array in leaves.items():
        parent, _, leaf = name.rpartition(".")
        parents.setdefault(parent, {})[leaf] = array
    candidates = []
    for parent, group in parents.items():
        lengths = pd.Series({leaf: len(a) for leaf, a in group.items()})
        n = int(lengths.mode().max())
        table = pd.DataFrame({leaf: a for leaf, a in group.items() if len(a) == n})
        named = set(table.columns) | set((columns or {}).values())
        roles = column_roles(named)
        if "voltage" in roles and ({"time", "clock"} & set(roles)) and ("current" in roles or constant_current_a is not None):
            candidates.append((n, parent, table))
    if not candidates:
        found = ", ".join(sorted(leaves)[:12]) or "no numeric vectors"
        _fail(path, f"MATLAB {_mat_version(path)} file without time, current and voltage vectors of one length under "
                    f"one parent; found: {found}")
    candidates.sort(key=lambda c: -c[0])
    n, parent, table = candidates[0]
    frame = table_frame(table, path, "matlab", columns, current_sign, current_unit, constant_current_a)
    frame.attrs["sheets"] = f"variables {parent + '.' if parent else ''}{{{', '.join(table.columns)}}}"
    if len(candidates) > 1:
        frame.attrs["notes"] = frame.attrs.get("notes", []) + [
            f"{len(candidates) - 1} other group(s) of time/current/voltage vectors not read: "
            + ", ".join(c[1] or "(top level)" for c in candidates[1:6])]
    return frame


def read_parquet_table(path: Path, columns: dict | None = None, current_sign: str = "auto",
                       current_unit: str = "auto", constant_current_a: float | None = None) -> pd.DataFrame:
    """A Parquet table with named columns (PyProBE's processed data, a lab's own pipeline),
    read as a delimited table is: columns by name or mapping, units from the names."""
    df = pd.read_parquet(path)
    df.columns = [str(c).strip() for c in df.columns]
    return table_frame(df, path, "parquet", columns, current_sign, current_unit, constant_current_a)


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"PAR1"


READERS = {"maccor": read_maccor, "neware": read_neware, "arbin": read_arbin, "biologic": read_biologic,
           "csv": read_csv_generic, "matlab": read_matlab, "parquet": read_parquet_table}
TABLE_OPTIONS = ("csv", "matlab", "parquet")  # the formats that take column, sign, unit and constant-current options


def read_cycler(path: str | Path, format: str = "auto", **kwargs) -> pd.DataFrame:
    """Read a cycler export into the normalised frame (see module docstring). ``kwargs``
    (``columns``, ``current_sign``, ``current_unit``, ``constant_current_a``) are for plain
    tables and MATLAB files; given with ``format="auto"``, a text file is read as a table."""
    path = Path(path)
    if not path.is_file():
        _fail(path, "no such file")
    if format not in FORMATS:
        _fail(path, f"format '{format}' not allowed; allowed: {', '.join(FORMATS)}")
    fmt = format
    if format == "auto":
        table_options_given = any(v not in (None, "auto", {}) for v in kwargs.values())
        fmt = ("matlab" if _mat_version(path) else "parquet" if _is_parquet(path)
               else "csv" if table_options_given else detect_format(path))
    if fmt not in TABLE_OPTIONS and any(v not in (None, "auto", {}) for v in kwargs.values()):
        _fail(path, f"column, sign, unit and constant-current options apply to {' and '.join(TABLE_OPTIONS)} files, "
                    f"not to {fmt} exports")
    try:
        frame = READERS[fmt](path, **kwargs) if fmt in TABLE_OPTIONS else READERS[fmt](path)
    except ReaderError:
        raise
    except (ValueError, KeyError, IndexError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        _fail(path, f"could not be read as {fmt}: {type(exc).__name__}: {str(exc).splitlines()[0][:150]}")
    if _workbook_kind(path):
        frame.attrs["sheets"] = _read_text(path)[1]
    return frame
