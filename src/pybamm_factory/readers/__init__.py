"""Readers of measured files: cycler exports and impedance spectra, normalised to one frame.

They serve the ``read`` and ``eis-features`` commands, :mod:`pybamm_factory.learn.measured`
and the calibration fits, and import neither PyBaMM nor matplotlib. Each module imports only
those listed before it:

* :mod:`.errors`: :class:`ReaderError`, the one error a reader raises (a one-line message).
* :mod:`.vocabulary`: what headers, units and state columns say (column roles, unit factors,
  charge / discharge / rest words, header and units lines, spectrum column names).
* :mod:`.decode`: bytes to text (UTF-16 / UTF-8 / Latin-1, binary exports refused) and Excel
  workbooks as one tab-separated table.
* :mod:`.cycler`: one reader per cycler format and ``read_cycler``; the normalised frame and
  its sign conventions; step typing and plausibility checks.
* :mod:`.derived`: per-cycle capacities, partial last cycles and constant-current discharge
  segments of a normalised frame.
* :mod:`.spectra`: ``read_spectrum``: spectrum layouts, units and the imaginary sign.

battery-data-toolkit and cellpy were evaluated on the files in ``shared/realdata``
first; docs/readers.md says why these readers are the project's own.
"""

from .cycler import (
    COLUMNS,
    FORMATS,
    READERS,
    TABLE_OPTIONS,
    detect_format,
    infer_discharge_sign,
    read_arbin,
    read_biologic,
    read_csv_generic,
    read_cycler,
    read_maccor,
    read_matlab,
    read_neware,
    step_types,
    table_frame,
)
from .derived import cycle_capacities, discharge_segments, last_cycle_is_partial
from .errors import ReaderError
from .spectra import FREQUENCY_UNITS, IMAG_SIGNS, IMPEDANCE_UNITS, read_spectrum
from .vocabulary import column_roles, is_wide_spectrum_header, split_header

__all__ = [
    "COLUMNS", "FORMATS", "FREQUENCY_UNITS", "IMAG_SIGNS", "IMPEDANCE_UNITS", "READERS", "TABLE_OPTIONS", "ReaderError",
    "column_roles", "cycle_capacities", "detect_format", "discharge_segments", "infer_discharge_sign", "is_wide_spectrum_header",
    "last_cycle_is_partial", "read_arbin", "read_biologic", "read_csv_generic", "read_cycler", "read_maccor", "read_matlab",
    "read_neware", "read_spectrum", "split_header", "step_types", "table_frame",
]
