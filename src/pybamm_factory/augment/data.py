"""Cells as fixed-length vectors: conditions in, aging trajectory out.

A cell (one physics sample) is described by its conditions (varied parameters,
C-rates, ambient temperature; log10 for parameters spanning over a decade) and its
trajectory over its first K reference tests: the cycle of each RPT, labels, the RPT
discharge voltage curve on the fixed capacity grid, and impedance features at the
middle SOC. Cells of a design with fade-triggered RPTs (or cells of very different
lives) have RPTs at different cycles, so the time axis is generated too: the RPT cycle
is a label like the others, and a generated cell comes with its own cycles. K is the
lower quartile of the training cells' RPT counts (cells with fewer RPTs are left out).
Monotone labels (RPT cycle and throughput grow, capacity falls; LLI, LAM and SEI loss
grow) are stored as a start value plus per-RPT steps, and generated steps are clipped
to the physical sign, so every generated trajectory is monotone by construction. SOH
is not generated but derived, as for physics labels: capacity / capacity at the first
RPT; so are ``lli_ah`` (``lli_pct`` times the training cells' median initial lithium) and
``lli_capacity_pct`` (``lli_ah`` since the first RPT over its capacity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..design.manifest import condition_columns, varied_columns

LABELS = ["cycle", "capacity_ah", "lli_pct", "lam_ne_pct", "lam_pe_pct", "sei_loss_ah", "plating_loss_ah", "resistance_ohm"]
DECREASING = {"capacity_ah"}
INCREASING = {"cycle", "lli_pct", "lam_ne_pct", "lam_pe_pct", "sei_loss_ah"}
# growing losses span decades across cells: modelled as log(value + offset)
LOG_OFFSET = {"lli_pct": 1e-3, "lam_ne_pct": 1e-4, "lam_pe_pct": 1e-4, "sei_loss_ah": 1e-4}
IMPEDANCE = ["r_ohm_ohm", "r_ct_ohm", "f_peak_hz", "warburg_slope"]


@dataclass
class CellSpace:
    """How to turn tables into vectors and back; fitted on the training cells."""

    rpts: int  # RPTs per cell vector (the first K of each cell)
    condition_names: list[str]
    log_conditions: list[str]
    curve_points: int
    soc: float
    x_mean: np.ndarray = None
    x_std: np.ndarray = None
    y_mean: np.ndarray = None
    y_std: np.ndarray = None
    throughput_per_ah: tuple = (2.0, 2.0)  # (first RPT, per aging cycle) throughput / capacity
    days_per_cycle: float = 0.0  # elapsed days per aging cycle (median of the training cells)
    lithium_ah: float = float("nan")  # all lithium in the particles at the start: 100 lli_ah / lli_pct (median)
    basis: np.ndarray = None  # principal directions of the scaled training cells (k x n_y)
    coef_std: np.ndarray = None

    @property
    def y_names(self) -> list[str]:
        rpts = range(self.rpts)
        names = [f"{lab}@rpt{c}" for lab in LABELS for c in rpts]
        names += [f"v{k}@rpt{c}" for c in rpts for k in range(self.curve_points)]
        names += [f"{f}@rpt{c}" for f in IMPEDANCE for c in rpts]
        return names

    def conditions(self, frame: pd.DataFrame) -> np.ndarray:
        cols = []
        for name in self.condition_names:
            v = frame[name].to_numpy(float)
            cols.append(np.log10(v) if name in self.log_conditions else v)
        return np.column_stack(cols)

    def scale_x(self, raw: np.ndarray) -> np.ndarray:
        return (raw - self.x_mean) / self.x_std

    def scale_y(self, raw: np.ndarray) -> np.ndarray:
        """Cell vectors -> standardised coefficients on the training cells' principal directions."""
        return ((raw - self.y_mean) / self.y_std) @ self.basis.T / self.coef_std

    def unscale_y(self, coef: np.ndarray) -> np.ndarray:
        return (coef * self.coef_std) @ self.basis * self.y_std + self.y_mean

    def fit(self, x_raw: np.ndarray, y_raw: np.ndarray, variance: float = 0.999) -> None:
        """Standardise conditions and outputs, and keep the principal directions that
        explain ``variance`` of the training cells: generated cells then lie in the span
        of physics trajectories (smooth in cycle), not in per-output noise."""
        self.x_mean, self.x_std = x_raw.mean(0), np.where(x_raw.std(0) > 0, x_raw.std(0), 1.0)
        self.y_mean, self.y_std = y_raw.mean(0), np.where(y_raw.std(0) > 1e-12, y_raw.std(0), 1.0)
        z = (y_raw - self.y_mean) / self.y_std
        _, sing, vt = np.linalg.svd(z, full_matrices=False)
        explained = np.cumsum(sing**2) / np.sum(sing**2)
        k = int(np.searchsorted(explained, variance) + 1)
        self.basis = vt[:k]
        coef = z @ self.basis.T
        self.coef_std = np.where(coef.std(0) > 0, coef.std(0), 1.0)


