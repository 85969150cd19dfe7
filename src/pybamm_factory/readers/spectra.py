"""Impedance spectra: ``read_spectrum``, its layouts, units and imaginary sign.

Output: one row per point, ``sweep_id``, ``soc`` (a fraction; null without one),
``frequency_hz``, ``z_real_ohm``, ``z_imag_ohm``, with Z = Z' + jZ'' and capacitive Z'' < 0.
Layouts: a table naming frequency with Z' and Z'' (or |Z| and phase in degrees) below any
preamble, a table of one spectrum per row with columns per frequency (Zhang et al. 2020), or
three headerless numeric columns. Units come from the header or a units line (``OHM_FACTORS``,
``HZ_FACTORS``) unless stated; the stored imaginary sign is decided from the data below
``LOW_FREQUENCY_HZ`` unless stated (``IMAG_SIGNS``). What was decided is in
``attrs["convention"]`` and ``attrs["notes"]``.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .decode import _lines
from .errors import ReaderError, _fail
from .vocabulary import (
    _WIDE,
    SPECTRUM_NAMES,
    _decimal,
    _header_line,
    _is_spectrum_header,
    _spectrum_roles,
    _unit_split,
    _units_row,
    is_wide_spectrum_header,
)

OHM_FACTORS = {"ohm": 1.0, "ω": 1.0, "mohm": 1e-3, "mω": 1e-3, "kohm": 1e3, "kω": 1e3, "uohm": 1e-6, "µω": 1e-6}
HZ_FACTORS = {"hz": 1.0, "khz": 1e3, "mhz": 1e-3}  # 'MHz' and 'mHz' differ only in case: see _factor
IMAG_SIGNS = ("auto", "z-imag", "minus-z-imag")
IMPEDANCE_UNITS = ("auto", "ohm", "mOhm", "kOhm", "uOhm")
FREQUENCY_UNITS = ("auto", "Hz", "kHz", "mHz")
_UNIT_WORDS = re.compile(r"ohm|\u03a9|\u2126|hz|deg|\u00b0|rad", re.I)  # what makes bracket text a unit
LOW_FREQUENCY_HZ = 100.0  # below this a Li-ion cell's spectrum is capacitive (arcs, diffusion)


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
