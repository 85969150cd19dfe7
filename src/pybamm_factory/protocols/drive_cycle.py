"""``drive-cycle``: a dynamic current profile repeated from full down a depth of discharge.

The profile is a CSV of ``time_s`` and a current column (positive = discharge, PyBaMM's
sign; any scale: it is divided by its largest magnitude), or the name of a packaged one
(``us06``: the US06 profile shipped with PyBaMM, BSD-3-Clause, see ``profiles/``). Factors:
``peak_c_rate`` (the profile's largest current, C of nominal), ``depth_of_discharge``
(fraction of the latest RPT capacity drawn per cycle: the drive lasts until the
profile's running net charge reaches it; the lower voltage stops it earlier if reached) and ``charge_c_rate``. A cycle is the profile,
repeated from the start, for as long as that depth takes; a rest; a CC-CV charge back to
the upper voltage; a rest. After a reference test a CC-CV charge fills the cell first.

The current is the profile (a PyBaMM interpolant in the step's own time) times one input
parameter, so every sample and peak rate shares one built model.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import numpy as np

from ..design.spec import _fail, _number
from .base import CHARGE_CURRENT, ProtocolKind, c_rate_factor, currents, fraction_factor, rest_steps, span, value

PEAK_CURRENT = "Drive cycle peak current [A]"
PACKAGED = ("us06",)


def load_profile(src: str, fld: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(time_s, current / peak current) of a packaged profile or a CSV file."""
    import pandas as pd

    path = resources.files("pybamm_factory") / "protocols" / "profiles" / f"{name}.csv" if name in PACKAGED else Path(name)
    try:
        frame = pd.read_csv(str(path), comment="#")
    except (OSError, ValueError) as exc:
        _fail(src, fld, f"cannot read drive profile '{name}' ({type(exc).__name__}); give a packaged name "
              f"({', '.join(PACKAGED)}) or a CSV with 'time_s' and a current column")
    if "time_s" not in frame.columns or len(frame.columns) < 2 or len(frame) < 2:
        _fail(src, fld, f"drive profile '{name}' needs a 'time_s' column and a current column, got {list(frame.columns)}")
    t = frame["time_s"].to_numpy(float)
    i = frame[[c for c in frame.columns if c != "time_s"][0]].to_numpy(float)
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(i))) or t[0] != 0 or np.any(np.diff(t) <= 0):
        _fail(src, fld, f"drive profile '{name}': time_s must start at 0 and rise, and every value must be finite")
    peak = np.abs(i).max()
    if peak == 0 or i.mean() <= 0:
        _fail(src, fld, f"drive profile '{name}' must discharge on balance (mean current > 0, positive = discharge)")
    return t, i / peak