def make_space(manifest: pd.DataFrame, labels: pd.DataFrame, soc: float, curve_points: int,
               varied: list[str] | None = None) -> CellSpace:
    """The cell space of a dataset; ``varied``: its varied parameters (metadata.json's
    record; by default the manifest's PyBaMM-named columns)."""
    counts = labels.groupby("sample_id")["cycle"].nunique()
    rpts = max(2, int(np.floor(np.percentile(counts, 25)))) if len(counts) else 2
    # numeric conditions every sample has (protocol factors absent from some protocols are NaN there)
    conditions = [c for c in condition_columns(manifest) if c != "protocol_id" and manifest[c].notna().all()]
    varied = varied_columns(manifest) if varied is None else [n for n in varied if n in manifest.columns]
    names = varied + conditions
    logs = [n for n in varied if (manifest[n] > 0).all() and manifest[n].max() / manifest[n].min() > 10]
    return CellSpace(rpts, names, logs, curve_points, soc)


def _monotone_encode(block: np.ndarray, label: str) -> np.ndarray:
    if label in LOG_OFFSET:
        block = np.log(np.maximum(block, 0.0) + LOG_OFFSET[label])
    if label in DECREASING or label in INCREASING:
        return np.column_stack([block[:, 0], np.diff(block, axis=1)])
    return block


def _monotone_decode(block: np.ndarray, label: str) -> np.ndarray:
    zeros = np.zeros((len(block), 1))
    if label in DECREASING:
        return block[:, :1] + np.concatenate([zeros, np.cumsum(np.minimum(block[:, 1:], 0), axis=1)], axis=1)
    if label in INCREASING:
        block = block[:, :1] + np.concatenate([zeros, np.cumsum(np.maximum(block[:, 1:], 0), axis=1)], axis=1)
    if label in LOG_OFFSET:
        block = np.maximum(np.exp(block) - LOG_OFFSET[label], 0.0)
    return block


def cell_table(space: CellSpace, tables: dict[str, pd.DataFrame], sample_ids: list[str]) -> tuple[list[str], np.ndarray]:
    """(kept sample ids, Y raw encoded) for samples whose trajectory covers every RPT."""
    labels = tables["labels"].set_index(["sample_id", "cycle"])
    curves = tables["curves"]
    feats = tables["impedance_features"]
    feats = feats[np.isclose(feats["soc"], space.soc)].set_index(["sample_id", "cycle"])
    curve_frac = np.linspace(0, 1, space.curve_points)
    kept, rows = [], []
    for sid in sample_ids:
        try:
            lab = labels.loc[sid].sort_index().iloc[:space.rpts].reset_index()
            imp = feats.loc[sid].reindex(lab["cycle"])
        except KeyError:
            continue
        if len(lab) < space.rpts or lab[LABELS].isna().any().any() or imp[IMPEDANCE].isna().any().any():
            continue
        c = curves[curves["sample_id"] == sid]
        volts = []
        for cycle in lab["cycle"]:
            g = c[c["cycle"] == cycle]
            volts.append(np.interp(curve_frac, g["capacity_fraction"], g["voltage_v"]))
        parts = [_monotone_encode(lab[lb].to_numpy(float)[None, :], lb)[0] for lb in LABELS]
        parts += volts
        imp_block = imp[IMPEDANCE].to_numpy(float).T.copy()
        imp_block[IMPEDANCE.index("f_peak_hz")] = np.log10(imp_block[IMPEDANCE.index("f_peak_hz")])
        parts += list(imp_block)
        kept.append(sid)
        rows.append(np.concatenate(parts))
    return kept, np.array(rows)


