"""Calibration: cycler readers, parameter fits, calibrated designs."""
