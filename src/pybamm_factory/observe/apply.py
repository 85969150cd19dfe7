"""Pure functions: clean curves and spectra in, measured ones out.

Every random number comes from a generator seeded by (seed, sample_id, stream, key) through
a SHA-256 of the text, so a sample's observation does not depend on which other samples are
observed, in which order or in which slices.

Curves. The curves table holds each RPT discharge on a 101-point capacity grid. The RPT
discharge is a constant current I (``rpt_discharge_c_rate`` x nominal capacity), so the clean
curve is a voltage against time t = Q / I. :func:`measure_discharge` logs it as a cycler or
BMS would, every ``sample_period_s``: the voltage through gain, offset, drift, noise and the
ADC step; the current likewise; the capacity is the running sum of the *measured* current x
dt (so current gain and offset errors move the capacity axis, and the counted capacity drifts
with the offset). The clean voltage between grid points is interpolated linearly, so the
``ideal`` profile gives back exactly what the grid holds: ICA/DVA of the 101-point grid differ
from the labels' (computed from the solver's own points) by resampling alone, and a profile's
effect on them is best read against the ``ideal`` profile's. The measured series then goes through the factory's own code
(:func:`~pybamm_factory.labels.curves.curve_table`, :func:`~pybamm_factory.labels.curves.ica_dva_features`,
:func:`~pybamm_factory.labels.capacity.rpt_capacity_ah`, :func:`~pybamm_factory.labels.capacity.dc_resistance_ohm`),
exactly as the simulated solution does in ``simulate/sample.py``.

Spectra. Z_obs = Z (1 + g) + |Z| sigma(f) (n' + j n''), n', n'' standard normal, g the
channel's gain error, sigma(f) = eis_noise_pct / 100 x max(1, f_corner / f) ** exponent. The
features are :func:`~pybamm_factory.labels.impedance.spectrum_features` of the noisy sweep.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..labels.capacity import dc_resistance_ohm, rpt_capacity_ah
from ..labels.curves import curve_table, ica_dva_features
from ..labels.impedance import kk_residual, spectrum_features
from .profiles import Profile

DAYS_PER_MONTH = 365.25 / 12
PROFILE_COLUMN = "observation_profile"
CURVE_KEYS = ("sample_id", "cell_design_id", "cycle")
SWEEP_KEYS = ("sample_id", "cell_design_id", "sweep_id", "cycle", "soc")
RPT_FEATURES = ("capacity_ah", "soh", "resistance_ohm", "ica_peak1_v", "ica_peak1_ah_per_v", "ica_peak2_v",
                "ica_peak2_ah_per_v", "dva_peak_capacity_fraction", "dva_peak_v_per_ah")


def sample_rng(seed: int, sample_id: str, stream: str, key: str = "") -> np.random.Generator:
    """A generator that depends only on (seed, sample_id, stream, key)."""
    digest = hashlib.sha256("\x1f".join((str(sample_id), stream, str(key))).encode()).digest()
    words = [int(w) for w in np.frombuffer(digest, dtype="<u4")]
    return np.random.default_rng(np.random.SeedSequence([int(seed), *words]))


@dataclass(frozen=True)
class Channel:
    """The systematic errors one sample's measurement chain has (drawn once per sample)."""

    voltage_offset_v: float
    voltage_gain: float  # fraction: reading = (1 + gain) x true + ...
    voltage_drift_v_per_month: float
    current_offset_a: float
    current_gain: float
    current_offset_drift_a_per_month: float
    temperature_offset_k: float
    eis_gain: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def channel_errors(profile: Profile, seed: int, sample_id: str) -> Channel:
    """The sample's offsets, gains and drift rates: exactly the stated values (``fixed``) or
    uniform within +/- them (``uniform``), always drawn in the same order."""
    bounds = (profile.voltage_offset_v, profile.voltage_gain_error_pct / 100, profile.voltage_drift_v_per_month,
              profile.current_offset_a, profile.current_gain_error_pct / 100, profile.current_offset_drift_a_per_month,
              profile.temperature_offset_k, profile.eis_gain_error_pct / 100)
    if profile.systematic_errors == "fixed":
        values = bounds
    else:
        draws = sample_rng(seed, sample_id, "channel").uniform(-1.0, 1.0, len(bounds))
        values = tuple(float(b * d) for b, d in zip(bounds, draws))
    return Channel(*(float(v) for v in values))


