"""Quantities derived from a normalised cycler frame (see :mod:`.cycler`).

Per-cycle charge and discharge capacities, whether the file ends inside its last cycle, and
the constant-current parts of discharge steps. Charge is in A.h, integrated from current and
time by the trapezoid rule and never across a step boundary (so per-step capacity resets in an
export do not matter); current is positive on discharge, and both capacities are positive.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _integrate_ah(frame: pd.DataFrame) -> np.ndarray:
    """Charge moved between records, A.h (trapezoid on time; per record)."""
    t = frame["time_s"].to_numpy(float)
    i = frame["current_a"].to_numpy(float)
    dq = np.zeros(len(t))
    dq[1:] = 0.5 * (i[1:] + i[:-1]) * np.diff(t) / 3600.0
    return dq


def throughput_ah(frame: pd.DataFrame) -> np.ndarray:
    """Charge moved in and out up to each record, A.h (absolute current; a missing current
    or a clock that steps back adds nothing)."""
    moved = _integrate_ah(frame.assign(current_a=frame["current_a"].abs().fillna(0.0)))
    return np.cumsum(np.clip(moved, 0.0, None))


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
    capacity, temperature and the file's cycle index. Parts shorter than ``min_duration_s`` (pulses) are left out.
    Each segment's ``attrs["start_row"]`` is the position in ``frame`` of its first record."""
    frame = frame.reset_index(drop=True)  # labels are positions from here on
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
        segment = pd.DataFrame({"time_s": t, "current_a": i, "voltage_v": g["voltage_v"].to_numpy(float),
                                "discharged_ah": q, "temperature_c": g["temperature_c"].to_numpy(float),
                                "cycle_index": g["cycle_index"].to_numpy()})
        segment.attrs["start_row"] = int(g.index[0])
        segments.append(segment)
    return segments
