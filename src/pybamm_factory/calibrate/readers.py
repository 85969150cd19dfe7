"""Readers for cycler exports and impedance spectra, normalised to one frame.

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
  date-times; or an explicit ``columns`` mapping. The current sign comes from a state or
  step-type column (C / D / R, ``CC_DChg``, ``Rest``) when there is one, then from
  ``current_sign``, else it is inferred from the data: on discharge the voltage falls
  under load, so the sign that makes current and dV/dt anti-correlated is taken as
  discharge. What was used is reported in ``frame.attrs["current_convention"]``.

Excel workbooks (.xlsx, .xls) are read through the same table reader: the sheet whose
header names time, current and voltage with the most rows, joined with the sheets after it
that carry its record on. Text is decoded as UTF-16 (by its BOM), UTF-8, else Latin-1.

battery-data-toolkit and cellpy were evaluated on the files in ``shared/realdata``
first; docs/readers.md says why these readers are the project's own.
"""

from __future__ import annotations

import csv
import datetime
import functools
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FactoryError

COLUMNS = ["time_s", "current_a", "voltage_v", "temperature_c", "cycle_index", "step_index", "step_type"]
FORMATS = ("auto", "maccor", "neware", "arbin", "biologic", "csv", "matlab")
REST_FRACTION = 0.01  # a step at 1 % of the largest |I| or more is loaded (see step_types)
CAPACITY_FRACTION = 0.01  # ... as is a step moving 1 % of the busiest step's charge or more
NOISE_SIGMAS = 5.0  # ... if its median current stands this many robust spreads above zero
LEVEL_JUMP = 0.1  # without step numbers, a new step where |I| jumps by more than 10 %


class ReaderError(FactoryError, ValueError):
    """A file could not be read; the message is one line naming file and expectation."""


def _fail(path, msg):
    raise ReaderError(f"{path}: {msg}")


def _decode(raw: bytes, head: bool = False) -> str:
    """Text of an export: UTF-16 by its byte-order mark, UTF-8 (BOM or not) when the bytes are
    valid UTF-8, else Latin-1 (Windows cycler software writes 'µ', '°' and 'Ω' in either).
    ``head``: the bytes are a file's first block, which may end inside a UTF-8 character."""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return raw.decode("utf-16", errors="replace" if head else "strict")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if head and exc.start >= len(raw) - 3:
            return raw[:exc.start].decode("utf-8-sig")
        return raw.decode("latin-1")


# binary exports that no reader here takes, by their first bytes, with what to export instead
_BINARY_EXPORTS = {
    b"BIO-LOGIC MODULAR FILE": "a binary EC-Lab .mpr file; export it as text in EC-Lab (Export as Text)",
    b"\x00\x01\x00\x00Standard Jet DB": "an Arbin .res database; export it to CSV or Excel with Arbin's data software",
    b"\x00\x01\x00\x00Standard ACE DB": "an Arbin .res database; export it to CSV or Excel with Arbin's data software",
    b"NEWARE": "a binary Neware .nda/.ndax file; export it to CSV or Excel with Neware's BTS data software",
}
_WORKBOOK_MAGIC = {b"PK\x03\x04": "xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1": "xls"}
HEAD_BYTES = 65536  # format detection reads this much of a text file
MAX_WORKBOOK_ROWS = 5_000_000  # rows over all sheets; a longer record goes through CSV


def _workbook_kind(path: Path) -> str | None:
    """'xlsx' or 'xls' for an Excel workbook, None for text; a binary export is refused."""
    with open(path, "rb") as fh:
        magic = fh.read(32)
    for start, what in _BINARY_EXPORTS.items():
        if magic.startswith(start):
            _fail(path, what)
    return next((k for m, k in _WORKBOOK_MAGIC.items() if magic.startswith(m)), None)


@functools.lru_cache(maxsize=1)  # detection and the reader share one parse of a workbook
def _workbook(path: str, kind: str, mtime_ns: int, size: int) -> tuple[str, str]:
    return _workbook_text(Path(path), kind)


def _read_text(path: Path, head: bool = False) -> tuple[str, str | None]:
    """(text, sheets) of an export: a text file decoded (its first HEAD_BYTES for ``head``),
    or an Excel workbook's data sheet(s) as a tab-separated table (sheets names them; None
    for text files)."""
    path = Path(path)
    kind = _workbook_kind(path)
    if kind:
        stat = path.stat()
        return _workbook(str(path.resolve()), kind, stat.st_mtime_ns, stat.st_size)
    if head:
        with open(path, "rb") as fh:
            return _decode(fh.read(HEAD_BYTES), head=True), None
    return _decode(path.read_bytes()), None


def _lines(path: Path) -> list[str]:
    return _read_text(path)[0].splitlines()


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


def _hms_to_seconds(values: pd.Series) -> pd.Series:
    """'hh:mm:ss(.f)' with hours past 24 or a 'Nd ' day prefix, or plain seconds."""
    def one(v):
        if isinstance(v, (int, float)):
            return float(v)
        v = str(v).strip()
        days = 0.0
        if "d" in v:
            d, _, v = v.partition("d")
            days = float(d.strip() or 0)
        parts = [float(p) for p in v.strip().split(":")]
        seconds = 0.0
        for p in parts:
            seconds = seconds * 60 + p
        return days * 86400 + seconds

    return values.map(one)


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


def _find(columns, *patterns):
    for pattern in patterns:
        for c in columns:
            if re.search(pattern, c, re.I):
                return c
    return None


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


