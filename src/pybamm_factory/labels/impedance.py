"""Impedance features for simulated and measured spectra.

Sign convention: Z = Z' + jZ'' (ohm); a capacitive arc has Z'' < 0, so Nyquist plots
show -Z'' upwards. Features:

* ``r_ohm_ohm`` - high-frequency real-axis intercept: Z' where Z'' crosses zero at the
  high-frequency end (interpolated); if the spectrum never crosses (no inductive
  tail), Z' at the highest frequency.
* ``r_ct_ohm`` - charge-transfer arc, geometric: Z' at the valley between the arc and
  the diffusion tail (the lowest-frequency local minimum of -Z'') minus ``r_ohm_ohm``.
  It needs no model, so it means the same for every spectrum, simulated or measured.
* ``circuit_arcs`` - 1 or 2: which equivalent circuit the spectrum is described by,
  R0-p(R1,CPE1)-W1 (one arc) or R0-p(R1,CPE1)-p(R2,CPE2)-W1 (two arcs), chosen by BIC
  (rule below); 0 when neither fit converged.
* ``r0_fit_ohm`` - R0 of the chosen fit.
* ``r_ct_fit_ohm`` - R of the charge-transfer arc of the chosen fit: R1 of the one-arc
  circuit; with two arcs, R of the LOWER-frequency arc (characteristic frequency
  f = 1 / (2 pi (R Q)^(1/alpha)); the charge-transfer arc of a Li-ion cell lies below the
  SEI / contact-film arc).
* ``r_hf_arc_fit_ohm`` - R of the higher-frequency arc (SEI / contact film) of a chosen
  two-arc fit; NaN when one arc is chosen.
* ``f_peak_hz`` - apex frequency of the charge-transfer arc. One arc: the geometric apex
  (largest -Z'' above the valley frequency). Two arcs: the characteristic frequency of the
  lower-frequency (charge-transfer) arc of the fit, where that arc's -Z'' peaks; the
  geometric apex would be whichever arc is taller, often the high-frequency one.
* ``warburg_slope`` - slope d(-Z'')/dZ' of the low-frequency tail below the valley
  (1 for an ideal 45 degree Warburg line); NaN with fewer than three tail points.
* ``fit_residual`` - RMS over the fitted points of |Z_fit - Z| / |Z| of the chosen fit.
  Above ``FIT_RESIDUAL_WARN`` (2 %) the circuit does not describe the spectrum and its
  fitted values should not be trusted: callers compare and warn (``fit_is_poor``).
* ``kk_residual`` - RMS of the normalised real and imaginary residuals of a linear
  Kramers-Kronig test (lin-KK, Schoenleber et al. 2014; see :func:`lin_kk`).

Circuit fits (:func:`fit_arcs`). Both circuits use impedance.py's element definitions
(CPE Z = 1 / (Q (jw)^alpha), semi-infinite Warburg Z = sigma (1 - j) / sqrt(w)) and bounds
(all values >= 0, alpha in [0.3, 1]), and are fitted by ``scipy.optimize.least_squares``
(TRF, analytic Jacobian) to the same points: the capacitive ones (Z'' < 0) down to one
decade below the geometric valley frequency. Deeper in the tail diffusion is of finite
length and bends towards a vertical line, which the semi-infinite Warburg cannot follow
(on the LG M50LT spectra, measured to 0.25 mHz, the one-arc fit over all capacitive points
missed by 4-12 % RMS and put R0 near zero at two SOCs; on this band it misses by under
1 %). The residuals are weighted by 1/|Z| (modulus weighting), so each fit minimises
exactly the relative residual it is judged by. The one-arc fit starts from the geometric
estimates; the two-arc fit from a split of the geometric arc (30 % of its width into a
high-frequency arc, 70 % into a low-frequency one, with characteristic frequencies a
decade above and below the geometric apex). Two starts (30/70 and 70/30, keeping the
better) came within 1 % of the best RSS of 112 starts on 200 of 202 real spectra of
../shared/realdata (2 % on the other two); the 30/70 start alone chose the same circuit
as both on 149 of 151 spectra, at half the cost (see :func:`two_arc_starts`). A
Levenberg-Marquardt fit on log / logit parameters was tried for speed: faster on real
spectra, 4x slower and worse on simulated ones, so TRF stays. Each fit stops after 100 evaluations (tolerances
1e-6) and keeps its best point: fits still running then slide towards a degenerate arc
(R -> 0 or alpha at a bound); a cap of 1,000 and tolerances of 1e-8 instead chose the same
circuits on 346 real spectra and moved no feature by more than 0.15 %. ``circuit_fit`` is
the unweighted, full-band one-arc fit, kept because a test checks this module's fitting
code against impedance.py's own ``CustomCircuit.fit`` with it.

Choice of circuit: the Bayesian information criterion of a Gaussian likelihood on the
relative complex residuals, BIC = n ln(RSS / n + FLOOR^2) + k ln n, with n = 2 x the
number of fitted points (real and imaginary parts), RSS the sum of squared relative
residuals, k = 5 (one arc) or 8 (two arcs); the lower BIC wins. FLOOR = ``RESIDUAL_FLOOR``
(0.1 %, about an impedance analyser's accuracy) keeps noise-free spectra from choosing a
model by rounding: below it two fits count as equally good, and the simpler one wins. A
two-arc fit is only eligible when both arcs' characteristic frequencies lie inside the
fitted frequency band (an arc outside it is not resolved by the data, only an extra
degree of freedom).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

KK_THRESHOLD = 0.01  # 1 % RMS normalised residual
FIT_RESIDUAL_WARN = 0.02  # 2 % RMS relative residual: above it a circuit fit is not to be trusted
RESIDUAL_FLOOR = 1e-3  # 0.1 %: relative residuals below it do not tell circuits apart (BIC)
CIRCUIT = "R0-p(R1,CPE1)-W1"
CIRCUIT_TWO_ARCS = "R0-p(R1,CPE1)-p(R2,CPE2)-W1"
TAIL_DECADES = 1.0  # circuit fits keep the tail down to this many decades below the valley


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
    a sixth of a sample's time). ``tests/test_eis.py`` checks the two agree, and so checks
    the fitting code (:func:`_least_squares_fit`) that :func:`fit_arcs` uses with modulus
    weights on a narrower band.
    """
    f, z = _sorted_desc(frequency_hz, z)
    keep = -z.imag > 0
    f, z = f[keep], z[keep]
    if len(f) < 6:
        return math.nan, math.nan
    fit = _least_squares_fit(f, z, circuit_initial_guess(f, z, geo), weighted=False, max_nfev=4000, tol=1e-8)
    if fit is None:
        return math.nan, math.nan
    return float(fit.x[1]), fit.residual


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


