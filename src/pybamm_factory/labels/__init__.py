"""Labels: SOH, RUL-to-80, LLI, LAM, plating, resistance, ICA/DVA and impedance features."""

from .capacity import EOL_SOH, EndOfLife, end_of_life
from .curves import curve_table, ica_dva_features
from .impedance import FIT_RESIDUAL_WARN, KK_THRESHOLD, fit_is_poor, spectrum_features
from .tables import label_rows

__all__ = ["EOL_SOH", "EndOfLife", "FIT_RESIDUAL_WARN", "KK_THRESHOLD", "curve_table", "end_of_life",
           "fit_is_poor", "ica_dva_features", "label_rows", "spectrum_features"]
