"""RPT discharge curves on a fixed grid, incremental capacity and differential voltage.

Conventions (discharge): ``dqdv_ah_per_v`` = -dQ/dV and ``dvdq_v_per_ah`` = -dV/dQ,
both positive; Q is the charge discharged since the start of the RPT discharge.
The curve is resampled on a uniform capacity grid and smoothed with a
Savitzky-Golay filter (scipy.signal) before differentiation.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import find_peaks, savgol_filter

CURVE_POINTS = 101
_FINE_POINTS = 401
_SMOOTH_WINDOW = 31
_EDGE = 0.08  # ignore the first and last 8 % of capacity for ICA/DVA peaks


def _monotone(q, v):
    q = np.asarray(q, dtype=float)
    v = np.asarray(v, dtype=float)
    keep = np.concatenate([[True], np.diff(q) > 1e-12])
    return q[keep], v[keep]


def smoothed_curve(q, v):
    """Uniform fine capacity grid, smoothed voltage and -dV/dQ on it."""
    q, v = _monotone(q, v)
    grid = np.linspace(0.0, q[-1], _FINE_POINTS)
    v_grid = np.interp(grid, q, v)
    step = grid[1] - grid[0]
    v_smooth = savgol_filter(v_grid, _SMOOTH_WINDOW, 3)
    dvdq = -savgol_filter(v_grid, _SMOOTH_WINDOW, 3, deriv=1, delta=step)
    return grid, v_smooth, dvdq


def curve_table(q, v):
    """Rows of the curves table for one RPT: fraction, capacity, voltage, ICA, DVA."""
    grid, v_smooth, dvdq = smoothed_curve(q, v)
    q_total = grid[-1]
    fraction = np.linspace(0.0, 1.0, CURVE_POINTS)
    q_points = fraction * q_total
    q_raw, v_raw = _monotone(q, v)
    dvdq_points = np.interp(q_points, grid, dvdq)
    with np.errstate(divide="ignore"):
        dqdv_points = np.where(dvdq_points > 1e-9, 1.0 / np.maximum(dvdq_points, 1e-9), np.nan)
    return {
        "capacity_fraction": fraction,
        "discharged_capacity_ah": q_points,
        "voltage_v": np.interp(q_points, q_raw, v_raw),
        "dqdv_ah_per_v": dqdv_points,
        "dvdq_v_per_ah": dvdq_points,
    }


def interior_ica(q, v):
    """The smoothed curve and -dQ/dV where peaks are looked for: the fine capacity grid,
    smoothed voltage, -dV/dQ, the mask of the interior (away from the first and last 8 %
    of capacity) and -dQ/dV there (0 outside it)."""
    grid, v_smooth, dvdq = smoothed_curve(q, v)
    inner = (grid > _EDGE * grid[-1]) & (grid < (1 - _EDGE) * grid[-1])
    dqdv = np.where(dvdq > 1e-9, 1.0 / np.maximum(dvdq, 1e-9), 0.0)
    return grid, v_smooth, dvdq, inner, np.where(inner, dqdv, 0.0)


def ica_dva_features(q, v) -> dict:
    """Positions and heights of the two largest ICA peaks and the main interior DVA peak."""
    grid, v_smooth, dvdq, inner, dqdv = interior_ica(q, v)
    feats = {}
    peaks, props = find_peaks(dqdv, prominence=0.0)
    order = peaks[np.argsort(props["prominences"])[::-1]] if peaks.size else peaks
    for k in (1, 2):
        if order.size >= k:
            feats[f"ica_peak{k}_v"] = float(v_smooth[order[k - 1]])
            feats[f"ica_peak{k}_ah_per_v"] = float(dqdv[order[k - 1]])
        else:
            feats[f"ica_peak{k}_v"] = np.nan
            feats[f"ica_peak{k}_ah_per_v"] = np.nan
    dpeaks, dprops = find_peaks(np.where(inner, dvdq, 0.0), prominence=0.0)
    if dpeaks.size:
        top = dpeaks[np.argmax(dprops["prominences"])]
        feats["dva_peak_capacity_fraction"] = float(grid[top] / grid[-1])
        feats["dva_peak_v_per_ah"] = float(dvdq[top])
    else:
        feats["dva_peak_capacity_fraction"] = np.nan
        feats["dva_peak_v_per_ah"] = np.nan
    return feats
