"""Features that mean the same for a simulated and a measured cell.

One *observation* is one reference test of one cell: a spectrum (at one state of charge),
a discharge curve, a resistance, or any of them together. The functions here turn each
of those into absolute features; :func:`add_relative` then adds, per cell, each feature
relative to the cell's first observation (a ratio for magnitudes, a shift for positions).
The same functions run on the factory's tables (``dataset_features``) and on measured
files (``learn.measured``), so a model never sees a feature computed two ways.

Relative features are what transfers between cells of other sizes and makers: a coin cell
and a 5 A.h cylinder differ 100-fold in ohms, not in how their ohms grow. Models use
them by default (``normalise="relative"``).

Every feature's definition is in :data:`FEATURES` and is written into each model
directory (``features.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..labels.curves import ica_dva_features
from ..labels.impedance import geometric_features

# |Z| and phase are read at these frequencies (log-interpolated); all lie inside the
# default design's 1 mHz-10 kHz grid and the usual 0.01 Hz-1 kHz of a measured spectrum
REFERENCE_FREQUENCIES_HZ = (1000.0, 100.0, 10.0, 1.0, 0.1)


@dataclass(frozen=True)
class Feature:
    name: str
    group: str         # eis | curves | capacity | resistance | usage
    relative: str      # "ratio" (value / first value), "shift" (value - first value), or "none":
    #                    already counted from the first observation or a condition, used as is
    unit: str
    definition: str


def _f_label(f_hz: float) -> str:
    return f"{f_hz:g}".replace(".", "p") + "hz"


def _eis_features() -> list[Feature]:
    feats = [
        Feature("eis_r_ohm_ohm", "eis", "ratio", "ohm",
                "high-frequency real-axis intercept of the Nyquist curve (Z' where -Z'' crosses zero, interpolated)"),
        Feature("eis_r_ct_ohm", "eis", "ratio", "ohm",
                "width of the charge-transfer arc: Z' at the valley before the diffusion tail minus the intercept"),
        Feature("eis_log10_f_peak_hz", "eis", "shift", "log10(Hz)", "log10 of the frequency at the arc's apex"),
    ]
    for f in REFERENCE_FREQUENCIES_HZ:
        lab = _f_label(f)
        feats.append(Feature(f"eis_zmod_{lab}_ohm", "eis", "ratio", "ohm",
                             f"|Z| at {f:g} Hz (interpolated in log frequency)"))
        feats.append(Feature(f"eis_phase_{lab}_deg", "eis", "shift", "degree",
                             f"phase of Z at {f:g} Hz (negative when capacitive)"))
    return feats


CURVE_FEATURES = [
    Feature("curve_capacity_ah", "capacity", "ratio", "A.h",
            "capacity of the reference discharge (the file's or design's RPT rate and window)"),
    Feature("curve_mean_voltage_v", "curves", "shift", "V", "mean voltage over the reference discharge (energy / capacity)"),
    Feature("curve_ica_peak1_v", "curves", "shift", "V", "voltage of the most prominent incremental-capacity (-dQ/dV) peak"),
    Feature("curve_ica_peak1_per_v", "curves", "ratio", "1/V",
            "height of that peak divided by the discharge capacity (normalised, so cell size drops out)"),
    Feature("curve_ica_peak2_v", "curves", "shift", "V", "voltage of the second most prominent ICA peak"),
    Feature("curve_ica_peak2_per_v", "curves", "ratio", "1/V", "height of the second ICA peak divided by the capacity"),
    Feature("curve_dva_peak_capacity_fraction", "curves", "shift", "1",
            "position of the main interior differential-voltage (-dV/dQ) peak as a fraction of the discharge"),
    Feature("curve_dva_peak_v", "curves", "ratio", "V",
            "height of that DVA peak times the capacity (-dV/d(Q/Q_total), normalised)"),
]
RESISTANCE_FEATURES = [
    Feature("resistance_ohm", "resistance", "ratio", "ohm",
            "DC resistance: a 0.1 s pulse resistance where the data have one (the factory's pulse test, "
            "a cycler's pulse), else the instantaneous voltage drop at the start of the reference discharge"),
]
# How the cell was used up to the observation. Real cells of one model age at very different
# speeds under different usage, and the same capacity loss then splits differently between the
# modes (a time-driven break-in is a larger share of a slowly cycled cell's loss), so a model of
# the modes needs to know how far and how fast the cell got there. Counted from the cell's
# first observation, as the relative features are.
USAGE_FEATURES = [
    Feature("usage_efc", "usage", "none", "1",
            "equivalent full cycles since the cell's first observation: the charge moved in and out (absolute "
            "current integrated over charge and discharge) divided by twice the first observation's capacity"),
    Feature("usage_elapsed_days", "usage", "none", "day",
            "time since the cell's first observation (factory: simulated time, reference tests included; measured: "
            "the file's elapsed-days or date column, or a cycler file's test time)"),
    Feature("usage_temperature_c", "usage", "none", "degC",
            "temperature the cell ages at (factory: its ambient temperature; measured: the file's temperature "
            "column averaged over the records up to the observation: a cell's own temperature, which runs above "
            "its chamber's when it heats)"),
]
FEATURES: dict[str, Feature] = {f.name: f for f in
                                _eis_features() + CURVE_FEATURES + RESISTANCE_FEATURES + USAGE_FEATURES}
GROUPS = ("eis", "curves", "capacity", "resistance", "usage")
GROUP_ALIASES = {"both": ("eis", "curves", "capacity"), "all": GROUPS, "curves": ("curves", "capacity")}
NORMALISE = ("relative", "absolute", "both")


def relative_name(name: str) -> str:
    """The relative feature's column; a feature that is relative already keeps its name."""
    kind = FEATURES[name].relative
    return name if kind == "none" else f"{name}_{kind}"