# Column roles of a generic table, by header name with its unit split off and only
# letters and digits kept ("Test Time (s)" -> "testtime", "I/mA" -> "i"), in priority order.
ROLE_NAMES = {
    "time": ("testtime", "totaltime", "elapsedtime", "progtime", "time", "test", "runtime", "relativetime"),
    "clock": ("datetime", "date", "timestamp", "dpttime", "systemtime", "absolutetime", "realtime"),
    "current": ("current", "amps", "amp", "i", "curr", "cellcurrent"),
    "voltage": ("voltage", "volts", "volt", "ecell", "ewe", "cellvoltage", "potential", "terminalvoltage", "u"),
    "cycle": ("cycleindex", "cycle", "cyc", "cyclenumber", "cycleid", "cycleno", "cyclec"),
    "step": ("stepindex", "step", "stepid", "stepnumber", "stepno", "ns"),
}
# a temperature column with one of these in its name is the chamber's, not the cell's
CHAMBER_WORDS = ("environment", "ambient", "chamber", "room", "oven", "climate")
# state / step-type / command columns, in priority order (see _state_from_columns)
STATE_NAMES = ("state", "md", "steptype", "stepname", "status", "type", "stepmode", "command", "mode")
UNIT_FACTORS = {
    "time": {None: 1.0, "s": 1.0, "sec": 1.0, "seconds": 1.0, "ms": 1e-3, "min": 60.0, "minutes": 60.0, "h": 3600.0,
             "hr": 3600.0, "hours": 3600.0},
    "current": {None: 1.0, "a": 1.0, "ma": 1e-3, "ua": 1e-6, "µa": 1e-6},
    "voltage": {None: 1.0, "v": 1.0, "mv": 1e-3},
}
_HMS = re.compile(r"^\s*(\d+\s*d\s*)?\d+:\d{1,2}(:\d{1,2}(\.\d*)?)?\s*$")


def _unit_split(column: str) -> tuple[str, str | None]:
    """(text, unit) of a header with its unit in brackets or after the last slash, case kept:
    'Current (mA)', 'Current [mA]' and 'I/mA' give ('Current', 'mA'), ('I', 'mA')."""
    text = str(column).strip()
    bracket = re.search(r"[(\[]\s*([^()\[\]]*?)\s*[)\]]\s*$", text)
    if bracket:
        return text[:bracket.start()], bracket.group(1) or None
    if "/" in text:
        head, _, unit = text.rpartition("/")
        return head, unit.strip() or None
    return text, None


def split_header(column: str) -> tuple[str, str | None]:
    """('name', 'unit'), both lower case, of a header: 'Current (mA)', 'Current [mA]', 'I/mA' and
    'current_ma' all give ('current', 'ma'); the name keeps only letters and digits."""
    text, unit = _unit_split(column)
    text = text.lower()
    if unit is None:
        suffix = re.search(r"[_ ](s|sec|min|h|a|ma|v|mv|c|k|ah|mah)$", text)
        if suffix:
            unit, text = suffix.group(1), text[:suffix.start()]
    return re.sub(r"[^a-z0-9]", "", text), (unit.lower() if unit else None)


def column_roles(columns) -> dict:
    """Role -> column of a table's header (see ROLE_NAMES). Temperature: the first column
    with 'temp' in its name that is not the chamber's (CHAMBER_WORDS), else the chamber's."""
    named = {}
    for column in columns:
        named.setdefault(split_header(column)[0], column)
    roles = {}
    for role, names in ROLE_NAMES.items():
        hit = next((named[n] for n in names if n in named), None)
        if hit is not None:
            roles[role] = hit
    temps = [c for c in columns if "temp" in split_header(c)[0]
             or (split_header(c)[0] in ("t", "t1") and split_header(c)[1] not in UNIT_FACTORS["time"])]
    cell = [c for c in temps if not any(w in split_header(c)[0] for w in CHAMBER_WORDS)]
    if temps:
        roles["temperature"] = (cell or temps)[0]
    return roles


_DISCHARGE_WORDS = re.compile(r"dchg|dischg|discharg|^(?:d|dch|dis)$|^(?:d|dch)[_ -]")
_CHARGE_WORDS = re.compile(r"chg|charg|^(?:c|ch|cha)$|^(?:c|ch|cha)[_ -]")
_REST_WORDS = re.compile(r"rest|pause|^pau|ocv|wait|relax|^(?:r|o|s|sto|stop)$|^r[_ -]")


def _kinds_from_state(values: pd.Series) -> np.ndarray | None:
    """charge / discharge / rest from a state or step-type column in the words cyclers use
    (C / D / R, CC_DChg, CCCV_Chg, Rest, DCH / CHA / PAU, D_CC, Discharge / Charge / Pause);
    None when the column does not read as one (numeric codes, other words)."""
    s = values.astype(str).str.strip().str.lower()
    discharge = s.str.contains(_DISCHARGE_WORDS)
    charge = ~discharge & s.str.contains(_CHARGE_WORDS)
    rest = ~discharge & ~charge & s.str.contains(_REST_WORDS)
    if (discharge | charge | rest).mean() < 0.95 or not (discharge | charge).any():
        return None
    return np.select([discharge, charge], ["discharge", "charge"], "rest")


def _state_from_columns(df: pd.DataFrame) -> tuple[np.ndarray | None, str | None]:
    """(kinds, column) from the first state-like column, in STATE_NAMES order, that reads as one."""
    order = {name: k for k, name in enumerate(STATE_NAMES)}
    candidates = sorted((c for c in df.columns if split_header(c)[0] in order), key=lambda c: order[split_header(c)[0]])
    for column in candidates:
        kinds = _kinds_from_state(df[column])
        if kinds is not None:
            return kinds, column
    return None, None


