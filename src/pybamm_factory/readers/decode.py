"""Bytes to text: exports decoded, binary exports refused, Excel workbooks assembled.

Text is decoded as UTF-16 (by its BOM), UTF-8, else Latin-1 (``_decode``); format detection
reads a file's first ``HEAD_BYTES``. Binary exports no reader takes (EC-Lab ``.mpr``, Arbin
``.res``, Neware ``.nda``/``.ndax``) are refused by their first bytes, naming what to export
instead. Excel workbooks (.xlsx, .xls; read with python-calamine, imported only then) are read
through the same table reader as text: the sheet whose header names time, current and voltage
with the most rows, joined with the sheets after it that carry its record on, as one
tab-separated table (``_read_text`` returns it with the sheets' names). A workbook of more than
``MAX_WORKBOOK_ROWS`` rows is refused.
"""

from __future__ import annotations

import datetime
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ReaderError, _fail
from .vocabulary import _header_line, _is_cycler_header, _is_spectrum_header, _seconds, column_roles, split_header


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