def parse_groups(text: str) -> tuple[str, ...]:
    """``eis``, ``curves`` (shape and capacity), ``both`` (eis + curves), ``all``, or a
    comma list of eis, curves, capacity, resistance, usage."""
    groups: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        expanded = GROUP_ALIASES.get(part, (part,))
        for g in expanded:
            if g not in GROUPS:
                raise ValueError(f"--features: unknown feature group '{part}' (allowed: eis, curves, both, all, "
                                 f"or a comma list of {', '.join(GROUPS)})")
            if g not in groups:
                groups.append(g)
    if not groups:
        raise ValueError("--features: give at least one group (eis, curves, both, all)")
    return tuple(groups)


def feature_columns(groups, normalise: str = "relative") -> list[str]:
    """Model inputs for those groups: absolute names, their relative names, or both (a
    feature that is relative already appears once, in every mode)."""
    if normalise not in NORMALISE:
        raise ValueError(f"--normalise: '{normalise}' is not one of {', '.join(NORMALISE)}")
    names = [f.name for f in FEATURES.values() if f.group in groups]
    if normalise == "absolute":
        return names
    rel = [relative_name(n) for n in names]
    return rel if normalise == "relative" else list(dict.fromkeys(names + rel))


def definitions_markdown(columns) -> str:
    lines = ["| feature | unit | definition |", "|---|---|---|"]
    for col in columns:
        base = col if col in FEATURES else col.rsplit("_", 1)[0]
        f = FEATURES[base]
        if col == base:
            lines.append(f"| `{col}` | {f.unit} | {f.definition} |")
        elif f.relative == "ratio":
            lines.append(f"| `{col}` | 1 | `{base}` divided by its value at the cell's first observation |")
        else:
            lines.append(f"| `{col}` | {f.unit} | `{base}` minus its value at the cell's first observation |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- per observation

def spectrum_observables(frequency_hz, z_real_ohm, z_imag_ohm) -> dict:
    """EIS features of one sweep. Z = Z' + jZ'' with capacitive Z'' < 0 (the readers'
    convention). Reference frequencies outside the sweep give NaN."""
    f = np.asarray(frequency_hz, dtype=float)
    z = np.asarray(z_real_ohm, dtype=float) + 1j * np.asarray(z_imag_ohm, dtype=float)
    ok = np.isfinite(f) & np.isfinite(z.real) & np.isfinite(z.imag) & (f > 0)
    f, z = f[ok], z[ok]
    out = {name: math.nan for name, feat in FEATURES.items() if feat.group == "eis"}
    if f.size < 5:
        return out
    geo = geometric_features(f, z)
    out["eis_r_ohm_ohm"] = geo["r_ohm_ohm"]
    out["eis_r_ct_ohm"] = geo["r_ct_geometric_ohm"]
    out["eis_log10_f_peak_hz"] = math.log10(geo["f_peak_hz"])
    order = np.argsort(f)
    logf = np.log10(f[order])
    logmod = np.log10(np.abs(z[order]))
    phase = np.degrees(np.angle(z[order]))
    for fr in REFERENCE_FREQUENCIES_HZ:
        lab = _f_label(fr)
        if logf[0] - 1e-9 <= math.log10(fr) <= logf[-1] + 1e-9:
            out[f"eis_zmod_{lab}_ohm"] = float(10 ** np.interp(math.log10(fr), logf, logmod))
            out[f"eis_phase_{lab}_deg"] = float(np.interp(math.log10(fr), logf, phase))
    return out


def curve_observables(discharged_ah, voltage_v) -> dict:
    """Capacity, mean voltage and normalised ICA/DVA features of one constant-current
    discharge (discharged capacity from 0, voltage)."""
    q = np.asarray(discharged_ah, dtype=float)
    v = np.asarray(voltage_v, dtype=float)
    out = {f.name: math.nan for f in CURVE_FEATURES}
    ok = np.isfinite(q) & np.isfinite(v)
    q, v = q[ok], v[ok]
    if q.size < 10 or q[-1] <= 0:
        return out
    capacity = float(q[-1])
    out["curve_capacity_ah"] = capacity
    out["curve_mean_voltage_v"] = float(np.sum(0.5 * (v[1:] + v[:-1]) * np.diff(q)) / capacity)
    if q.size >= 40:  # the smoothing window needs a curve, not a handful of points
        ica = ica_dva_features(q, v)
        out["curve_ica_peak1_v"] = ica["ica_peak1_v"]
        out["curve_ica_peak1_per_v"] = ica["ica_peak1_ah_per_v"] / capacity
        out["curve_ica_peak2_v"] = ica["ica_peak2_v"]
        out["curve_ica_peak2_per_v"] = ica["ica_peak2_ah_per_v"] / capacity
        out["curve_dva_peak_capacity_fraction"] = ica["dva_peak_capacity_fraction"]
        out["curve_dva_peak_v"] = ica["dva_peak_v_per_ah"] * capacity
    return out


def add_relative(frame: pd.DataFrame, cell: str = "cell_id", order: str = "cycle") -> pd.DataFrame:
    """Each absolute feature relative to the cell's first observation (lowest ``order``)
    that has it: ``<name>_ratio`` = value / first, ``<name>_shift`` = value - first."""
    frame = frame.sort_values([cell, order], kind="stable").reset_index(drop=True)
    for name, feat in FEATURES.items():
        if name not in frame or feat.relative == "none":
            continue
        first = frame.groupby(cell, sort=False)[name].transform(
            lambda s: s.dropna().iloc[0] if s.notna().any() else np.nan)
        if feat.relative == "ratio":
            with np.errstate(divide="ignore", invalid="ignore"):
                frame[relative_name(name)] = np.where(first.abs() > 0, frame[name] / first, np.nan)
        else:
            frame[relative_name(name)] = frame[name] - first
    return frame


def add_usage(frame: pd.DataFrame, throughput_ah: str | None, days: str | None, capacity_ah: str,
              cell: str = "cell_id", order: str = "cycle") -> pd.DataFrame:
    """``usage_efc`` and ``usage_elapsed_days`` from cumulative throughput (A.h, charge and
    discharge) and time (days) columns, each counted from the cell's first observation
    (lowest ``order``) that has the column; a column that is None or absent gives NaN.
    Returns a new frame sorted by cell and ``order``."""
    frame = frame.sort_values([cell, order], kind="stable").reset_index(drop=True)
    first = frame.groupby(cell, sort=False)
    if throughput_ah and throughput_ah in frame:
        moved = frame[throughput_ah] - first[throughput_ah].transform("first")
        frame["usage_efc"] = moved / (2.0 * first[capacity_ah].transform("first"))
    else:
        frame["usage_efc"] = np.nan
    if days and days in frame:
        frame["usage_elapsed_days"] = frame[days] - first[days].transform("first")
    else:
        frame["usage_elapsed_days"] = np.nan
    return frame


# ---------------------------------------------------------------- the factory's tables

def _nearest(values, target: float) -> float:
    values = np.unique(np.asarray(values, dtype=float))
    return float(values[np.argmin(np.abs(values - target))])


def dataset_features(tables: dict, soc: float = 0.5) -> pd.DataFrame:
    """One row per (sample, RPT) of a factory dataset with every feature and label.

    ``tables``: the dataset's frames (labels, manifest, splits; spectra, curves and pulses
    where the dataset has them). EIS and pulse features are taken at the dataset's SOC
    nearest to ``soc``.
    """
    labels = tables["labels"]
    keys = ["sample_id", "cycle"]
    frame = labels.copy()
    pulses = tables.get("pulses")
    if pulses is not None and len(pulses):
        p_soc = _nearest(pulses["soc"], soc)
        p = pulses[np.isclose(pulses["soc"], p_soc)][keys + ["resistance_0p1s_ohm"]]
        frame = frame.drop(columns="resistance_ohm").merge(p.rename(columns={"resistance_0p1s_ohm": "resistance_ohm"}),
                                                            on=keys, how="left")
    curves = tables.get("curves")
    if curves is not None and len(curves):
        rows = [{"sample_id": s, "cycle": c, **curve_observables(g["discharged_capacity_ah"], g["voltage_v"])}
                for (s, c), g in curves.groupby(keys, sort=False)]
        frame = frame.merge(pd.DataFrame(rows), on=keys, how="left")
    spectra = tables.get("spectra")
    if spectra is not None and len(spectra):
        e_soc = _nearest(spectra["soc"], soc)
        sub = spectra[np.isclose(spectra["soc"], e_soc)]
        rows = [{"sample_id": s, "cycle": c,
                 **spectrum_observables(g["frequency_hz"], g["z_real_ohm"], g["z_imag_ohm"])}
                for (s, c), g in sub.groupby(keys, sort=False)]
        frame = frame.merge(pd.DataFrame(rows), on=keys, how="left")
        frame["eis_soc"] = e_soc
    frame = frame.rename(columns={"sample_id": "cell_id"})
    frame = add_relative(frame, cell="cell_id", order="cycle")
    frame = frame.merge(tables["manifest"][["sample_id", "ambient_temperature_k", "protocol_id"]]
                        .rename(columns={"sample_id": "cell_id"}), on="cell_id", how="left")
    frame = add_usage(frame, throughput_ah="throughput_ah", days="elapsed_days", capacity_ah="capacity_ah")
    frame["usage_temperature_c"] = frame["ambient_temperature_k"] - 273.15
    if "splits" in tables:
        frame = frame.merge(tables["splits"][["sample_id", "split"]].rename(columns={"sample_id": "cell_id"}),
                            on="cell_id", how="left")
    return frame
