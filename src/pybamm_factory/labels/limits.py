"""Physics limits of the labels: what no real cell can show, in one place.

The simulation fails a sample whose labels break them (its worker), the quality gate
blocks a dataset whose ok rows break them, and augmentation scores generated cells
against the same numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SOH_MAX = 1.05  # an RPT capacity more than 5 % above the first is not ageing
# LLI / LAM in %: below -tolerance is non-physical. 1e-3 % is the solver's own accuracy on
# a volume fraction or a lithium inventory at the designs' rtol = atol = 1e-5; a fresh
# default cell's first RPT showed LAM_PE -5e-6 % (3 of 200 samples with the OCP spreads)
NEGATIVE_TOLERANCE = 1e-3
# plated-lithium loss below -0.01 % of the cell's capacity is non-physical; above it,
# solver noise (-0.0002 A.h = -0.004 % was seen at a fresh 25 degC RPT of the default
# design, rtol = atol = 1e-5)
PLATING_TOLERANCE_FRACTION = 1e-4
MONOTONE_TOLERANCE = 1e-9  # SOH may not rise, LLI may not fall, by more than this between RPTs
# LLI that falls between two RPTs by more than this (%-points) is lithium created, not
# reversibly plated lithium coming back (in the default 200-sample dataset LLI never falls
# between RPTs): a bad cycle jump once moved 8 % of the inventory from negative plated
# lithium into the particles
LLI_RECOVERY_TOLERANCE_PCT = 0.5


def physics_problems(labels: pd.DataFrame) -> list[str]:
    """Non-physical label values of one or more samples, as short sentences.

    The same rules flag a sample in its worker (its status becomes ``failed``) and
    block the gate when they appear in rows of ``ok`` samples.
    """
    if labels.empty:
        return []
    rules = [
        ((labels["soh"] <= 0) | (labels["soh"] > SOH_MAX), f"SOH outside (0, {SOH_MAX}]"),
        (labels["capacity_ah"] < 0, "negative capacity"),
        (labels["resistance_ohm"] < 0, "negative resistance"),
        *lithium_rules(labels),
    ]
    return [f"{text} at cycle {int(labels[mask].iloc[0]['cycle'])}" for mask, text in rules if mask.any()]


def lithium_rules(labels: pd.DataFrame) -> list[tuple[pd.Series, str]]:
    """(rows that break it, what it says) for each rule on the lithium books: negative LLI
    or LAM, negative plated-lithium loss, lithium created. Needs ``cycle``, ``capacity_ah``,
    ``lli_pct``, ``lam_ne_pct``, ``lam_pe_pct`` and ``plating_loss_ah``; the aging engine
    applies them to its RPTs as they come (a break after cycle jumps is retried exactly)."""
    return [
        ((labels[["lli_pct", "lam_ne_pct", "lam_pe_pct"]] < -NEGATIVE_TOLERANCE).any(axis=1), "negative LLI or LAM"),
        (labels["plating_loss_ah"] < -PLATING_TOLERANCE_FRACTION * labels["capacity_ah"].abs(),
         "negative plated-lithium loss"),
        (lithium_created(labels),
         f"LLI fell by more than {LLI_RECOVERY_TOLERANCE_PCT:g} %-points since the previous RPT (lithium created)"),
    ]


def lithium_created(labels: pd.DataFrame) -> pd.Series:
    """Rows whose LLI is more than ``LLI_RECOVERY_TOLERANCE_PCT`` below the sample's previous
    RPT's (one sample's rows, or several told apart by ``sample_id``)."""
    # positional, so a frame with repeated index labels (concatenated tables) is fine
    cycle = labels["cycle"].to_numpy()
    lli = labels["lli_pct"].to_numpy(dtype=float)
    if "sample_id" in labels.columns:
        sample = pd.factorize(labels["sample_id"])[0]
        order = np.lexsort((cycle, sample))
        same_sample = np.r_[False, sample[order][1:] == sample[order][:-1]]
    else:
        order = np.argsort(cycle, kind="stable")
        same_sample = np.r_[False, np.ones(len(order) - 1, dtype=bool)] if len(order) else np.zeros(0, bool)
    fall = np.r_[0.0, lli[order][:-1] - lli[order][1:]] if len(order) else np.zeros(0)
    created = np.zeros(len(labels), dtype=bool)
    created[order] = same_sample & (fall > LLI_RECOVERY_TOLERANCE_PCT)
    return pd.Series(created, index=labels.index)
