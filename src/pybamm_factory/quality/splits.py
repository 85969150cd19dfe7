"""Leakage-safe splits: every cell design lies wholly in one split.

Modes:

* random (default): cell designs are shuffled with the seed and cut by the fractions;
* stratified (``stratify: COLUMN`` or ``COLUMN:BINS``): the same within bins of a
  manifest column (taken per cell design from its first sample);
* extrapolation (``holdout: {column: C, side: high|low, fraction: F}``): samples in
  the top (or bottom) fraction F of column C form the test split; the other samples
  of their cell designs are excluded, so no cell design is seen on both sides.

A design with rare failures (``failure_class`` in the manifest) is stratified by that
class unless it asks for another stratum or a holdout, so every split sees each class
in proportion (a class with one cell design lands in train).

Samples whose solver status is not ``ok`` are ``excluded``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..design.spec import SplitSettings

SPLITS = ("train", "validation", "test")


def _cut(groups: list[str], fractions: tuple[float, float, float], rng) -> dict[str, str]:
    order = list(groups)
    rng.shuffle(order)
    n = len(order)
    n_test = int(round(fractions[2] * n))
    n_val = int(round(fractions[1] * n))
    if n >= 2 and fractions[2] > 0 and n_test == 0:
        n_test = 1
    n_train = n - n_test - n_val
    labels = ["train"] * n_train + ["validation"] * n_val + ["test"] * n_test
    return dict(zip(order, labels))


def _stratum(manifest: pd.DataFrame, spec: str) -> pd.Series:
    column, _, bins = spec.partition(":")
    if column not in manifest.columns:
        raise ValueError(f"splits.stratify: '{column}' is not a manifest column; allowed: {', '.join(manifest.columns)}")
    first = manifest.groupby("cell_design_id", sort=False)[column].first()
    if pd.api.types.is_numeric_dtype(first) and first.nunique() > int(bins or 3):
        return pd.Series(pd.qcut(first.rank(method="first"), int(bins or 3), labels=False), index=first.index)
    return first


def make_splits(manifest: pd.DataFrame, solver_log: pd.DataFrame, settings: SplitSettings,
                seed: int) -> pd.DataFrame:
    """``splits`` table: sample_id, cell_design_id, split."""
    rng = np.random.default_rng(seed + 17)
    fractions = (settings.train, settings.val, settings.test)
    groups = list(dict.fromkeys(manifest["cell_design_id"]))
    split = pd.Series("train", index=manifest.index, dtype=object)
    if settings.holdout:
        column = settings.holdout["column"]
        fraction = float(settings.holdout.get("fraction", 0.2))
        values = manifest[column].astype(float)
        if settings.holdout.get("side", "high") == "high":
            in_region = values >= values.quantile(1 - fraction)
        else:
            in_region = values <= values.quantile(fraction)
        touched = set(manifest.loc[in_region, "cell_design_id"])
        rest = [g for g in groups if g not in touched]
        frac_rest = (settings.train, settings.val, 0.0)
        total = sum(frac_rest) or 1.0
        assign = _cut(rest, tuple(f / total for f in frac_rest), rng)
        split = manifest["cell_design_id"].map(assign).fillna("excluded")
        split[in_region] = "test"
    elif settings.stratify or ("failure_class" in manifest and manifest["failure_class"].nunique() > 1):
        strata = _stratum(manifest, settings.stratify or "failure_class")
        assign = {}
        for _, members in strata.groupby(strata, sort=True):
            assign.update(_cut([g for g in groups if g in set(members.index)], fractions, rng))
        split = manifest["cell_design_id"].map(assign)
    else:
        split = manifest["cell_design_id"].map(_cut(groups, fractions, rng))
    status = manifest["sample_id"].map(dict(zip(solver_log["sample_id"], solver_log["status"])))
    split = split.where(status == "ok", "excluded")
    return pd.DataFrame({
        "sample_id": manifest["sample_id"].values,
        "cell_design_id": manifest["cell_design_id"].values,
        "split": split.astype(str).values,
    })
