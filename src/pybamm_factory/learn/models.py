"""The baseline estimators and how they are stored.

Three scikit-learn estimators, one floor and two the field expects:

* ``linear``: median imputation, standard scaling, ridge regression with its penalty
  chosen by internal cross-validation (``RidgeCV``) - the floor a useful model must beat;
* ``random_forest``: 300 trees, leaves of at least 3 rows;
* ``gradient_boosting``: histogram gradient boosting (handles missing features natively).

Models are stored with skops (``skops.io``), not pickle: loading a skops file builds only
the types it lists, and :func:`load_estimator` refuses a file that lists any type outside
scikit-learn and NumPy, so a model directory from elsewhere cannot run code when loaded.
That is the trust rule; a file that breaks it is refused with the types named.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import FactoryError

ESTIMATORS = ("linear", "random_forest", "gradient_boosting")
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "builtins.", "scipy.")


def make_estimator(name: str, seed: int):
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "linear":
        return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                             RidgeCV(alphas=(1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)))
    if name == "random_forest":
        return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                             RandomForestRegressor(n_estimators=300, min_samples_leaf=3, max_features=0.5,
                                                   random_state=seed, n_jobs=1))
    if name == "gradient_boosting":
        return HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, random_state=seed)
    raise ValueError(f"estimator '{name}' is not one of {', '.join(ESTIMATORS)}")


def save_estimator(estimator, path: Path) -> None:
    import skops.io as sio

    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(estimator, path)


class UntrustedModelError(FactoryError, ValueError):
    pass


def load_estimator(path: Path):
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise UntrustedModelError(f"{path}: refused to load: it needs types outside scikit-learn and NumPy "
                                  f"({', '.join(refused[:5])}); a model file from an untrusted place can run code")
    return sio.load(path, trusted=untrusted)
