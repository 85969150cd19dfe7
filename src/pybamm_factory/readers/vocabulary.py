"""What a table's header, units and state columns say, for the cycler and spectrum readers.

Header names are compared with their unit split off, in lower case, letters and digits only
(``split_header``: ``'Test Time (s)'`` -> ``('testtime', 's')``, ``'I/mA'`` -> ``('i', 'ma')``);
``column_roles`` gives time, clock, current, voltage, cycle, step and temperature columns by
``ROLE_NAMES`` in priority order, and ``UNIT_FACTORS`` turn the header's unit into seconds,
amperes and volts. Time cells are numbers, ``hh:mm:ss`` / ``Nd hh:mm:ss`` or date-times
(``_seconds``). State or step-type columns in the words cyclers use (C / D / R, ``CC_DChg``,
``Rest``, ...) give ``charge`` / ``discharge`` / ``rest`` (``_kinds_from_state``, ``STATE_NAMES``).
A header line is the first of the first ``HEADER_SCAN_LINES`` lines that splits on tab, comma
or semicolon into fields a test accepts (``_header_line``); a units line under it (Digatron,
Gamry) and decimal commas are recognised. Spectrum columns are matched on the header text, unit
included (``SPECTRUM_COLUMNS``), and a wide table of one spectrum per row by its
``ZReal_<f>Hz`` / ``ZImag_<f>Hz`` columns. Nothing here reads a file or raises ReaderError.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

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


def _is_time_voltage_header(fields) -> bool:
    roles = column_roles(fields)
    return "voltage" in roles and ("time" in roles or "clock" in roles)


SPECTRUM_COLUMNS = {  # matched on the header text, unit included, case-insensitive
    "frequency": (r"^freq",),
    "real": (r"^z_?real", r"^re\s*\(?z\)?", r"^z'(?!')", r"^zre", r"^real"),
    "imag": (r"^-?\s*z_?imag", r"^-?\s*im\s*\(?z\)?", r"^-?\s*z''", r"^-?\s*zim", r"^-?\s*imag"),
    "modulus": (r"^\|z\|", r"^zmod", r"^z_?mod", r"^mod\s*\(?z", r"^impedance"),
    "phase": (r"^-?\s*phase", r"^-?\s*zphz", r"^-?\s*z_?ph"),
    "soc": (r"^soc",),
}
SPECTRUM_NAMES = {"frequency_hz": "frequency", "z_real_ohm": "real", "z_imag_ohm": "imag", "z_modulus_ohm": "modulus",
                  "phase_deg": "phase", "soc": "soc"}  # the column-mapping names of read_spectrum
_WIDE = re.compile(r"^(z_?real|z_?imag|z_?re|z_?im|z_?mod|z_?phase)_?([0-9.eE+-]+)\s*hz$", re.I)


def _find(columns, *patterns):
    for pattern in patterns:
        for c in columns:
            if re.search(pattern, c, re.I):
                return c
    return None


def _spectrum_roles(fields, columns: dict | None = None) -> dict:
    found = {SPECTRUM_NAMES[name]: column for name, column in (columns or {}).items() if name in SPECTRUM_NAMES}
    for role, patterns in SPECTRUM_COLUMNS.items():
        if role in found:
            continue
        column = _find([f for f in fields if f not in found.values()], *patterns)
        if column is not None:
            found[role] = column
    return found


def _is_spectrum_header(fields) -> bool:
    roles = _spectrum_roles(fields)
    return "frequency" in roles and ({"real", "imag"} <= set(roles) or {"modulus", "phase"} <= set(roles))


def is_wide_spectrum_header(fields) -> bool:
    kinds = [_WIDE.match(f).group(1).lower().replace("_", "") for f in fields if _WIDE.match(f)]
    return sum(k.startswith("zre") for k in kinds) >= 5 and sum(k.startswith("zim") for k in kinds) >= 5
