"""Impedance features for simulated and measured spectra.

Sign convention: Z = Z' + jZ'' (ohm); a capacitive arc has Z'' < 0, so Nyquist plots
show -Z'' upwards. Features:

* ``r_ohm_ohm`` - high-frequency real-axis intercept: Z' where Z'' crosses zero at the
  high-frequency end (interpolated); if the spectrum never crosses (no inductive
  tail), Z' at the highest frequency.
* ``r_ct_ohm`` - charge-transfer arc, geometric: Z' at the valley between the arc and
  the diffusion tail (the lowest-frequency local minimum of -Z'') minus ``r_ohm_ohm``.
  It needs no model, so it means the same for every spectrum, simulated or measured.
* ``r_ct_fit_ohm`` - R1 of an equivalent-circuit fit R0-p(R1,CPE1)-W1 (impedance.py's
  element definitions and bounds), started from the geometric estimates, on the
  capacitive points (NaN if it fails).
* ``f_peak_hz`` - frequency of the arc apex (largest -Z'' above the valley frequency).
* ``warburg_slope`` - slope d(-Z'')/dZ' of the low-frequency tail below the valley
  (1 for an ideal 45 degree Warburg line); NaN with fewer than three tail points.
* ``fit_residual`` - RMS of |Z_fit - Z| / |Z| of that circuit fit.
* ``kk_residual`` - RMS of the normalised real and imaginary residuals of a linear
  Kramers-Kronig test (lin-KK, Schoenleber et al. 2014; see :func:`lin_kk`).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

KK_THRESHOLD = 0.01  # 1 % RMS normalised residual
CIRCUIT = "R0-p(R1,CPE1)-W1"


def _sorted_desc(frequency_hz, z):
    frequency_hz = np.asarray(frequency_hz, dtype=float)
    z = np.asarray(z, dtype=complex)
    order = np.argsort(frequency_hz)[::-1]
    return frequency_hz[order], z[order]


def ohmic_resistance(frequency_hz, z) -> float:
    f, z = _sorted_desc(frequency_hz, z)
    mz = -z.imag
    crossings = np.flatnonzero((mz[:-1] <= 0) & (mz[1:] > 0))
    if crossings.size:
        i = crossings[0]
        w = mz[i + 1] / (mz[i + 1] - mz[i]) if mz[i + 1] != mz[i] else 0.0
        return float(z.real[i + 1] + w * (z.real[i] - z.real[i + 1]))
    return float(z.real[0])


def geometric_features(frequency_hz, z) -> dict:
    """Arc apex, valley and tail from the shape of the Nyquist curve alone."""
    f, z = _sorted_desc(frequency_hz, z)
    mz = -z.imag
    r_ohm = ohmic_resistance(f, z)
    capacitive = np.flatnonzero(mz > 0)
    start = capacitive[0] if capacitive.size else 0
    # valley: lowest-frequency local minimum of -Z'' after which the tail keeps rising
    valley = len(f) - 1
    for i in range(len(f) - 2, start, -1):
        if mz[i] <= mz[i + 1] and mz[i] <= mz[i - 1]:
            valley = i
            break
    arc = slice(start, max(valley, start + 1) + 1)
    apex = start + int(np.argmax(mz[arc]))
    tail = slice(valley, len(f))
    slope = math.nan
    if len(f) - valley >= 3:
        slope = float(np.polyfit(z.real[tail], mz[tail], 1)[0])
    return {
        "r_ohm_ohm": r_ohm,
        "r_ct_geometric_ohm": float(z.real[valley] - r_ohm),
        "f_peak_hz": float(f[apex]),
        "warburg_slope": slope,
        "valley_index": valley,
    }


def circuit_impedance(frequency_hz, r0, r1, q, alpha, sigma):
    """Z of R0-p(R1,CPE1)-W1, with impedance.py's element definitions.

    CPE: Z = 1 / (Q (jw)^alpha); semi-infinite Warburg W: Z = sigma (1 - j) / sqrt(w).
    """
    w = 2 * np.pi * np.asarray(frequency_hz, dtype=float)
    z_cpe = 1.0 / (q * (1j * w) ** alpha)
    return r0 + 1.0 / (1.0 / r1 + 1.0 / z_cpe) + sigma * (1 - 1j) / np.sqrt(w)


def circuit_fit(frequency_hz, z, geo: dict):
    """Fit R0-p(R1,CPE1)-W1 to the capacitive points; returns (R1, relative RMS residual).

    Same circuit, bounds and unweighted complex least squares as impedance.py's
    ``CustomCircuit.fit``, but the circuit is evaluated as one NumPy expression: the
    library parses its circuit string on every evaluation (about 60 ms per spectrum,
    a sixth of a sample's time). ``tests/test_eis.py`` checks the two agree.
    """
    from scipy.optimize import least_squares

    f, z = _sorted_desc(frequency_hz, z)
    keep = -z.imag > 0
    f, z = f[keep], z[keep]
    if len(f) < 6:
        return math.nan, math.nan
    x0 = circuit_initial_guess(f, z, geo)

    def residual(x):
        d = circuit_impedance(f, *x) - z
        return np.concatenate([d.real, d.imag])

    lower, upper = [0, 0, 0, 0.3, 0], [np.inf, np.inf, np.inf, 1.0, np.inf]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            fit = least_squares(residual, np.clip(x0, 1e-300, None), bounds=(lower, upper), x_scale=np.abs(x0),
                                method="trf", max_nfev=4000)
        except (ValueError, np.linalg.LinAlgError):
            return math.nan, math.nan
    if not fit.success or not np.all(np.isfinite(fit.x)):
        return math.nan, math.nan
    z_fit = circuit_impedance(f, *fit.x)
    residual_rms = float(np.sqrt(np.mean(np.abs(z_fit - z) ** 2 / np.abs(z) ** 2)))
    return float(fit.x[1]), residual_rms


def circuit_initial_guess(f, z, geo: dict) -> np.ndarray:
    """R0, R1, Q, alpha, sigma from the geometric features (f, z: capacitive points)."""
    r0 = max(geo["r_ohm_ohm"], 1e-6)
    r1 = max(geo["r_ct_geometric_ohm"], 1e-6)
    q = 1.0 / (2 * math.pi * geo["f_peak_hz"] * r1)
    tail = abs(z[-1].real - r0 - r1) or r1
    sigma = tail * math.sqrt(2 * math.pi * f[-1])
    return np.array([r0, r1, q, 0.9, max(sigma, 1e-9)])


def lin_kk(frequency_hz, z, elements_per_decade: float = 3.0):
    """Linear Kramers-Kronig test after Schoenleber et al., Electrochim. Acta 131 (2014) 20.

    Fits R0, M series RC elements with fixed log-spaced time constants, a series
    inductance and a series capacitance by weighted linear least squares (weights
    1/|Z|). Every such element is KK-consistent, so what the fit cannot follow is
    KK-inconsistent (drift, non-linearity, non-stationarity). M is fixed at three
    elements per decade of the sweep: the paper's mu criterion stops at a handful of
    elements on smooth, noise-free simulated spectra and then reports misfit, not
    inconsistency. impedance.py's linKK implements the mu variant but fails under
    NumPy 2 (it evaluates reprs that now read 'np.float64(...)'), hence this function.
    Returns (Z_fit, normalised real residuals, normalised imaginary residuals).
    """
    f, z = _sorted_desc(frequency_hz, z)
    w = 2 * np.pi * f
    decades = math.log10(f.max() / f.min())
    m = int(min(max(3, math.ceil(elements_per_decade * decades)), max(3, len(f) - 3)))
    tau = np.logspace(np.log10(1 / w.max()), np.log10(1 / w.min()), m)
    basis = np.column_stack([np.ones_like(w), 1.0 / (1.0 + 1j * np.outer(w, tau)), 1j * w, -1j / w])
    weight = 1.0 / np.abs(z)
    a = np.vstack([basis.real * weight[:, None], basis.imag * weight[:, None]])
    b = np.concatenate([z.real * weight, z.imag * weight])
    coef, *_ = np.linalg.lstsq(a, b, rcond=None)
    z_fit = basis @ coef
    return z_fit, (z.real - z_fit.real) / np.abs(z), (z.imag - z_fit.imag) / np.abs(z)


def kk_residual(frequency_hz, z) -> float:
    """RMS of the normalised lin-KK residuals (real and imaginary together)."""
    _, res_real, res_imag = lin_kk(frequency_hz, z)
    return float(np.sqrt(np.mean(res_real ** 2 + res_imag ** 2)))


def spectrum_features(frequency_hz, z_real_ohm, z_imag_ohm) -> dict:
    """All impedance features of one sweep (see module docstring)."""
    z = np.asarray(z_real_ohm, dtype=float) + 1j * np.asarray(z_imag_ohm, dtype=float)
    geo = geometric_features(frequency_hz, z)
    r_fit, residual = circuit_fit(frequency_hz, z, geo)
    return {
        "r_ohm_ohm": geo["r_ohm_ohm"],
        "r_ct_ohm": geo["r_ct_geometric_ohm"],
        "r_ct_fit_ohm": r_fit,
        "f_peak_hz": geo["f_peak_hz"],
        "warburg_slope": geo["warburg_slope"],
        "fit_residual": residual,
        "kk_residual": kk_residual(frequency_hz, z),
    }