def quantise(x: np.ndarray, step: float) -> np.ndarray:
    """Round to the nearest multiple of ``step`` (0: unchanged)."""
    if step <= 0:
        return x
    return np.round(x / step) * step


def first_order_lag(time_s: np.ndarray, x: np.ndarray, tau_s: float, initial: float | None = None) -> np.ndarray:
    """A sensor with time constant ``tau_s`` reading ``x`` (held between samples); starts at
    ``initial`` (default: the first value, i.e. in equilibrium)."""
    x = np.asarray(x, dtype=float)
    if tau_s <= 0 or len(x) == 0:
        return x.copy()
    from scipy.signal import lfilter

    y0 = float(x[0] if initial is None else initial)
    if len(x) == 1:
        return np.array([y0])
    alpha = 1.0 - np.exp(-np.diff(np.asarray(time_s, dtype=float)) / tau_s)
    if np.allclose(alpha[:-1], alpha[0], rtol=1e-12, atol=0.0):
        # y[k] = (1 - a) y[k-1] + a x[k-1] with one a for every step but possibly the last
        a = alpha[0]
        y, _ = lfilter([0.0, a], [1.0, -(1.0 - a)], x[:-1], zi=[y0])
        last = y[-1] + alpha[-1] * (x[-2] - y[-1])
        return np.append(y, last)
    y = np.empty_like(x)
    y[0] = y0
    for k in range(1, len(x)):
        y[k] = y[k - 1] + alpha[k - 1] * (x[k - 1] - y[k - 1])
    return y


@dataclass
class Discharge:
    """One logged RPT discharge: what the instrument recorded, and the truth beside it."""

    time_s: np.ndarray
    voltage_v: np.ndarray
    current_a: np.ndarray
    capacity_ah: np.ndarray
    temperature_k: np.ndarray
    true_voltage_v: np.ndarray
    true_capacity_ah: np.ndarray
    rest_voltage_v: float  # the reading of the rested voltage just before the discharge


def measure_discharge(q_ah, v_v, current_a: float, profile: Profile, channel: Channel, rng: np.random.Generator,
                      months: float = 0.0, temperature_k: float = 298.15, true_rest_voltage_v: float | None = None) -> Discharge:
    """Log a constant-current discharge given as voltage ``v_v`` against capacity ``q_ah``."""
    q = np.asarray(q_ah, dtype=float)
    v = np.asarray(v_v, dtype=float)
    keep = np.concatenate([[True], np.diff(q) > 0])
    q, v = q[keep], v[keep]
    if len(q) < 2 or not current_a > 0:
        raise ValueError("a discharge needs at least two capacity points and a positive current")
    end_s = q[-1] / current_a * 3600.0
    t = np.arange(0.0, end_s, profile.sample_period_s)
    if end_s - t[-1] > 1e-9 * max(1.0, end_s):
        t = np.append(t, end_s)
    true_q = current_a * t / 3600.0
    true_v = np.interp(true_q, q, v)
    n = len(t)
    # the draws come in a fixed order, whatever the profile's values (zero noise draws too)
    noise_v = rng.standard_normal(n)
    noise_i = rng.standard_normal(n)
    noise_t = rng.standard_normal(n)
    noise_rest = rng.standard_normal()

    def volts(x, noise):
        reading = (1.0 + channel.voltage_gain) * x + channel.voltage_offset_v + channel.voltage_drift_v_per_month * months
        return quantise(reading + profile.voltage_noise_sigma_v * noise, profile.voltage_step_v)

    measured_v = volts(true_v, noise_v)
    offset_a = channel.current_offset_a + channel.current_offset_drift_a_per_month * months
    measured_i = quantise((1.0 + channel.current_gain) * current_a + offset_a + profile.current_noise_sigma_a * noise_i,
                          profile.current_step_a)
    # the capacity a cycler counts: each reading held until the next one
    counted = np.concatenate([[0.0], np.cumsum(measured_i[:-1] * np.diff(t))]) / 3600.0
    cell_t = np.full(n, float(temperature_k))  # isothermal models: the cell sits at the chamber temperature
    sensed = first_order_lag(t, cell_t, profile.temperature_lag_time_constant_s)
    measured_t = quantise(sensed + channel.temperature_offset_k + profile.temperature_noise_sigma_k * noise_t,
                          profile.temperature_step_k)
    rest_true = float(v[0]) if true_rest_voltage_v is None or not math.isfinite(true_rest_voltage_v) else true_rest_voltage_v
    rest = float(volts(np.array([rest_true]), np.array([noise_rest]))[0])
    return Discharge(t, measured_v, measured_i, counted, measured_t, true_v, true_q, rest)


