"""Augmentation: conditional generators (CVAE, WGAN-GP) trained on a finished physics
dataset, with their fidelity scored against the test split (docs/augmentation.md).

- :mod:`.pipeline`: ``augment(dir, ...)`` trains, generates, writes and scores; its
  ``card_section(dir)`` is the card's section (``pybamm_factory.api.augment`` runs the
  pipeline and re-renders the card).
- :mod:`.models`: the generators; :mod:`.baselines`: the noise and copy floors;
  :mod:`.data`: the cell space; :mod:`.metrics`: fidelity.
"""

from .baselines import CopyGenerator, NoiseGenerator
from .pipeline import GENERATED_TABLES, AugmentError, augment, card_section

__all__ = ["AugmentError", "CopyGenerator", "GENERATED_TABLES", "NoiseGenerator", "augment", "card_section"]