def _seconds(values: pd.Series, unit: str | None) -> pd.Series | None:
    """Seconds from numbers (with the header's unit), 'hh:mm:ss' / 'Nd hh:mm:ss' or date-times."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().mean() > 0.9:
        factor = UNIT_FACTORS["time"].get(unit)
        return None if factor is None else numbers * factor
    text = values.astype(str)
    if text.str.match(_HMS).mean() > 0.9:
        return _hms_to_seconds(text)
    stamps = pd.to_datetime(values, errors="coerce", format="mixed")
    if stamps.notna().mean() > 0.9:
        return (stamps - stamps.dropna().iloc[0]).dt.total_seconds()
    return None


HEADER_SCAN_LINES = 300  # preambles (EC-Lab settings blocks, Gamry tags) end before this


def _header_line(lines: list[str], accept, min_fields: int = 3) -> tuple[int, str, list[str]] | None:
    """(index, delimiter, fields) of the first line, within HEADER_SCAN_LINES, that splits on
    tab, comma or semicolon into ``min_fields`` or more fields that ``accept`` takes as a header."""
    for k, line in enumerate(lines[:HEADER_SCAN_LINES]):
        for sep in ("\t", ",", ";"):
            fields = [f.strip().strip('"') for f in line.split(sep)]
            if len(fields) >= min_fields and accept(fields):
                return k, sep, fields
    return None


def _is_cycler_header(fields) -> bool:
    roles = column_roles(fields)
    return {"current", "voltage"} <= set(roles) and ("time" in roles or "clock" in roles)


def _is_units_line(row: str) -> bool:
    """A line under a header that holds units, not numbers (Digatron, Gamry: 'V', 'mA', '°C', '#')."""
    return bool(row.strip(" \t,;\"")) and not re.search(r"\d", row.replace("#", ""))


def _units_row(fields: list[str], row: str, sep: str) -> dict:
    """Header field -> unit from a units line under the header ({} when there is none)."""
    if not _is_units_line(row):
        return {}
    return {f: u.strip().strip('"') for f, u in zip(fields, row.split(sep)) if u.strip().strip('"')}


def _decimal(sep: str | None, rows: list[str]) -> str:
    """',' where a tab- or semicolon-separated table writes numbers with decimal commas."""
    return "," if sep in ("\t", ";") and re.search(r"\d,\d", "\n".join(rows[:5])) else "."


def _cell_text(value) -> str:
    """A workbook cell as the text a cycler's CSV export would hold: durations (Excel's
    [h]:mm:ss cells) as 'h:mm:ss.ffffff' with hours past 24, empty cells as ''."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return ""
    if isinstance(value, (pd.Timedelta, datetime.timedelta)):
        seconds = value.total_seconds()
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{seconds % 60:09.6f}"
    return re.sub(r"[\t\r\n]", " ", str(value))


@dataclass
class _SheetTable:
    name: str
    fields: list[str]
    rows: list[str]  # tab-separated data lines under the header


def _sheet_table(name: str, raw) -> _SheetTable | None:
    """The cycler or spectrum table of one sheet's rows (header below any preamble rows), or None."""
    lines = ["\t".join(_cell_text(v) for v in row).rstrip("\t") for row in raw]
    header = _header_line(lines, lambda f: _is_cycler_header(f) or _is_spectrum_header(f))
    if header is None or header[1] != "\t":
        return None
    k, _, fields = header
    width = len(fields)  # cells right of the header (notes, stray values) are not part of the table
    return _SheetTable(name, fields, ["\t".join(line.split("\t")[:width]) for line in lines[k + 1:] if line.strip()])


def _time_value(table: _SheetTable, row: str) -> float | None:
    """A row's test time in seconds, or its clock as seconds since the epoch, for ordering sheets."""
    roles = column_roles(table.fields)
    for role in ("time", "clock"):
        if role in roles:
            cells = row.split("\t")
            j = table.fields.index(roles[role])
            value = pd.Series([cells[j] if j < len(cells) else ""])
            if role == "time":
                seconds = _seconds(value, split_header(roles[role])[1])
                if seconds is not None and seconds.notna().all():
                    return float(seconds.iloc[0])
            else:
                stamp = pd.to_datetime(value, errors="coerce", format="mixed").iloc[0]
                if stamp is not pd.NaT:
                    return stamp.timestamp()
    return None


def _continues(previous: _SheetTable, nxt: _SheetTable) -> bool:
    """Whether a sheet carries on the record of the one before (a long test split over sheets):
    the same header, and its first time not before the other's last."""
    if nxt.fields != previous.fields or not nxt.rows or not previous.rows:
        return False
    last, first = _time_value(previous, previous.rows[-1]), _time_value(nxt, nxt.rows[0])
    return last is not None and first is not None and first >= last


