"""EIS: simulated spectra at aging snapshots, features on simulated and real spectra."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pybamm_factory.labels import KK_THRESHOLD
from pybamm_factory.labels.impedance import (
    CIRCUIT,
    circuit_fit,
    circuit_initial_guess,
    geometric_features,
)
from pybamm_factory.readers import read_spectrum
from pybamm_factory.simulate import simulate_sample
from tests.physics_designs import row_for, tiny_design

SEI = "SEI solvent diffusivity [m2.s-1]"


@pytest.fixture(scope="module")
def sei_run():
    design = tiny_design(cycles=6, interval=3, eis=True)
    return simulate_sample(design, row_for(design, **{SEI: 1e-18}))


def test_spectra_positive_real_part_and_grid(sei_run):
    spectra = sei_run["spectra"]
    assert (spectra["z_real_ohm"] > 0).all()
    assert spectra.groupby("sweep_id")["frequency_hz"].apply(lambda f: (np.diff(f) < 0).all()).all()
    assert (spectra.groupby("sweep_id").size() == 31).all()
    # a capacitive arc: most points below the real axis
    assert (spectra["z_imag_ohm"] < 0).mean() > 0.9


def test_impedance_grows_with_sei(sei_run):
    feats = sei_run["impedance_features"].sort_values("cycle")
    labels = sei_run["labels"]
    assert labels["sei_loss_ah"].iloc[-1] > labels["sei_loss_ah"].iloc[0]
    fresh, aged = feats.iloc[0], feats.iloc[-1]
    assert aged["r_ct_ohm"] > 1.02 * fresh["r_ct_ohm"]
    spectra = sei_run["spectra"]
    arc = lambda c: spectra[spectra["cycle"] == c]["z_real_ohm"].max()  # noqa: E731
    assert arc(feats["cycle"].max()) > arc(0)


def test_features_finite_and_kk_consistent(sei_run):
    feats = sei_run["impedance_features"]
    for col in ("r_ohm_ohm", "r_ct_ohm", "f_peak_hz", "kk_residual"):
        assert np.isfinite(feats[col]).all(), col
    assert (feats["r_ohm_ohm"] > 0).all() and (feats["r_ct_ohm"] > 0).all()
    assert (feats["kk_residual"] < KK_THRESHOLD).all()


def _impedance_py_fit(f, z, geo):
    """The same circuit fitted by impedance.py itself (the reference for circuit_fit)."""
    from impedance.models.circuits import CustomCircuit

    order = np.argsort(f)[::-1]
    f, z = np.asarray(f)[order], np.asarray(z)[order]
    keep = -z.imag > 0
    f, z = f[keep], z[keep]
    circuit = CustomCircuit(CIRCUIT, initial_guess=list(circuit_initial_guess(f, z, geo)))
    circuit.fit(f, z, bounds=([0, 0, 0, 0.3, 0], [np.inf, np.inf, np.inf, 1.0, np.inf]), maxfev=4000)
    residual = np.sqrt(np.mean(np.abs(circuit.predict(f) - z) ** 2 / np.abs(z) ** 2))
    return circuit.parameters_[1], residual


def test_circuit_fit_agrees_with_impedance_py(realdata, sei_run):
    spectra = [g for _, g in read_spectrum(realdata / "lgm50lt_eis" / "LGM50LT_eis_25C.csv").groupby("sweep_id")]
    spectra += [g for _, g in sei_run["spectra"].groupby("sweep_id")][:2]
    assert len(spectra) == 11
    for g in spectra:
        f = g["frequency_hz"].to_numpy()
        z = g["z_real_ohm"].to_numpy() + 1j * g["z_imag_ohm"].to_numpy()
        geo = geometric_features(f, z)
        ours, residual = circuit_fit(f, z, geo)
        theirs, their_residual = _impedance_py_fit(f, z, geo)
        assert ours == pytest.approx(theirs, rel=0.02), g["sweep_id"].iloc[0]
        assert residual <= 1.02 * their_residual + 1e-4


def test_factor_on_an_aged_state_input_runs_through_eis():
    """A design may vary '<aged-state parameter> (factor)': the aging run applies it and the
    EIS model takes the aged value, so the spectra follow the scaled cell."""
    factor = "Negative electrode active material volume fraction (factor)"
    design = tiny_design(varied={factor: {"low": 0.8, "high": 1.1}}, eis=True, cycles=2, interval=2)
    spectra = {}
    for value in (0.8, 1.0):
        tables = simulate_sample(design, row_for(design, **{factor: value}))
        assert tables["solver_log"]["status"].iloc[0] == "ok", tables["solver_log"]["failure_reason"].iloc[0]
        spectra[value] = tables["impedance_features"]
    # less negative active material: less reaction area, a larger charge-transfer arc
    assert spectra[0.8]["r_ct_ohm"].mean() > spectra[1.0]["r_ct_ohm"].mean()


def test_impedance_features_with_circuit_columns_validate(sei_run):
    from pybamm_factory.dataset import validate_frame

    feats = sei_run["impedance_features"]
    assert set(feats["circuit_arcs"]) <= {1, 2}
    assert validate_frame(feats, "impedance_features") == []
    bad = feats.assign(circuit_arcs=3)
    assert any("circuit_arcs" in p for p in validate_frame(bad, "impedance_features"))


def test_quality_gate_warns_on_a_poor_circuit_fit():
    from pybamm_factory.quality.checks import check_circuit_fit

    feats = pd.DataFrame({"sweep_id": ["a", "b", "c"], "fit_residual": [0.005, 0.03, np.nan]})
    result = check_circuit_fit(feats)
    assert not result.blocking and result.count == 1 and result.examples == ["b"]


def test_r_ohm_moves_with_age_only_where_the_pores_fill():
    # SEI porosity change on: the SEI fills the negative electrode's pores, the electrolyte's
    # effective conductivity falls and the high-frequency intercept grows with the SEI; off,
    # the same SEI leaves the intercept where it was (the arc grows in both)
    r_ohm = {}
    for porosity in ("true", "false"):
        design = tiny_design(options={"SEI": "solvent-diffusion limited", "SEI porosity change": porosity},
                             cycles=6, interval=3, eis=True)
        run = simulate_sample(design, row_for(design, **{SEI: 3e-18}))
        assert run["solver_log"]["status"].iloc[0] == "ok"
        feats = run["impedance_features"].sort_values("cycle")
        assert feats["r_ct_ohm"].iloc[-1] > 1.3 * feats["r_ct_ohm"].iloc[0]
        r_ohm[porosity] = feats["r_ohm_ohm"].to_numpy()
    assert np.all(np.diff(r_ohm["true"]) > 0) and r_ohm["true"][-1] > 1.3 * r_ohm["true"][0]
    assert np.ptp(r_ohm["false"]) < 1e-3 * r_ohm["false"][0]