def _grid_rows(discharge: Discharge) -> dict:
    """The curves-table rows and ICA/DVA features of a logged discharge (the factory's code)."""
    q, v = discharge.capacity_ah, discharge.voltage_v
    table = curve_table(q, v)
    # the temperature logged nearest each grid point (a reading, so its quantisation step stays visible)
    i = np.clip(np.searchsorted(q, table["discharged_capacity_ah"]), 1, len(q) - 1)
    nearest = np.where(np.abs(q[i - 1] - table["discharged_capacity_ah"]) <= np.abs(q[i] - table["discharged_capacity_ah"]), i - 1, i)
    table["temperature_k"] = discharge.temperature_k[nearest]
    return table


def _one_sample(frame: pd.DataFrame, caller: str) -> str:
    """The one sample id of ``frame`` (the per-sample functions take one sample's rows)."""
    sample_ids = frame["sample_id"].unique()
    if len(sample_ids) != 1:
        raise ValueError(f"{caller} takes one sample's rows, got {len(sample_ids)} samples")
    return str(sample_ids[0])


def observe_sample_curves(curves: pd.DataFrame, profile: Profile, seed: int, current_a: float,
                          elapsed_days: dict | None = None, resistance_ohm: dict | None = None,
                          temperature_k: float = 298.15) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Observed curves and RPT features of ONE sample (its rows of the curves table).

    ``elapsed_days`` and ``resistance_ohm`` map cycle -> the labels' values (time since the
    first RPT, for drift; the clean DC resistance, for the rested voltage before the discharge).
    Returns (curves rows, one row per RPT of capacity_ah, soh, resistance_ohm, ICA/DVA)."""
    if curves.empty:
        return pd.DataFrame(), pd.DataFrame()
    sample_id = _one_sample(curves, "observe_sample_curves")
    channel = channel_errors(profile, seed, sample_id)
    elapsed_days, resistance_ohm = elapsed_days or {}, resistance_ohm or {}
    curve_frames, feature_rows = [], []
    for cycle, rpt in curves.groupby("cycle", sort=False):
        rpt = rpt.sort_values("capacity_fraction", kind="mergesort")
        cycle = int(cycle)
        days = float(elapsed_days.get(cycle, 0.0))
        months = days / DAYS_PER_MONTH if math.isfinite(days) else 0.0
        q, v = rpt["discharged_capacity_ah"].to_numpy(float), rpt["voltage_v"].to_numpy(float)
        r = resistance_ohm.get(cycle, math.nan)
        rest = v[0] + r * current_a if r is not None and math.isfinite(r) else None
        rng = sample_rng(seed, sample_id, "curves", str(cycle))
        d = measure_discharge(q, v, current_a, profile, channel, rng, months, temperature_k, rest)
        table = pd.DataFrame(_grid_rows(d))
        for i, key in enumerate(CURVE_KEYS):
            table.insert(i, key, cycle if key == "cycle" else rpt[key].iloc[0])
        curve_frames.append(table)
        features = {key: (cycle if key == "cycle" else rpt[key].iloc[0]) for key in CURVE_KEYS}
        features["capacity_ah"] = rpt_capacity_ah(d.capacity_ah)
        features["resistance_ohm"] = (dc_resistance_ohm(d.rest_voltage_v, float(d.voltage_v[0]), float(d.current_a[0]))
                                      if rest is not None else math.nan)
        features.update(ica_dva_features(d.capacity_ah, d.voltage_v))
        feature_rows.append(features)
    out_curves = pd.concat(curve_frames, ignore_index=True)
    feats = pd.DataFrame(feature_rows)
    first = feats.sort_values("cycle", kind="mergesort")["capacity_ah"].iloc[0]
    feats.insert(feats.columns.get_loc("capacity_ah") + 1, "soh", feats["capacity_ah"] / first)
    out_curves[PROFILE_COLUMN] = profile.name
    feats[PROFILE_COLUMN] = profile.name
    return out_curves, feats[[*CURVE_KEYS, *RPT_FEATURES, PROFILE_COLUMN]]


def noisy_spectrum(frequency_hz, z_real_ohm, z_imag_ohm, profile: Profile, channel: Channel,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One sweep through the impedance channel: gain error, then noise proportional to |Z|."""
    f = np.asarray(frequency_hz, dtype=float)
    z = np.asarray(z_real_ohm, dtype=float) + 1j * np.asarray(z_imag_ohm, dtype=float)
    noise = rng.standard_normal((2, len(f)))
    scale = np.abs(z) * profile.eis_sigma(f)
    z_obs = z * (1.0 + channel.eis_gain) + scale * (noise[0] + 1j * noise[1])
    return z_obs.real, z_obs.imag


