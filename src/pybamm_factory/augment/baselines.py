"""Two deliberately poor generators, the floor a trained generator must beat.

Both follow scikit-learn's habit: ``fit(x, y)`` learns from conditions ``x`` and outputs
``y`` (in the standardised space of :class:`~.data.CellSpace`) and returns the
generator; ``sample(x, seed)`` gives one output row per condition row.
"""

from __future__ import annotations

import numpy as np


class NoiseGenerator:
    """Independent standard-normal outputs in the standardised space: knows nothing."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> NoiseGenerator:
        self.n_outputs_ = np.asarray(y).shape[1]
        return self

    def sample(self, x: np.ndarray, seed: int) -> np.ndarray:
        return np.random.default_rng(seed).standard_normal((len(x), self.n_outputs_))


class CopyGenerator:
    """Random training cells returned unchanged: pure memorisation."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> CopyGenerator:
        self.y_ = np.asarray(y)
        return self

    def sample(self, x: np.ndarray, seed: int) -> np.ndarray:
        return self.y_[np.random.default_rng(seed).integers(0, len(self.y_), len(x))]
