"""Train baselines on factory data and predict real cells' state from their measurements.

``features`` defines what a model sees (the same code for simulated and measured data),
``models`` the estimators and their safe storage, ``train`` the split schemes and the
model directory, ``domain`` the out-of-distribution check, ``measured`` the readers of
real files into observations, ``predict`` the last step.
"""

from .predict import load_model, predict
from .train import TARGETS, train

__all__ = ["TARGETS", "load_model", "predict", "train"]