def two_arc_impedance(frequency_hz, r0, r1, q1, alpha1, r2, q2, alpha2, sigma):
    """Z of R0-p(R1,CPE1)-p(R2,CPE2)-W1 (element definitions as :func:`circuit_impedance`)."""
    return _arcs_impedance(2 * np.pi * np.asarray(frequency_hz, dtype=float),
                           np.array([r0, r1, q1, alpha1, r2, q2, alpha2, sigma], dtype=float))


def arc_frequency_hz(r, q, alpha) -> float:
    """Characteristic frequency of R || CPE, 1 / (2 pi (R Q)^(1/alpha)): where its -Z'' peaks."""
    with np.errstate(all="ignore"):
        return float(1.0 / (2 * math.pi * (r * q) ** (1.0 / alpha)))


def fit_is_poor(features: dict) -> bool:
    """True when the chosen circuit fit misses the spectrum by more than FIT_RESIDUAL_WARN
    (or no fit converged): its r0/r_ct/f_peak values describe the circuit, not the cell."""
    residual = features.get("fit_residual", math.nan)
    return not (residual <= FIT_RESIDUAL_WARN)


def _arcs_impedance(w, x):
    """Z of R0 - m x p(R,CPE) - W for x = [R0, (R, Q, alpha) x m, sigma] at angular frequencies w."""
    jw = 1j * w
    z = x[0] + x[-1] * (1 - 1j) / np.sqrt(w)
    for i in range(1, len(x) - 1, 3):
        r, q, alpha = x[i:i + 3]
        z = z + r / (1.0 + r * q * jw ** alpha)
    return z