def _workbook_text(path: Path, kind: str) -> tuple[str, str]:
    """An Excel workbook's (xlsx or xls) data as one tab-separated table, and which sheets.

    The data sheet is the one whose header names time, current and voltage (or frequency
    and impedance) with the most rows; info, statistics and cycle sheets are left out.
    Sheets after it with the same header whose time carries on (Arbin and Neware split long
    tests over sheets) are appended."""
    from python_calamine import CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_path(str(path))
        sheets = {name: workbook.get_sheet_by_name(name) for name in workbook.sheet_names}
        rows = sum(sheet.height for sheet in sheets.values())
        if rows > MAX_WORKBOOK_ROWS:
            _fail(path, f"the workbook's sheets span {rows:,} rows, more than {MAX_WORKBOOK_ROWS:,}; export the "
                        "record as CSV")
        # empty rows (a sheet padded to Excel's last row) are skipped before any text is built
        tables = [t for name, sheet in sheets.items()
                  if (t := _sheet_table(str(name), (r for r in sheet.iter_rows() if any(v != "" for v in r)))) is not None]
    except ReaderError:
        raise
    except Exception as exc:  # a zip or OLE2 file that is not a workbook, or a damaged one
        _fail(path, f"could not be read as an Excel workbook ({kind}): {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
    if not tables:
        _fail(path, f"no sheet of the workbook has a header naming time, current and voltage (sheets: {', '.join(map(str, sheets))})")
    start = max(range(len(tables)), key=lambda k: len(tables[k].rows))
    chosen = [tables[start]]
    for table in tables[start + 1:]:
        if not _continues(chosen[-1], table):
            break
        chosen.append(table)
    text = "\n".join(["\t".join(chosen[0].fields)] + [row for table in chosen for row in table.rows])
    return text, ", ".join(t.name for t in chosen)


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


def _is_time_voltage_header(fields) -> bool:
    roles = column_roles(fields)
    return "voltage" in roles and ("time" in roles or "clock" in roles)


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


READERS = {"maccor": read_maccor, "neware": read_neware, "arbin": read_arbin, "biologic": read_biologic,
           "csv": read_csv_generic, "matlab": read_matlab}
TABLE_OPTIONS = ("csv", "matlab")  # the formats that take column, sign, unit and constant-current options


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
        fmt = "matlab" if _mat_version(path) else "csv" if table_options_given else detect_format(path)
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


def _integrate_ah(frame: pd.DataFrame) -> np.ndarray:
    """Charge moved between records, A.h (trapezoid on time; per record)."""
    t = frame["time_s"].to_numpy(float)
    i = frame["current_a"].to_numpy(float)
    dq = np.zeros(len(t))
    dq[1:] = 0.5 * (i[1:] + i[:-1]) * np.diff(t) / 3600.0
    return dq


def cycle_capacities(frame: pd.DataFrame) -> pd.DataFrame:
    """Per cycle: charge and discharge capacity (A.h), integrated from current and time,
    so per-step capacity resets in the export do not matter."""
    dq = _integrate_ah(frame)
    same_step = frame["step_index"].eq(frame["step_index"].shift()).to_numpy()
    dq[~same_step] = 0.0  # no integration across step boundaries
    kind = frame["step_type"].to_numpy()
    out = pd.DataFrame({
        "cycle_index": frame["cycle_index"].to_numpy(),
        "discharge_capacity_ah": np.where(kind == "discharge", np.clip(dq, 0, None), 0.0),
        "charge_capacity_ah": np.where(kind == "charge", np.clip(-dq, 0, None), 0.0),
    })
    return out.groupby("cycle_index", as_index=False).sum()


def last_cycle_is_partial(frame: pd.DataFrame, capacities: pd.DataFrame) -> bool:
    """Whether the file ends inside its last cycle (a test stopped or exported mid-step): the
    file's last discharge or charge step stopped more than 50 mV away from where the step of
    that kind before it stopped (it did not reach its cut-off) and its cycle moved less than
    90 % of the previous cycle's charge in that direction."""
    block = ((frame["step_index"] != frame["step_index"].shift()) | (frame["step_type"] != frame["step_type"].shift())).cumsum()
    loaded = frame[frame["step_type"] != "rest"]
    if len(capacities) < 2 or loaded.empty or loaded["cycle_index"].iloc[-1] != capacities["cycle_index"].iloc[-1]:
        return False
    kind = loaded["step_type"].iloc[-1]
    same = loaded["step_type"] == kind
    ends = loaded[same].groupby(block[loaded.index][same])["voltage_v"].last()
    column = "discharge_capacity_ah" if kind == "discharge" else "charge_capacity_ah"
    last, previous = capacities[column].iloc[-1], capacities[column].iloc[-2]
    return bool(len(ends) >= 2 and abs(ends.iloc[-1] - ends.iloc[-2]) > 0.05 and previous > 0 and last < 0.9 * previous)


def _constant_current_run(current_a: np.ndarray, tolerance: float) -> tuple[int, int]:
    """(start, stop) of a step's constant-current part. The reference current is the median
    of the step's first fifth. The part runs from the record before the first one within
    ``tolerance`` of it (so the interval in which the cycler ramped up, or logged its first
    sample late, still counts) to the last record within tolerance: a CC-CV step gives its
    CC part, not the CV taper, and an isolated noisy record inside does not cut it."""
    reference = np.median(current_a[: max(5, len(current_a) // 5)])
    inside = np.flatnonzero(np.abs(current_a - reference) <= tolerance * abs(reference))
    if inside.size == 0:
        return 0, 0
    return max(0, int(inside[0]) - 1), int(inside[-1]) + 1


def discharge_segments(frame: pd.DataFrame, min_duration_s: float = 60.0, cc_tolerance: float = 0.02) -> list[pd.DataFrame]:
    """Constant-current discharges: the leading constant-current part of each discharge step
    (after the current's ramp-up; a CC-CV step gives its CC part), with time from its start, current, voltage, discharged
    capacity, temperature and the file's cycle index. Parts shorter than ``min_duration_s`` (pulses) are left out."""
    segments = []
    block = (frame["step_index"] != frame["step_index"].shift()).cumsum()
    for _, g in frame.groupby(block, sort=False):
        if g["step_type"].iloc[0] != "discharge" or len(g) < 5:
            continue
        start, stop = _constant_current_run(g["current_a"].to_numpy(float), cc_tolerance)
        g = g.iloc[start:stop]
        i = g["current_a"].to_numpy(float)
        t = g["time_s"].to_numpy(float) - g["time_s"].iloc[0]
        if len(g) < 5 or t[-1] < min_duration_s:
            continue
        q = np.concatenate([[0.0], np.cumsum(0.5 * (i[1:] + i[:-1]) * np.diff(t) / 3600.0)])
        segments.append(pd.DataFrame({"time_s": t, "current_a": i, "voltage_v": g["voltage_v"].to_numpy(float),
                                      "discharged_ah": q,
                                      "temperature_c": g["temperature_c"].to_numpy(float),
                                      "cycle_index": g["cycle_index"].to_numpy()}))
    return segments


SPECTRUM_COLUMNS = {  # matched on the header text, unit included, case-insensitive
    "frequency": (r"^freq",),
    "real": (r"^z_?real", r"^re\s*\(?z\)?", r"^z'(?!')", r"^zre", r"^real"),
    "imag": (r"^-?\s*z_?imag", r"^-?\s*im\s*\(?z\)?", r"^-?\s*z''", r"^-?\s*zim", r"^-?\s*imag"),
    "modulus": (r"^\|z\|", r"^zmod", r"^z_?mod", r"^mod\s*\(?z", r"^impedance"),
    "phase": (r"^-?\s*phase", r"^-?\s*zphz", r"^-?\s*z_?ph"),
    "soc": (r"^soc",),
}
OHM_FACTORS = {"ohm": 1.0, "ω": 1.0, "mohm": 1e-3, "mω": 1e-3, "kohm": 1e3, "kω": 1e3, "uohm": 1e-6, "µω": 1e-6}
HZ_FACTORS = {"hz": 1.0, "khz": 1e3, "mhz": 1e-3}  # 'MHz' and 'mHz' differ only in case: see _factor
SPECTRUM_NAMES = {"frequency_hz": "frequency", "z_real_ohm": "real", "z_imag_ohm": "imag", "z_modulus_ohm": "modulus",
                  "phase_deg": "phase", "soc": "soc"}  # the column-mapping names of read_spectrum
IMAG_SIGNS = ("auto", "z-imag", "minus-z-imag")
IMPEDANCE_UNITS = ("auto", "ohm", "mOhm", "kOhm", "uOhm")
FREQUENCY_UNITS = ("auto", "Hz", "kHz", "mHz")
_UNIT_WORDS = re.compile(r"ohm|\u03a9|\u2126|hz|deg|\u00b0|rad", re.I)  # what makes bracket text a unit
_WIDE = re.compile(r"^(z_?real|z_?imag|z_?re|z_?im|z_?mod|z_?phase)_?([0-9.eE+-]+)\s*hz$", re.I)
LOW_FREQUENCY_HZ = 100.0  # below this a Li-ion cell's spectrum is capacitive (arcs, diffusion)


def _spectrum_roles(fields, columns: dict | None = None) -> dict:
    found = {SPECTRUM_NAMES[name]: column for name, column in (columns or {}).items() if name in SPECTRUM_NAMES}
    for role, patterns in SPECTRUM_COLUMNS.items():
        if role in found:
            continue
        column = _find([f for f in fields if f not in found.values()], *patterns)
        if column is not None:
            found[role] = column
    return found


def _unit_of(column: str, units_row: dict | None, factors: dict) -> str | None:
    """The unit written in a header ('Z (mOhm)', 'Re(Z)/Ohm', 'Freq [kHz]') or on a units line.
    One or two letters or digits in brackets that are no unit are a label and ignored
    (Maccor's FRA export names its columns Z'(a) and Z''(b); 'Re(Z)'); longer text is taken
    as a unit and must be one this reader knows."""
    unit = _unit_split(column)[1] or (units_row or {}).get(column)
    if not isinstance(unit, str) or not unit.strip():
        return None
    unit = unit.strip()
    is_label = _factor(unit, factors) is None and not _UNIT_WORDS.search(unit) and re.fullmatch(r"[A-Za-z0-9]{1,2}", unit)
    return None if is_label else unit


def _factor(unit: str, factors: dict) -> float | None:
    if unit == "MHz":
        return 1e6
    return factors.get(unit.lower().replace("ohms", "ohm").replace("\u2126", "\u03c9").replace("\u03a9", "\u03c9"))


def _scale(values: pd.Series, unit: str | None, factors: dict, path, column) -> pd.Series:
    values = pd.to_numeric(values, errors="coerce")
    if unit is None:
        return values
    factor = _factor(unit, factors)
    if factor is None:
        _fail(path, f"column {column!r}: unit {unit!r} not understood; allowed: {', '.join(sorted(set(factors)))}")
    return values * factor


def _is_spectrum_header(fields) -> bool:
    roles = _spectrum_roles(fields)
    return "frequency" in roles and ({"real", "imag"} <= set(roles) or {"modulus", "phase"} <= set(roles))


def is_wide_spectrum_header(fields) -> bool:
    kinds = [_WIDE.match(f).group(1).lower().replace("_", "") for f in fields if _WIDE.match(f)]
    return sum(k.startswith("zre") for k in kinds) >= 5 and sum(k.startswith("zim") for k in kinds) >= 5


def _spectrum_table(lines: list[str], columns: dict | None = None):
    """(frame, roles, units_row) of the first table whose header names frequency and real and
    imaginary parts (or modulus and phase), below any preamble; a units line under it is read."""
    accept = (lambda f: bool({SPECTRUM_NAMES[n] for n in columns if n in SPECTRUM_NAMES} and set(columns.values()) <= set(f))
              or _is_spectrum_header(f)) if columns else _is_spectrum_header
    header = _header_line(lines, accept)
    if header is None:
        return None
    k, sep, fields = header
    rows = lines[k + 1:]
    units_row = _units_row(fields, rows[0], sep) if rows else {}
    if units_row:  # a units line (Gamry)
        rows = rows[1:]
    df = pd.read_csv(io.StringIO("\n".join([sep.join(fields)] + rows)), sep=sep, decimal=_decimal(sep, rows))
    return df, _spectrum_roles(fields, columns), units_row


def _wide_spectra(path: Path, lines: list[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray] | None:
    """(per-row columns, frequencies, Z' rows, Z'' rows as stored) of a table holding one
    spectrum per row in columns per frequency (``ZReal_<f>Hz``, ``ZImag_<f>Hz``; the layout of
    Zhang et al. 2020); None for other tables."""
    header = _header_line(lines, is_wide_spectrum_header)
    if header is None:
        return None
    k, sep, fields = header
    table = pd.read_csv(io.StringIO("\n".join(lines[k:])), sep=sep, decimal=_decimal(sep, lines[k + 1:]))
    table.columns = [str(c).strip() for c in table.columns]
    parts = {}
    for c in table.columns:
        m = _WIDE.match(c)
        if m:
            parts.setdefault(m.group(1).lower().replace("_", "")[:3], {})[float(m.group(2))] = c
    frequencies = sorted(set(parts.get("zre", {})) & set(parts.get("zim", {})), reverse=True)
    real = table[[parts["zre"][f] for f in frequencies]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    imag = table[[parts["zim"][f] for f in frequencies]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    info = table[[c for c in table.columns if not re.search(r"_[0-9.eE+-]+\s*hz$", c, re.I)]]  # per-row columns
    return info, np.array(frequencies), real, imag


def _stored_sign(frequency_hz, z_imag, imag_sign: str, header_says_minus: bool | None) -> tuple[float, str]:
    """(factor that turns the stored imaginary values into Z'', the rule in words)."""
    if imag_sign == "z-imag":
        return 1.0, "stated: the imaginary column holds Z''"
    if imag_sign == "minus-z-imag":
        return -1.0, "stated: the imaginary column holds -Z''"
    if imag_sign != "auto":
        raise ReaderError(f"imag_sign {imag_sign!r} not allowed; allowed: {', '.join(IMAG_SIGNS)}")
    f, zi = np.asarray(frequency_hz, float).ravel(), np.asarray(z_imag, float).ravel()
    low = f <= LOW_FREQUENCY_HZ
    values = zi[low] if np.isfinite(zi[low]).sum() >= 3 else zi
    holds_minus = bool(np.nanmedian(values) > 0) if np.isfinite(values).any() else bool(header_says_minus)
    disagrees = header_says_minus is not None and holds_minus != header_says_minus
    rule = (f"the imaginary column holds {'-' if holds_minus else ''}Z'' (decided from the data: capacitive "
            f"below {LOW_FREQUENCY_HZ:g} Hz" + ("; the header says otherwise" if disagrees else "") + ")")
    return (-1.0 if holds_minus else 1.0), rule


def read_spectrum(path: str | Path, columns: dict | None = None, imag_sign: str = "auto",
                  impedance_unit: str = "auto", frequency_unit: str = "auto") -> pd.DataFrame:
    """An impedance spectrum -> sweep_id, soc, frequency_hz, z_real_ohm, z_imag_ohm.

    Reads a table whose header names frequency and real and imaginary parts (or modulus
    and phase in degrees), found below any preamble (EC-Lab header block, Gamry DTA
    ``ZCURVE`` table with its units line); comma, tab or semicolon separated, decimal
    commas allowed; or a table of one spectrum per row with columns per frequency
    (``ZReal_<f>Hz``, ``ZImag_<f>Hz``; its other columns, e.g. cell, cycle and capacity, are
    carried on every point of the row's sweep). Columns can be named by ``columns``
    (``frequency_hz``, ``z_real_ohm``, ``z_imag_ohm``, ``z_modulus_ohm``, ``phase_deg``,
    ``soc`` -> the file's header). Units come from the header or units line (ohm / mOhm /
    kOhm, Hz / kHz / mHz) unless ``impedance_unit`` / ``frequency_unit`` state them; bracket
    text that is no unit (Maccor's ``Z'(a)``) is a label. The imaginary sign: with
    ``imag_sign="auto"`` the stored values are taken as -Z'' when most points below 100 Hz,
    where a cell is capacitive, are positive (a ``-Z''`` header alone does not decide it);
    ``"z-imag"`` / ``"minus-z-imag"`` state it. A ``-Phase`` column is negated. An optional
    ``soc`` column (% or fraction) gives one sweep per SOC. Sweeps repeated at one SOC, or in
    a file without SOC, are told apart where the frequency comes back to the sweep's first
    value (``...-sweep1``, ``...-sweep2``). A headerless file of three numeric columns is
    frequency (Hz), Z' and Z'' (ohm). Output: Z = Z' + jZ'', capacitive Z'' < 0; what was
    decided is in ``attrs["convention"]`` and ``attrs["notes"]``.
    """
    path = Path(path)
    if not path.is_file():
        _fail(path, "no such file")
    for name, value, allowed in (("imag_sign", imag_sign, IMAG_SIGNS), ("impedance_unit", impedance_unit, IMPEDANCE_UNITS),
                                 ("frequency_unit", frequency_unit, FREQUENCY_UNITS)):
        if value not in allowed:
            _fail(path, f"{name} {value!r} not allowed; allowed: {', '.join(allowed)}")
    unknown = sorted(set(columns or {}) - set(SPECTRUM_NAMES))
    if unknown:
        _fail(path, f"column mapping names {unknown} not allowed; allowed: {', '.join(SPECTRUM_NAMES)}")
    if path.stat().st_size > MAX_SPECTRUM_BYTES:
        _fail(path, f"{path.stat().st_size / 1e6:.0f} MB is too large for a spectrum file (at most "
                    f"{MAX_SPECTRUM_BYTES / 1e6:.0f} MB); split it")
    lines = _lines(path)
    if not any(line.strip() for line in lines):
        _fail(path, "empty file; a spectrum needs frequency, Z' and Z'' values")
    notes = []
    try:
        wide = None if columns else _wide_spectra(path, lines)
        if wide is not None:
            return _long_spectra(path, *wide, imag_sign, impedance_unit, frequency_unit)
        table = _spectrum_table(lines, columns)
        header_minus = None
        if table is None:
            partial = _header_line(lines, lambda f: "frequency" in _spectrum_roles(f), min_fields=2)
            if partial is not None:
                roles = _spectrum_roles(partial[2])
                _fail(path, f"spectrum table lacks {'an imaginary' if 'real' in roles else 'a real'} part column "
                            f"(found: {', '.join(partial[2][:8])}); needs frequency with Z' and Z'' (or |Z| and "
                            "phase), or --column to name them")
            df = pd.read_csv(io.StringIO("\n".join(lines)), sep=None, engine="python", header=None)
            if df.shape[1] < 3 or pd.to_numeric(df.iloc[:, 0], errors="coerce").notna().mean() < 0.5:
                _fail(path, "spectrum needs a header naming frequency, real and imaginary (or modulus and phase) "
                            "columns, or three headerless numeric columns: frequency (Hz), Z' (ohm), Z'' (ohm)")
            f, zr, zi = (pd.to_numeric(df.iloc[:, k], errors="coerce") for k in range(3))
            soc = pd.Series(np.nan, index=df.index)
            f_unit = z_unit = None
        else:
            df, roles, units_row = table
            missing = [c for c in (columns or {}).values() if c not in df.columns]
            if missing:
                _fail(path, f"mapped column(s) {missing} not in the header {list(df.columns)[:10]}")
            f_unit = _unit_of(roles["frequency"], units_row, HZ_FACTORS)
            f = _scale(df[roles["frequency"]], f_unit, HZ_FACTORS, path, roles["frequency"])
            if {"real", "imag"} <= set(roles):
                z_unit = _unit_of(roles["real"], units_row, OHM_FACTORS)
                zr = _scale(df[roles["real"]], z_unit, OHM_FACTORS, path, roles["real"])
                zi = _scale(df[roles["imag"]], _unit_of(roles["imag"], units_row, OHM_FACTORS), OHM_FACTORS, path,
                            roles["imag"])
                header_minus = roles["imag"].lstrip().startswith("-") or None  # a header without '-' says nothing
            else:
                z_unit = _unit_of(roles["modulus"], units_row, OHM_FACTORS)
                modulus = _scale(df[roles["modulus"]], z_unit, OHM_FACTORS, path, roles["modulus"])
                phase = np.deg2rad(pd.to_numeric(df[roles["phase"]], errors="coerce"))
                phase = -phase if roles["phase"].lstrip().startswith("-") else phase
                zr, zi = modulus * np.cos(phase), modulus * np.sin(phase)
            soc = pd.to_numeric(df[roles["soc"]], errors="coerce") if "soc" in roles else pd.Series(np.nan, index=df.index)
            if "soc" in roles:  # a point whose SOC cell is empty, text or inf belongs to no sweep: dropped, counted
                soc = soc.where(np.isfinite(soc))
                f = pd.to_numeric(f, errors="coerce").where(soc.notna())
            if soc.max() > 1.0:
                soc = soc / 100.0
            if ((soc < 0) | (soc > 1)).any():
                _fail(path, f"column {roles['soc']!r}: states of charge must lie in 0..1 (or 0..100 %), "
                            f"got {soc.min():g} to {soc.max():g}")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, KeyError, TypeError, csv.Error) as exc:
        if isinstance(exc, ReaderError):
            raise
        _fail(path, f"not a spectrum table: {type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:120]}")
    f, zr, zi = (np.asarray(x, dtype=float) for x in (f, zr, zi))
    f, zr, zi, units = _stated_units(f, zr, zi, f_unit, z_unit, frequency_unit, impedance_unit, path)
    sign, rule = (1.0, "Z'' from modulus and phase") if table is not None and "imag" not in table[1] \
        else _stored_sign(f, zi, imag_sign, header_minus)
    out = pd.DataFrame({"soc": soc.astype(float).values, "frequency_hz": f, "z_real_ohm": zr,
                        "z_imag_ohm": sign * zi})
    return _finish_spectrum(path, out, rule, units, notes)


def _stated_units(f, zr, zi, f_unit, z_unit, frequency_unit, impedance_unit, path):
    """Values in Hz and ohm where the caller states the file's units (the header had none)."""
    words = []
    if frequency_unit != "auto":
        if f_unit is not None and _factor(f_unit, HZ_FACTORS) != _factor(frequency_unit, HZ_FACTORS):
            _fail(path, f"frequency unit stated as {frequency_unit} but the header says {f_unit}")
        if f_unit is None:
            f = f * _factor(frequency_unit, HZ_FACTORS)
        words.append(f"frequency in {frequency_unit} (stated)")
    if impedance_unit != "auto":
        if z_unit is not None and _factor(z_unit, OHM_FACTORS) != _factor(impedance_unit, OHM_FACTORS):
            _fail(path, f"impedance unit stated as {impedance_unit} but the header says {z_unit}")
        if z_unit is None:
            zr, zi = zr * _factor(impedance_unit, OHM_FACTORS), zi * _factor(impedance_unit, OHM_FACTORS)
        words.append(f"impedance in {impedance_unit} (stated)")
    return f, zr, zi, words


def _long_spectra(path, info, frequencies, real, imag, imag_sign, impedance_unit, frequency_unit) -> pd.DataFrame:
    """One row per point from a table of one spectrum per row."""
    n_rows, n_f = real.shape
    f = np.tile(frequencies, n_rows)
    f, zr, zi, units = _stated_units(f, real.ravel(), imag.ravel(), None, None, frequency_unit, impedance_unit, path)
    sign, rule = _stored_sign(f, zi, imag_sign, None)
    soc_column = next((c for c in info.columns if c.strip().lower() == "soc"), None)
    soc = pd.to_numeric(info[soc_column], errors="coerce").to_numpy(float) if soc_column else np.full(n_rows, np.nan)
    if np.nanmax(soc, initial=0.0) > 1.0:
        soc = soc / 100.0
    out = pd.DataFrame({"soc": np.repeat(soc, n_f), "frequency_hz": f, "z_real_ohm": zr, "z_imag_ohm": sign * zi})
    cell = next((c for c in info.columns if c.strip().lower() in ("cell", "cell_id", "seriesidx", "battery")), None)
    cycle = next((c for c in info.columns if c.strip().lower() in ("cycle", "cycle_index", "cycle_number")), None)
    names = [f"{path.stem}-{info[cell].iloc[k] if cell else ''}{'-' if cell and cycle else ''}"
             f"{'cycle' + str(info[cycle].iloc[k]) if cycle else ''}" if (cell or cycle) else f"{path.stem}-row{k}"
             for k in range(n_rows)]
    extra = info.loc[np.repeat(np.arange(n_rows), n_f)].reset_index(drop=True)
    extra = extra.drop(columns=[c for c in extra.columns if c in out.columns or c == soc_column])
    out = pd.concat([out, extra], axis=1)
    out.insert(0, "sweep_id", np.repeat(names, n_f))
    if len(set(names)) < n_rows:  # cell and cycle do not tell the rows apart: number them
        out["sweep_id"] = np.repeat([f"{path.stem}-row{k}" for k in range(n_rows)], n_f)
    notes = [f"{n_rows} spectra in rows, {n_f} frequencies each" + (f"; per-sweep columns: {', '.join(extra.columns)}"
                                                                    if len(extra.columns) else "")]
    out = out.dropna(subset=["frequency_hz"]).reset_index(drop=True)
    out.attrs.update({"source": str(path), "convention": "; ".join([rule, *units]), "notes": notes})
    return out


def _finite_points(path: Path, out: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """The points whose frequency, Z' and Z'' are finite numbers (empty, text, NaN and inf
    cells and truncated lines are dropped and counted in a note)."""
    values = out[["frequency_hz", "z_real_ohm", "z_imag_ohm"]].to_numpy(float)
    finite = np.isfinite(values).all(axis=1)
    if (~finite).any():
        notes.append(f"{int((~finite).sum())} of {len(out)} points dropped (empty, text, NaN or inf values)")
    out = out[finite]
    if out.empty:
        _fail(path, "no point with numeric frequency, Z' and Z''")
    if (out["frequency_hz"] <= 0).any():
        _fail(path, "spectrum needs positive frequencies")
    return out.reset_index(drop=True)


def _merge_repeated_frequencies(path: Path, out: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Points of one sweep at the same frequency (within 0.1 %) are averaged, and counted."""
    key = np.round(np.log(out["frequency_hz"].to_numpy(float)) / np.log1p(1e-3))
    duplicated = pd.Series(key).groupby(out["sweep_id"].to_numpy()).transform(lambda k: k.duplicated(keep=False))
    if not duplicated.any():
        return out
    notes.append(f"{int(duplicated.sum())} points at repeated frequencies within a sweep averaged")
    merged = out.assign(_key=key).groupby(["sweep_id", "_key"], sort=False, as_index=False).agg(
        {c: ("first" if c in ("sweep_id", "soc") or out[c].dtype == object else "mean")
         for c in out.columns if c != "sweep_id"})
    return merged.drop(columns="_key")[out.columns]


MIN_SWEEP_POINTS = 5
MAX_SPECTRUM_BYTES = 200_000_000


def _finish_spectrum(path: Path, out: pd.DataFrame, rule: str, units: list[str], notes: list[str]) -> pd.DataFrame:
    out = _finite_points(path, out, notes)
    key = out["soc"].fillna(-1).map(lambda s: "all" if s < 0 else f"soc{round(s * 100):03d}")
    repeat = out.groupby(key, sort=False)["frequency_hz"].transform(_sweep_numbers)
    if (repeat > 0).any():  # sweeps repeated at one SOC (or in a file without SOC) are kept apart
        key = key + "-sweep" + (repeat + 1).astype(str)
    out.insert(0, "sweep_id", path.stem + "-" + key)
    out = _merge_repeated_frequencies(path, out, notes)
    sizes = out.groupby("sweep_id", sort=False).size()
    if (sizes < MIN_SWEEP_POINTS).any():
        short = sizes[sizes < MIN_SWEEP_POINTS]
        _fail(path, f"sweep {short.index[0]} has {short.iloc[0]} valid point(s); at least {MIN_SWEEP_POINTS} are needed")
    out.attrs.update({"source": str(path), "convention": "; ".join([rule, *units]), "notes": notes})
    return out


def _sweep_numbers(frequency_hz: pd.Series, tolerance: float = 0.01) -> np.ndarray:
    """0, 1, ... per record: a new sweep starts where the frequency comes back to within 1 % of
    the current sweep's first frequency, at least three points after it began."""
    f = frequency_hz.to_numpy(float)
    numbers, start = np.zeros(len(f), dtype=int), 0
    for i in range(1, len(f)):
        if i - start >= 3 and abs(np.log(f[i] / f[start])) < tolerance:
            start = i
        numbers[i] = numbers[i - 1] + (start == i)
    return numbers
