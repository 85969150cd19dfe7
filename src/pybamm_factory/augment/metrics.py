"""Fidelity of generated cells against held-out physics cells (the test split).

All metrics compare the same feature vectors (labels and impedance features over the
RPT grid), standardised with the training cells' statistics.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import wasserstein_distance
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.metrics import mean_absolute_error, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.preprocessing import StandardScaler


def classifier_auc(real: np.ndarray, fake: np.ndarray, seed: int = 0, repeats: int = 5) -> float:
    """Cross-validated AUC of a random-forest real-vs-generated classifier (0.5 ideal).

    Averaged over ``repeats`` shuffles of stratified 5-fold cross-validation: with a few
    dozen test cells a single split moves the AUC by several hundredths.
    """
    x = StandardScaler().fit_transform(np.vstack([real, fake]))
    y = np.r_[np.ones(len(real)), np.zeros(len(fake))]
    n_splits = min(5, int(min(len(real), len(fake))))
    aucs = []
    for r in range(repeats):
        folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed + r)
        model = RandomForestClassifier(n_estimators=200, min_samples_leaf=2, random_state=seed + r)
        scores = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
        aucs.append(roc_auc_score(y, scores))
    return float(np.mean(aucs))


def mmd_rbf(a: np.ndarray, b: np.ndarray) -> float:
    """Squared maximum mean discrepancy, RBF kernel with the median-distance bandwidth."""
    x = np.vstack([a, b])
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    bandwidth = np.median(d2[d2 > 0]) if np.any(d2 > 0) else 1.0
    k = np.exp(-d2 / bandwidth)
    n = len(a)
    return float(k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean())


def wasserstein_per_feature(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([wasserstein_distance(a[:, j], b[:, j]) for j in range(a.shape[1])])


def nearest_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each row of a, the Euclidean distance to its nearest row of b."""
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).min(axis=1)


def tstr_mae(train_x, train_y, test_x, test_y, seed: int = 0) -> float:
    """MAE on physics test cells of a random forest trained on (train_x, train_y)."""
    model = RandomForestRegressor(n_estimators=200, min_samples_leaf=2, random_state=seed)
    model.fit(train_x, train_y)
    return float(mean_absolute_error(test_y, model.predict(test_x)))


def physics_sanity(cells: dict[str, np.ndarray]) -> dict:
    """Shares of generated cells that keep the labels' physics limits (labels/limits.py)."""
    from ..labels.limits import MONOTONE_TOLERANCE, NEGATIVE_TOLERANCE, SOH_MAX

    soh, lli = cells["soh"], cells["lli_pct"]
    lam = np.concatenate([cells["lam_ne_pct"], cells["lam_pe_pct"]], axis=1)
    return {
        "soh_non_increasing": float(np.mean(np.all(np.diff(soh, axis=1) <= MONOTONE_TOLERANCE, axis=1))),
        "lli_non_decreasing": float(np.mean(np.all(np.diff(lli, axis=1) >= -MONOTONE_TOLERANCE, axis=1))),
        "values_in_range": float(np.mean(np.all((soh > 0) & (soh <= SOH_MAX), axis=1)
                                         & np.all(lli >= -NEGATIVE_TOLERANCE, axis=1) & np.all(lam >= -NEGATIVE_TOLERANCE, axis=1)
                                         & np.all(cells["resistance_ohm"] > 0, axis=1))),
    }