def _arcs_jacobian(w, x):
    """dZ/dx of :func:`_arcs_impedance`, one column per parameter (complex)."""
    jw = 1j * w
    log_jw = np.log(w) + 0.5j * math.pi
    cols = [np.ones_like(jw)]
    for i in range(1, len(x) - 1, 3):
        r, q, alpha = x[i:i + 3]
        s = jw ** alpha
        d2 = (1.0 + r * q * s) ** 2
        cols += [1.0 / d2, -r * r * s / d2, -r * r * q * s * log_jw / d2]
    cols.append((1 - 1j) / np.sqrt(w))
    return np.column_stack(cols)


@dataclass
class CircuitFit:
    """One least-squares circuit fit: x = [R0, (R, Q, alpha) per arc, sigma]."""

    x: np.ndarray
    rss: float  # sum of squared relative residuals, real and imaginary parts
    points: int  # number of frequencies fitted

    @property
    def arcs(self) -> int:
        return (len(self.x) - 2) // 3

    @property
    def residual(self) -> float:
        """RMS over the points of |Z_fit - Z| / |Z|."""
        return math.sqrt(self.rss / self.points)

    @property
    def bic(self) -> float:
        n = 2 * self.points
        return n * math.log(self.rss / n + RESIDUAL_FLOOR ** 2) + len(self.x) * math.log(n)

    def arc_list(self) -> list[tuple[float, float, float, float]]:
        """(characteristic frequency Hz, R, Q, alpha) of each arc, highest frequency first."""
        arcs = [(arc_frequency_hz(*self.x[i:i + 3]), *self.x[i:i + 3]) for i in range(1, len(self.x) - 1, 3)]
        return sorted(arcs, key=lambda a: -a[0] if math.isfinite(a[0]) else -math.inf)


def _least_squares_fit(f, z, x0, weighted: bool = True, max_nfev: int = 100, tol: float = 1e-6) -> CircuitFit | None:
    """Fit the m-arc circuit of x0's length to (f, z) by TRF; None if it fails.

    ``tol`` is least_squares' ftol and xtol: 1e-6 moves RSS by a millionth, far below what
    the BIC choice or the features resolve, and saves a fifth of the evaluations."""
    from scipy.optimize import least_squares

    w = 2 * np.pi * f
    weight = 1.0 / np.abs(z) if weighted else np.ones(len(z))
    lower = np.zeros(len(x0))
    upper = np.full(len(x0), np.inf)
    upper[3:-1:3] = 1.0
    lower[3:-1:3] = 0.3
    x0 = np.clip(np.asarray(x0, dtype=float), np.maximum(lower, 1e-300), upper)

    def residual(x):
        d = (_arcs_impedance(w, x) - z) * weight
        return np.concatenate([d.real, d.imag])

    def jacobian(x):
        jac = _arcs_jacobian(w, x) * weight[:, None]
        return np.vstack([jac.real, jac.imag])

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            fit = least_squares(residual, x0, jac=jacobian, bounds=(lower, upper), x_scale=np.abs(x0),
                                method="trf", max_nfev=max_nfev, ftol=tol, xtol=tol)
        except (ValueError, np.linalg.LinAlgError):
            return None
    if fit.status < 0 or not np.all(np.isfinite(fit.x)):
        return None
    rel = (_arcs_impedance(w, fit.x) - z) / np.abs(z)
    rss = float(np.sum(rel.real ** 2 + rel.imag ** 2))
    return CircuitFit(fit.x, rss, len(f)) if math.isfinite(rss) else None


def fit_points(frequency_hz, z, geo: dict):
    """The points the circuit fits use: capacitive, down to TAIL_DECADES below the valley."""
    f, z = _sorted_desc(frequency_hz, z)
    keep = (-z.imag > 0) & (f >= f[geo["valley_index"]] / 10 ** TAIL_DECADES)
    return f[keep], z[keep]


