"""Labels: SOH, RUL-to-80, LLI, LAM, plating, resistance, ICA/DVA and impedance features."""

from .capacity import EOL_SOH, EndOfLife, end_of_life
from .curves import curve_table, ica_dva_features
from .impedance import KK_THRESHOLD, spectrum_features
from .tables import label_rows

__all__ = ["EOL_SOH", "EndOfLife", "KK_THRESHOLD", "curve_table", "end_of_life",
           "ica_dva_features", "label_rows", "spectrum_features"]
