"""Capacity labels from reference tests: SOH, resistance, end of life and RUL-to-80."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit

EOL_SOH = 0.8
# A projection is trusted only if the power law fits the observed fade closely, the
# cell has faded by at least MIN_FADE, and the end of life lies within
# MAX_EXTRAPOLATION times the last observed cycle. Otherwise the RUL is censored.
MAX_FIT_RMSE = 0.005
MIN_FADE = 0.005
MAX_EXTRAPOLATION = 5.0


@dataclass(frozen=True)
class EndOfLife:
    eol_cycle: float
    source: str  # observed | projected | censored
    fit_rmse: float


def _power_law(cycle, a, b):
    return 1.0 - a * np.power(cycle, b)


def end_of_life(cycles, soh, threshold: float = EOL_SOH) -> EndOfLife:
    """When SOH reaches ``threshold``: observed (interpolated), projected or censored.

    Projection fits SOH = 1 - a * cycle**b (a > 0, 0.2 <= b <= 2) to the RPTs after
    cycle 0 by least squares; its RMSE is returned with it.
    """
    cycles = np.asarray(cycles, dtype=float)
    soh = np.asarray(soh, dtype=float)
    below = np.flatnonzero(soh <= threshold)
    if below.size:
        i = below[0]
        if i == 0:
            return EndOfLife(float(cycles[0]), "observed", math.nan)
        c0, c1, s0, s1 = cycles[i - 1], cycles[i], soh[i - 1], soh[i]
        eol = c0 + (s0 - threshold) * (c1 - c0) / (s0 - s1)
        return EndOfLife(float(eol), "observed", math.nan)
    mask = cycles > 0
    if mask.sum() < 3 or 1 - soh[mask][-1] < MIN_FADE:
        return EndOfLife(math.nan, "censored", math.nan)
    x, y = cycles[mask], soh[mask]
    try:
        b0 = 0.5
        a0 = max((1 - y[-1]) / x[-1] ** b0, 1e-12)
        (a, b), _ = curve_fit(_power_law, x, y, p0=(a0, b0), bounds=([0, 0.2], [np.inf, 2.0]), maxfev=2000)
    except (RuntimeError, ValueError):
        return EndOfLife(math.nan, "censored", math.nan)
    rmse = float(np.sqrt(np.mean((_power_law(x, a, b) - y) ** 2)))
    if a <= 0:
        return EndOfLife(math.nan, "censored", rmse)
    eol = ((1 - threshold) / a) ** (1 / b)
    if rmse > MAX_FIT_RMSE or not math.isfinite(eol) or eol > MAX_EXTRAPOLATION * x[-1]:
        return EndOfLife(math.nan, "censored", rmse)
    return EndOfLife(float(eol), "projected", rmse)


def rpt_capacity_ah(discharged_ah) -> float:
    return float(np.asarray(discharged_ah)[-1])


def dc_resistance_ohm(rest_voltage_v: float, first_voltage_v: float, current_a: float) -> float:
    """Instantaneous DC resistance at the start of the RPT discharge (100 % SOC).

    (rested voltage - first voltage under load) / current: ohmic, SEI-film and
    reaction resistance, as the aging model has no double-layer capacitance.
    """
    return float((rest_voltage_v - first_voltage_v) / current_a)
