"""The measured curve: constant-current discharges taken from cycler exports.

:class:`Curve` is one discharge as the fit sees it: voltage on an even grid of
discharged capacity (POINTS_PER_CURVE points), its constant current and duration, and
the logged temperature (mean, first reading, and the trace thinned to TRACE_POINTS
points). :meth:`Curve.all_from_file` reads a file with ``read_cycler`` and takes the
discharges :func:`pick_discharges` (and :func:`pick_discharge`) choose.
:class:`CalibrationError` is the one-line error every calibration step raises. Nothing
here needs PyBaMM.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FactoryError
from ..readers import discharge_segments, read_cycler

POINTS_PER_CURVE = 120
TRACE_POINTS = 200  # measured temperature trace, thinned to this many points


class CalibrationError(FactoryError, ValueError):
    """Calibration input is unusable; one line naming what is wrong."""


@dataclass
class Curve:
    name: str
    discharged_ah: np.ndarray
    voltage_v: np.ndarray
    current_a: float
    duration_s: float
    mean_temperature_k: float  # mean logged temperature during the discharge (the stated one when none)
    start_temperature_k: float = None  # first reading: the chamber before the load
    trace_time_s: np.ndarray | None = None  # logged temperature trace (time from the start of discharge)
    trace_temperature_k: np.ndarray | None = None
    source: str = ""  # which discharge of the file, in words
    rest_voltage_v: float | None = None  # last reading at rest before the discharge (None if the file has none)

    @classmethod
    def from_file(cls, path: str | Path, points: int = POINTS_PER_CURVE, discharge: str | int = "largest",
                  read_options: dict | None = None, temperature_c: float | None = None) -> Curve:
        """One constant-current discharge of a cycler export (see :func:`pick_discharge`)."""
        curves = cls.all_from_file(path, points, discharge, read_options, temperature_c)
        if len(curves) != 1:
            raise CalibrationError(f"{path}: discharge {discharge!r} picks {len(curves)} discharges; use all_from_file")
        return curves[0]

    @classmethod
    def all_from_file(cls, path: str | Path, points: int = POINTS_PER_CURVE, discharge: str | int = "largest",
                      read_options: dict | None = None, temperature_c: float | None = None) -> list[Curve]:
        """The constant-current discharges of a cycler export that ``discharge`` picks
        (:func:`pick_discharges`: one, a list, or all). ``read_options`` go to
        :func:`read_cycler` (format, column mapping, a stated current). A file that records no
        temperature needs ``temperature_c`` (the cell's temperature during the test, degC): it
        is never assumed. Several discharges of one file are named ``<file>:<index>``."""
        path = Path(path)
        read_options = dict(read_options or {})
        frame = read_cycler(path, format=read_options.pop("format", "auto"), **read_options)
        segments = discharge_segments(frame)
        if not segments:
            raise CalibrationError(f"{path}: no constant-current discharge found")
        picked = pick_discharges(segments, discharge, path)
        curves = []
        for k in picked:
            seg = segments[k]
            q = seg["discharged_ah"].to_numpy()
            grid = np.linspace(q[0], q[-1], points)
            temp_k = seg["temperature_c"].to_numpy() + 273.15
            time_s = seg["time_s"].to_numpy()
            known = np.isfinite(temp_k)
            stated = None if temperature_c is None else float(temperature_c) + 273.15
            if not known.any() and stated is None:
                raise CalibrationError(f"{path}: the file records no temperature; state the cell's temperature during "
                                       f"the test with --temperature-c {path.name}=DEGC (or --temperature-c DEGC for "
                                       "every such file): it is never assumed")
            mean_k = float(np.mean(temp_k[known])) if known.any() else stated
            start_k = float(temp_k[known][0]) if known.any() else stated
            trace_t = trace_k = None
            if known.sum() >= 2:
                keep = np.unique(np.linspace(0, known.sum() - 1, TRACE_POINTS).astype(int))
                trace_t, trace_k = time_s[known][keep], temp_k[known][keep]
            current_a = float(seg["current_a"].mean())
            source = f"CC discharge {k + 1} of {len(segments)} ({current_a:.3g} A, {q[-1]:.4g} A.h)"
            if frame.attrs.get("current_convention", "").startswith("stated constant"):
                source += f"; assumed: {frame.attrs['current_convention']}"
            if not known.any():
                source += f"; temperature stated: {temperature_c:g} degC (the file records none)"
            name = path.stem if len(picked) == 1 else f"{path.stem}:{k + 1}"
            curves.append(cls(name, grid, np.interp(grid, q, seg["voltage_v"].to_numpy()),
                              current_a, float(time_s[-1]), mean_k, start_k, trace_t, trace_k, source,
                              _rest_voltage(frame, seg)))
        return curves


DISCHARGE_CHOICES = ("largest", "first", "all")


def _rest_voltage(frame, seg) -> float | None:
    """The last voltage reading at zero current before ``seg`` (a discharge of ``frame``)
    starts: the cell's rest voltage before the load, or None when the file shows no rest
    within the 5 records before it. The segment's own first row comes from
    :func:`~pybamm_factory.readers.discharge_segments` (``attrs["start_row"]``), so a
    file's later discharges at the same current find their own rest, not the first's."""
    current, voltage = frame["current_a"].to_numpy(float), frame["voltage_v"].to_numpy(float)
    first = seg.attrs["start_row"]
    at_rest = np.flatnonzero(np.abs(current[:first]) < 1e-3 * abs(seg["current_a"].iloc[0]))
    return float(voltage[at_rest[-1]]) if len(at_rest) and at_rest[-1] >= first - 5 else None


def pick_discharge(segments: list, discharge: str | int, path) -> int:
    """Index of the discharge to fit: "largest" (default) is the first within 2 % of the largest
    discharged capacity, so a file's full discharge wins over shorter ones (pulses, partial
    discharges) and the earliest of an aging series is taken; "first"; or a 1-based number."""
    if isinstance(discharge, str) and discharge.isdigit():
        discharge = int(discharge)
    if isinstance(discharge, int):
        if not 1 <= discharge <= len(segments):
            raise CalibrationError(f"{path}: discharge {discharge} asked for, the file has {len(segments)} CC discharges")
        return discharge - 1
    if discharge not in DISCHARGE_CHOICES or discharge == "all":
        raise CalibrationError(f"discharge: {discharge!r} is not allowed; allowed: {', '.join(DISCHARGE_CHOICES)}, "
                               "a number from 1 or a comma list of them")
    if discharge == "first":
        return 0
    capacity = np.array([seg["discharged_ah"].iloc[-1] for seg in segments])
    return int(np.argmax(capacity >= 0.98 * capacity.max()))


def pick_discharges(segments: list, discharge, path) -> list[int]:
    """Indices of the discharges to fit: ``"all"``, a comma list of 1-based numbers
    (``"1,3"``), or one as :func:`pick_discharge` chooses."""
    if discharge == "all":
        return list(range(len(segments)))
    if isinstance(discharge, str) and "," in discharge:
        return [pick_discharge(segments, part.strip(), path) for part in discharge.split(",") if part.strip()]
    return [pick_discharge(segments, discharge, path)]