def two_arc_starts(f, z, geo: dict, one: CircuitFit | None) -> list[np.ndarray]:
    """Starts of the two-arc fit: the geometric arc split 30/70 into a high- and a
    low-frequency arc a decade either side of the geometric apex; R0 and sigma from the
    one-arc fit (else the geometric guess). A second start split 70/30 chose the same circuit
    on 149 of 151 real and simulated spectra and moved r_ct_fit_ohm by at most 0.2 %, at
    twice the cost, so it is not run (measured 2026-12-07 on every 10th Zhang spectrum, the
    LG M50LT and impedance.py spectra and a smoke run's)."""
    guess = circuit_initial_guess(f, z, geo)
    r0, sigma = (one.x[0], one.x[-1]) if one is not None else (guess[0], guess[-1])
    width, f_apex, alpha = guess[1], geo["f_peak_hz"], 0.9
    starts = []
    for share_hf in (0.3,):
        x = [r0]
        for r, f_arc in ((share_hf * width, 10 * f_apex), ((1 - share_hf) * width, f_apex / 10)):
            x += [r, 1.0 / (r * (2 * math.pi * f_arc) ** alpha), alpha]
        starts.append(np.array(x + [max(sigma, 1e-9)]))
    return starts


@dataclass
class ArcFits:
    """The one- and two-arc fits of a spectrum and which BIC chose (None: that fit failed)."""

    one: CircuitFit | None
    two: CircuitFit | None
    band_hz: tuple[float, float]

    @property
    def two_eligible(self) -> bool:
        if self.two is None:
            return False
        lo, hi = self.band_hz
        return all(lo <= a[0] <= hi for a in self.two.arc_list())

    @property
    def chosen(self) -> CircuitFit | None:
        if not self.two_eligible:
            return self.one
        if self.one is None or self.two.bic < self.one.bic:
            return self.two
        return self.one


def fit_arcs(frequency_hz, z, geo: dict | None = None) -> ArcFits:
    """One- and two-arc circuit fits of a spectrum (see the module docstring)."""
    z = np.asarray(z, dtype=complex)
    geo = geo or geometric_features(frequency_hz, z)
    f, z = fit_points(frequency_hz, z, geo)
    if len(f) < 6:  # as circuit_fit: too few points to fit even one arc
        return ArcFits(None, None, (math.nan, math.nan))
    one = _least_squares_fit(f, z, circuit_initial_guess(f, z, geo))
    two = None
    for x0 in two_arc_starts(f, z, geo, one) if len(f) >= 8 else []:
        fit = _least_squares_fit(f, z, x0)
        if fit is not None and (two is None or fit.rss < two.rss):
            two = fit
    return ArcFits(one, two, (float(f.min()), float(f.max())))


def spectrum_features(frequency_hz, z_real_ohm, z_imag_ohm) -> dict:
    """All impedance features of one sweep (see module docstring)."""
    z = np.asarray(z_real_ohm, dtype=float) + 1j * np.asarray(z_imag_ohm, dtype=float)
    geo = geometric_features(frequency_hz, z)
    chosen = fit_arcs(frequency_hz, z, geo).chosen
    out = {
        "r_ohm_ohm": geo["r_ohm_ohm"],
        "r_ct_ohm": geo["r_ct_geometric_ohm"],
        "r_ct_fit_ohm": math.nan,
        "f_peak_hz": geo["f_peak_hz"],
        "warburg_slope": geo["warburg_slope"],
        "fit_residual": math.nan,
        "kk_residual": kk_residual(frequency_hz, z),
        "circuit_arcs": 0,
        "r0_fit_ohm": math.nan,
        "r_hf_arc_fit_ohm": math.nan,
    }
    if chosen is not None:
        arcs = chosen.arc_list()  # highest frequency first: the last is the charge-transfer arc
        out.update(circuit_arcs=chosen.arcs, r0_fit_ohm=float(chosen.x[0]), r_ct_fit_ohm=float(arcs[-1][1]),
                   fit_residual=chosen.residual)
        if chosen.arcs == 2:
            out.update(r_hf_arc_fit_ohm=float(arcs[0][1]), f_peak_hz=arcs[-1][0])
    return out
