"""The shape and make-up of a population's fade, for the card and the lifetime report.

Conventions (stated, not tuned):

- **Exponent b**: least-squares fit of SOH = 1 - a * N**b to a cell's RPTs after cycle 0
  up to and including the first RPT at or below SOH 0.8 (cells that never reach 0.8 are
  fitted over all their RPTs). b < 1: fade slows down (sub-linear, SEI-like); b > 1:
  fade speeds up. Real NMC/graphite cells fade with b about 1.2 (Baumhoefer et al. 2014).
- **Knee**: a two-line fit of SOH against cycle with a free breakpoint (Bacon-Watts
  style, minimum squared error over breakpoints at the RPTs) up to the first RPT at or
  below SOH 0.8; a cell has a knee when the line after the breakpoint falls at least
  KNEE_SLOPE_RATIO times as fast as the line before it and both lines span >= 3 RPTs.
- **Mode shares** at end of life (first RPT at or below 0.8, or the last RPT): LLI,
  LAM_ne and LAM_pe in %, and the plated-lithium loss as a share of the capacity lost.
- **Fade rate** for correlations: (1 - SOH at the last RPT) / its cycle, per cycle.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit
from scipy.stats import spearmanr

from .capacity import EOL_SOH

KNEE_SLOPE_RATIO = 2.0
MIN_POINTS_PER_LINE = 3


def _to_end_of_life(cycles: np.ndarray, soh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    below = np.flatnonzero(soh <= EOL_SOH)
    stop = below[0] + 1 if below.size else len(soh)
    return cycles[:stop], soh[:stop]


def power_law_exponent(cycles, soh) -> float:
    """b of SOH = 1 - a N^b over the RPTs after cycle 0 up to end of life (nan if < 3)."""
    cycles, soh = _to_end_of_life(np.asarray(cycles, float), np.asarray(soh, float))
    mask = cycles > 0
    x, y = cycles[mask], soh[mask]
    if len(x) < 3 or 1 - y[-1] <= 0:
        return math.nan
    try:
        (a, b), _ = curve_fit(lambda n, a, b: 1 - a * np.power(n, b), x, y,
                              p0=((1 - y[-1]) / x[-1], 1.0), bounds=([0, 0.05], [np.inf, 5.0]), maxfev=5000)
    except (RuntimeError, ValueError):
        return math.nan
    return float(b)


def knee(cycles, soh) -> tuple[bool, float]:
    """(has a knee, cycle of the breakpoint) by the two-line fit described above."""
    x, y = _to_end_of_life(np.asarray(cycles, float), np.asarray(soh, float))
    n = len(x)
    best = (math.inf, None, 0.0, 0.0)
    for k in range(MIN_POINTS_PER_LINE - 1, n - MIN_POINTS_PER_LINE + 1):
        left = np.polyfit(x[:k + 1], y[:k + 1], 1)
        right = np.polyfit(x[k:], y[k:], 1)
        sse = float(np.sum((np.polyval(left, x[:k + 1]) - y[:k + 1]) ** 2) + np.sum((np.polyval(right, x[k:]) - y[k:]) ** 2))
        if sse < best[0]:
            best = (sse, x[k], left[0], right[0])
    _, breakpoint, early, late = best
    if breakpoint is None or early >= 0:
        return False, math.nan
    return bool(late <= KNEE_SLOPE_RATIO * early), float(breakpoint)


def per_cell(labels: pd.DataFrame, manifest: pd.DataFrame, ok: set | None = None) -> pd.DataFrame:
    """One row per cell: exponent, knee, end-of-life cycle and modes, fade rate, conditions."""
    rows = []
    for sample_id, g in labels.sort_values("cycle").groupby("sample_id"):
        if ok is not None and sample_id not in ok:
            continue
        cycles, soh = g["cycle"].to_numpy(float), g["soh"].to_numpy(float)
        _, end_soh = _to_end_of_life(cycles, soh)
        at = g.iloc[len(end_soh) - 1]
        lost_ah = g["capacity_ah"].iloc[0] - at["capacity_ah"]
        has_knee, knee_cycle = knee(cycles, soh)
        rows.append({
            "sample_id": sample_id, "b": power_law_exponent(cycles, soh), "knee": has_knee, "knee_cycle": knee_cycle,
            "rul_source": g["rul_source"].iloc[0], "eol_cycle": g["eol_cycle"].iloc[0],
            "eol_efc": float(np.interp(g["eol_cycle"].iloc[0], cycles, g["equivalent_full_cycles"]))
            if np.isfinite(g["eol_cycle"].iloc[0]) else math.nan,
            "rpts_before_eol": int(np.sum(cycles < g["eol_cycle"].iloc[0])) if np.isfinite(g["eol_cycle"].iloc[0]) else len(g),
            "lli_pct": at["lli_pct"], "lam_ne_pct": at["lam_ne_pct"], "lam_pe_pct": at["lam_pe_pct"],
            "plating_share": at["plating_loss_ah"] / lost_ah if lost_ah > 0 else math.nan,
            "fade_rate": (1 - soh[-1]) / cycles[-1] if cycles[-1] > 0 else math.nan,
            "capacity0_ah": g["capacity_ah"].iloc[0],
        })
    cells = pd.DataFrame(rows)
    if cells.empty:
        return cells
    return cells.merge(manifest, on="sample_id", how="left")


def summary(cells: pd.DataFrame, features: pd.DataFrame | None = None, leak_parameter: str | None = None) -> dict:
    """Population figures: b quantiles, knee count, Spearman of fade with temperature and
    charge rate, mode shares, and (with ``leak_parameter``) how strongly the fresh cell's
    capacity and R_ct reveal that hidden parameter."""
    if cells.empty:
        return {}
    q = lambda s: [float(v) for v in s.dropna().quantile([0.1, 0.5, 0.9])]  # noqa: E731
    out = {
        "cells": len(cells),
        "b_p10_p50_p90": q(cells["b"]),
        "knees": int(cells["knee"].sum()),
        "eol_cycle_p10_p50_p90": q(cells["eol_cycle"]),
        "eol_efc_p10_p50_p90": q(cells["eol_efc"]),
        "rpts_before_eol_min": int(cells["rpts_before_eol"].min()),
        "lli_pct_median": float(cells["lli_pct"].median()),
        "lam_ne_pct_median": float(cells["lam_ne_pct"].median()),
        "lam_pe_pct_median": float(cells["lam_pe_pct"].median()),
        "plating_share_median": float(cells["plating_share"].median()),
        "plating_share_max": float(cells["plating_share"].max()),
    }
    for column in ("ambient_temperature_k", "charge_c_rate", "discharge_c_rate"):
        if column in cells and cells[column].nunique() > 1:
            out[f"spearman_fade_rate_vs_{column}"] = float(spearmanr(cells["fade_rate"], cells[column]).statistic)
    if leak_parameter and leak_parameter in cells:
        hidden = np.log10(cells[leak_parameter])
        out["leak_spearman_capacity0"] = float(spearmanr(cells["capacity0_ah"], hidden).statistic)
        if features is not None and len(features):
            first = features.sort_values("cycle").groupby("sample_id").head(len(features["soc"].unique()))
            mid = first[np.isclose(first["soc"], sorted(first["soc"].unique())[len(first["soc"].unique()) // 2])]
            r_ct = cells.merge(mid[["sample_id", "r_ct_ohm"]], on="sample_id")
            out["leak_spearman_r_ct0"] = float(spearmanr(r_ct["r_ct_ohm"], np.log10(r_ct[leak_parameter])).statistic)
    return out
