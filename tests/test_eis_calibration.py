"""The EIS model fitted to a measured fresh spectrum (LG M50LT, 9 SOCs): real solves, real file."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pybamm_factory.calibrate import calibrate_eis
from pybamm_factory.design import load_design


@pytest.mark.slow
def test_eis_fit_brings_the_spectrum_to_the_measured_cell(realdata, tmp_path):
    spectrum = realdata / "lgm50lt_eis" / "LGM50LT_eis_25C.csv"
    report = calibrate_eis(spectrum, tmp_path / "eis.yaml", base_design="smoke", temperature_c=25.0)
    assert report["rms_relative_residual_after"] < report["rms_relative_residual_before"] / 5
    table = pd.DataFrame(report["features"])
    assert len(table) == 9
    # the parameter set's spectrum is off by -48 % (R_ohm) and +600-900 % (R_ct); the fit
    # brings R_ohm within 5 % at every SOC and R_ct within 25 % at 8 of the 9 (docs/lgm50-calibration-study.md, EIS)
    assert (table["r_ohm_mohm_before_error"].abs() > 0.25).all()
    assert (table["r_ohm_mohm_after_error"].abs() < 0.05).all()
    assert (table["r_ct_mohm_after_error"].abs() < 0.25).sum() >= 8
    design = load_design(tmp_path / "eis.yaml")
    assert design.model_options["contact resistance"] == "true"
    assert design.fixed["Contact resistance [Ohm]"] == pytest.approx(report["fitted"]["Contact resistance [Ohm]"], rel=1e-3)
    assert (tmp_path / "eis_eis_calibration" / "eis_fit.png").stat().st_size > 0
    saved = json.loads((tmp_path / "eis_eis_calibration" / "eis_calibration_report.json").read_text())
    assert saved["at_bound_unidentified"] == report["at_bound_unidentified"]