class DriveCycle(ProtocolKind):
    name = "drive-cycle"
    summary = "a current profile (CSV or packaged US06) repeated down a depth of discharge, then CC-CV recharge"
    keys = ("profile", "peak_c_rate", "depth_of_discharge", "charge_c_rate", "cv_cutoff_c_rate")
    required = ("profile", "peak_c_rate", "depth_of_discharge", "charge_c_rate")
    measures_capacity = False

    def __init__(self):
        self._currents: dict = {}  # (protocol id, profile) -> the shared current expression

    def parse_own(self, src, fld, spec, factors, settings, limits_v):
        if not isinstance(spec["profile"], str):
            _fail(src, f"{fld}.profile", f"expected a packaged name ({', '.join(PACKAGED)}) or a CSV path")
        t, i = load_profile(src, f"{fld}.profile", spec["profile"])
        settings["profile"] = spec["profile"]
        settings["profile_period_s"] = float(t[-1] + (t[-1] - t[-2]))
        settings["profile_mean_per_peak"] = float(np.sum(0.5 * (i[1:] + i[:-1]) * np.diff(t)) / t[-1])
        peak = c_rate_factor(src, fld, spec, "peak_c_rate", factors)
        dod = fraction_factor(src, fld, spec, "depth_of_discharge", factors)
        if dod.low <= 0:
            _fail(src, f"{fld}.depth_of_discharge", f"must be > 0, got low {dod.low:g}")
        c_rate_factor(src, fld, spec, "charge_c_rate", factors)
        settings["cv_cutoff_c_rate"] = _number(src, f"{fld}.cv_cutoff_c_rate", spec.get("cv_cutoff_c_rate", 0.05),
                                               positive=True)
        # the longest drive any sample needs (deepest, slowest, with room for a larger RPT capacity)
        settings["longest_drive_s"] = 3600.0 * 1.2 * dod.high / (settings["profile_mean_per_peak"] * peak.low)

    def _current(self, protocol):
        import pybamm

        key = (protocol.protocol_id, protocol.settings["profile"])
        if key not in self._currents:
            t, i = load_profile("", "", protocol.settings["profile"])
            period = protocol.settings["profile_period_s"]
            loops = max(1, math.ceil(protocol.settings["longest_drive_s"] / period) + 1)
            t_all = np.concatenate([t + k * period for k in range(loops)])
            i_all = np.tile(i, loops)
            shape = pybamm.Interpolant(t_all, i_all, pybamm.t - pybamm.InputParameter("start time"),
                                       name=f"drive profile {protocol.settings['profile']}")
            # charge drawn since the start, per ampere of peak current [A.h / A]
            drawn = np.concatenate([[0.0], np.cumsum(0.5 * (i_all[1:] + i_all[:-1]) * np.diff(t_all))]) / 3600.0
            self._currents[key] = (shape * pybamm.InputParameter(PEAK_CURRENT), t_all, drawn)
        return self._currents[key]

    def drive_seconds(self, protocol, peak_a: float, charge_ah: float) -> float:
        """How long the looped profile at ``peak_a`` takes to draw ``charge_ah`` net: the
        first time its running integral reaches it (regenerative stretches included)."""
        _, t_all, drawn = self._current(protocol)
        target = charge_ah / peak_a
        k = int(np.argmax(drawn >= target))
        if drawn[k] < target:
            return float(t_all[-1])
        if k == 0:
            return 0.0
        return float(np.interp(target, [drawn[k - 1], drawn[k]], [t_all[k - 1], t_all[k]]))

    def _charge(self, protocol, q_nom_ah):
        import pybamm

        upper = protocol.upper_voltage_v
        return (pybamm.step.current(-pybamm.InputParameter(CHARGE_CURRENT), termination=f"> {upper} V"),
                pybamm.step.voltage(upper, termination=f"{protocol.settings['cv_cutoff_c_rate'] * q_nom_ah} A"))

    def lead_in_steps(self, protocol, values, q_nom_ah, q_ref_ah):
        return self._charge(protocol, q_nom_ah)

    def cycle_steps(self, protocol, values, q_nom_ah, q_ref_ah):
        import pybamm

        peak_a = value(values, protocol, "peak_c_rate") * q_nom_ah
        seconds = self.drive_seconds(protocol, peak_a, value(values, protocol, "depth_of_discharge") * q_ref_ah)
        drive = pybamm.step.current(self._current(protocol)[0], duration=seconds,
                                    termination=f"< {protocol.lower_voltage_v} V")
        rest = rest_steps(protocol)
        return (drive, *rest, *self._charge(protocol, q_nom_ah), *rest)

    def inputs(self, protocol, values, q_nom_ah):
        return currents(protocol, values, q_nom_ah, {PEAK_CURRENT: "peak_c_rate", CHARGE_CURRENT: "charge_c_rate"})

    def describe(self, protocol):
        f, s = protocol.factors, protocol.settings
        return (f"drive profile `{s['profile']}` (mean {s['profile_mean_per_peak']:.3f} of its peak) at peak "
                f"{span(f['peak_c_rate'])} C, repeated from full for a depth of {span(f['depth_of_discharge'])} of the "
                f"latest RPT capacity (lower stop {protocol.lower_voltage_v} V), then CC-CV charge "
                f"{span(f['charge_c_rate'])} C to {protocol.upper_voltage_v} V, {s['rest_min']:g} min rests")


KIND = DriveCycle()