def observe_sample_spectra(spectra: pd.DataFrame, profile: Profile, seed: int,
                           features: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Observed spectra of ONE sample and (``features``) their impedance features, computed
    with the factory's :func:`~pybamm_factory.labels.impedance.spectrum_features`."""
    if spectra.empty:
        return pd.DataFrame(), pd.DataFrame()
    sample_id = _one_sample(spectra, "observe_sample_spectra")
    channel = channel_errors(profile, seed, sample_id)
    frames, rows = [], []
    for sweep_id, sweep in spectra.groupby("sweep_id", sort=False):
        rng = sample_rng(seed, sample_id, "spectra", str(sweep_id))
        zr, zi = noisy_spectrum(sweep["frequency_hz"], sweep["z_real_ohm"], sweep["z_imag_ohm"], profile, channel, rng)
        out = sweep[[*SWEEP_KEYS, "frequency_hz"]].copy()
        out["z_real_ohm"], out["z_imag_ohm"] = zr, zi
        frames.append(out)
        if features:
            base = {key: sweep[key].iloc[0] for key in SWEEP_KEYS}
            rows.append({**base, **spectrum_features(out["frequency_hz"].to_numpy(), zr, zi)})
    noisy = pd.concat(frames, ignore_index=True)
    noisy[PROFILE_COLUMN] = profile.name
    feats = pd.DataFrame(rows)
    if len(feats):
        feats[PROFILE_COLUMN] = profile.name
    return noisy, feats


def kk_failure_share(spectra: pd.DataFrame, profile: Profile, levels_pct, seeds) -> pd.DataFrame:
    """Share of sweeps the factory's lin-KK gate (``quality.checks.check_kk``) fails when the
    spectra are observed with ``profile`` at each EIS noise level (its ``eis_noise_pct``
    replaced), over ``seeds``. One row per level: level_pct, sweeps, failing, share,
    median_kk_residual."""
    from ..quality.checks import check_kk

    rows = []
    for level in levels_pct:
        noisy_profile = replace(profile, eis_noise_pct=float(level))
        residuals = []
        for seed in seeds:
            for sample_id, sample in spectra.groupby("sample_id", sort=False):
                channel = channel_errors(noisy_profile, seed, str(sample_id))
                for sweep_id, sweep in sample.groupby("sweep_id", sort=False):
                    rng = sample_rng(seed, str(sample_id), "spectra", str(sweep_id))
                    zr, zi = noisy_spectrum(sweep["frequency_hz"], sweep["z_real_ohm"], sweep["z_imag_ohm"], noisy_profile,
                                            channel, rng)
                    residuals.append({"sweep_id": f"{sweep_id}/seed{seed}",
                                      "kk_residual": kk_residual(sweep["frequency_hz"].to_numpy(float), zr + 1j * zi)})
        frame = pd.DataFrame(residuals)
        failing = check_kk(frame).count
        rows.append({"level_pct": float(level), "sweeps": len(frame), "failing": failing,
                     "share": failing / len(frame) if len(frame) else math.nan,
                     "median_kk_residual": float(frame["kk_residual"].median()) if len(frame) else math.nan})
    return pd.DataFrame(rows)
