"""Is an input like the training data? Two checks, both stated in every prediction.

* **per feature**: each feature must lie within the training range [p0.5, p99.5] widened
  by 10 % of that range on each side, and must be present if the training rows had it;
* **jointly**: the distance from the input to its nearest training row, in features
  scaled by their training interquartile range, must not exceed the 99th percentile of
  the same distance among training rows (each to its nearest other row).

A prediction outside either is still written, with ``in_domain`` false and the reason
(``domain_note``), so a user sees an extrapolation instead of receiving it silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

MAX_REFERENCE_ROWS = 4000
WIDEN = 0.10


@dataclass
class Domain:
    columns: list[str]
    low: np.ndarray
    high: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    required: np.ndarray        # bool: feature present in >= 95 % of training rows
    reference: np.ndarray       # scaled training rows (NaN -> 0), at most MAX_REFERENCE_ROWS
    nn_threshold: float
    target_range: tuple[float, float]

    @classmethod
    def fit(cls, features: pd.DataFrame, target_values=None, seed: int = 0) -> Domain:
        x = features.to_numpy(float)
        p_lo, p_hi = np.nanpercentile(x, 0.5, axis=0), np.nanpercentile(x, 99.5, axis=0)
        span = np.where(p_hi > p_lo, p_hi - p_lo, np.abs(p_hi) * 0.01 + 1e-12)
        q1, med, q3 = np.nanpercentile(x, [25, 50, 75], axis=0)
        scale = np.where(q3 > q1, q3 - q1, span)
        z = np.nan_to_num((x - med) / scale)
        rng = np.random.default_rng(seed)
        if len(z) > MAX_REFERENCE_ROWS:
            z = z[np.sort(rng.choice(len(z), MAX_REFERENCE_ROWS, replace=False))]
        threshold = np.inf
        if len(z) >= 3:
            from sklearn.neighbors import NearestNeighbors

            dist, _ = NearestNeighbors(n_neighbors=2).fit(z).kneighbors(z)
            threshold = float(np.percentile(dist[:, 1], 99))
        t = np.asarray(target_values, float) if target_values is not None else np.array([np.nan])
        return cls(list(features.columns), p_lo - WIDEN * span, p_hi + WIDEN * span, med, scale,
                   np.isfinite(x).mean(axis=0) >= 0.95, z, threshold, (float(np.nanmin(t)), float(np.nanmax(t))))

    def check(self, features: pd.DataFrame) -> pd.DataFrame:
        """``in_domain`` and ``domain_note`` per row."""
        x = features[self.columns].to_numpy(float)
        notes = [[] for _ in range(len(x))]
        for j, col in enumerate(self.columns):
            for i in np.flatnonzero(~np.isfinite(x[:, j]) & self.required[j]):
                notes[i].append(f"{col} missing")
            for i in np.flatnonzero(np.isfinite(x[:, j]) & ((x[:, j] < self.low[j]) | (x[:, j] > self.high[j]))):
                notes[i].append(f"{col}={x[i, j]:.4g} outside [{self.low[j]:.4g}, {self.high[j]:.4g}]")
        if np.isfinite(self.nn_threshold) and len(x):
            from sklearn.neighbors import NearestNeighbors

            z = np.nan_to_num((x - self.center) / self.scale)
            dist, _ = NearestNeighbors(n_neighbors=1).fit(self.reference).kneighbors(z)
            for i in np.flatnonzero(dist[:, 0] > self.nn_threshold):
                notes[i].append(f"far from every training row (distance {dist[i, 0]:.3g} > {self.nn_threshold:.3g})")
        return pd.DataFrame({"in_domain": [not n for n in notes], "domain_note": ["; ".join(n) for n in notes]},
                            index=features.index)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        np.save(directory / "domain_reference.npy", self.reference.astype(np.float32), allow_pickle=False)
        (directory / "domain.json").write_text(json.dumps({
            "columns": self.columns, "low": self.low.tolist(), "high": self.high.tolist(),
            "center": self.center.tolist(), "scale": self.scale.tolist(), "required": self.required.tolist(),
            "nn_threshold": self.nn_threshold, "target_range": list(self.target_range)}, indent=1) + "\n")

    @classmethod
    def load(cls, directory: Path) -> Domain:
        directory = Path(directory)
        d = json.loads((directory / "domain.json").read_text())
        reference = np.load(directory / "domain_reference.npy", allow_pickle=False).astype(float)
        return cls(d["columns"], np.array(d["low"], float), np.array(d["high"], float), np.array(d["center"], float),
                   np.array(d["scale"], float), np.array(d["required"], bool), reference, float(d["nn_threshold"]),
                   tuple(d["target_range"]))