def decode_cells(space: CellSpace, y_raw: np.ndarray) -> dict[str, np.ndarray]:
    """Split encoded vectors back into per-quantity (cells x RPT) arrays."""
    n_c = space.rpts
    out, k = {}, 0
    for lab in LABELS:
        out[lab] = _monotone_decode(y_raw[:, k:k + n_c], lab)
        k += n_c
    out["cycle"] = np.array([rpt_cycles(c) for c in out["cycle"]], dtype=float).reshape(len(y_raw), n_c)
    out["soh"] = out["capacity_ah"] / out["capacity_ah"][:, :1]  # as defined for physics labels
    out["throughput_ah"] = derived_throughput(space, out["capacity_ah"], out["cycle"])
    # the other two LLI conventions follow from lli_pct as the physics labels define them
    # (not for a dataset written before the factory labelled lli_ah: no initial lithium to scale by)
    if np.isfinite(space.lithium_ah):
        out["lli_ah"] = out["lli_pct"] / 100.0 * space.lithium_ah
        out["lli_capacity_pct"] = 100.0 * (out["lli_ah"] - out["lli_ah"][:, :1]) / out["capacity_ah"][:, :1]
    out["voltage_v"] = y_raw[:, k:k + n_c * space.curve_points].reshape(len(y_raw), n_c, space.curve_points)
    k += n_c * space.curve_points
    for f in IMPEDANCE:
        block = y_raw[:, k:k + n_c]
        out[f] = 10 ** block if f == "f_peak_hz" else block
        k += n_c
    return out


def rpt_cycles(generated: np.ndarray) -> list[int]:
    """Generated RPT cycles as integers, strictly increasing (the first RPT at its own
    generated cycle, normally 0)."""
    out = []
    for value in np.asarray(generated, float):
        cycle = max(int(round(value)), 0)
        out.append(cycle if not out or cycle > out[-1] else out[-1] + 1)
    return out


def derived_throughput(space: CellSpace, capacity_ah: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """Throughput is bookkeeping, not a label: charge moved per cycle ~ capacity, with
    the two ratios fitted on the training cells (see :func:`fit_throughput`)."""
    first, per_cycle = space.throughput_per_ah
    steps = np.diff(np.asarray(cycles, float), axis=1) * per_cycle * 0.5 * (capacity_ah[:, 1:] + capacity_ah[:, :-1])
    return first * capacity_ah[:, :1] + np.concatenate([np.zeros((len(capacity_ah), 1)), np.cumsum(steps, axis=1)], axis=1)


def fit_throughput(space: CellSpace, labels: pd.DataFrame, sample_ids: list[str]) -> None:
    lab = labels[labels["sample_id"].isin(sample_ids)].sort_values(["sample_id", "cycle"])
    first = lab.groupby("sample_id").head(1)
    ratio_first = float(np.median(first["throughput_ah"] / first["capacity_ah"]))
    d_tp = lab.groupby("sample_id")["throughput_ah"].diff()
    d_c = lab.groupby("sample_id")["cycle"].diff()
    mean_cap = 0.5 * (lab["capacity_ah"] + lab.groupby("sample_id")["capacity_ah"].shift())
    per_cycle = float(np.nanmedian(d_tp / (d_c * mean_cap)))
    space.throughput_per_ah = (ratio_first, per_cycle)
    if "lli_ah" in lab.columns:  # the cells' initial lithium (constant per cell; datasets before it lack the column)
        aged = lab[lab["lli_pct"] > 0.01]
        space.lithium_ah = float(np.median(100.0 * aged["lli_ah"] / aged["lli_pct"])) if len(aged) else float("nan")
    if "elapsed_days" in lab.columns:
        space.days_per_cycle = float(np.nanmedian(lab.groupby("sample_id")["elapsed_days"].diff() / d_c))


def metric_features(space: CellSpace, cells: dict[str, np.ndarray]) -> np.ndarray:
    """The vector fidelity metrics compare: labels and impedance features over RPTs."""
    parts = [cells["soh"]] + [cells[lab] for lab in LABELS] + [cells[f] if f != "f_peak_hz" else np.log10(cells[f]) for f in IMPEDANCE]
    return np.concatenate(parts, axis=1)
