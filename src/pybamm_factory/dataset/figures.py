"""Figures for the data card (PNG, matplotlib's Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def _save(fig, path: Path) -> str:
    """Write a PNG atomically, without metadata that differs between runs (same bytes every run)."""
    import io

    from .store import atomic_write_bytes

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path.name


def soh_trajectories(labels: pd.DataFrame, path: Path) -> str:
    from matplotlib.collections import LineCollection

    fig, ax = plt.subplots(figsize=(6, 4))
    # one artist for all samples: thousands of Line2D objects cost tens of MB
    lines = [g[["cycle", "soh"]].to_numpy(dtype=float) for _, g in labels.groupby("sample_id", sort=False)]
    ax.add_collection(LineCollection(lines, linewidths=0.8, alpha=0.6, colors=plt.get_cmap("tab10").colors))
    ax.autoscale()
    ax.axhline(0.8, color="k", ls="--", lw=0.8, label="SOH 0.8")
    ax.set_xlabel("cycle")
    ax.set_ylabel("SOH (RPT capacity / initial)")
    ax.set_title(f"SOH trajectories of {labels['sample_id'].nunique()} samples")
    ax.legend()
    return _save(fig, path)


def label_distributions(labels: pd.DataFrame, path: Path) -> str:
    last = labels.sort_values("cycle").groupby("sample_id").tail(1)
    cols = ["soh", "lli_pct", "lam_ne_pct", "lam_pe_pct", "plating_loss_ah", "resistance_ohm"]
    fig, axes = plt.subplots(2, 3, figsize=(9, 5))
    for ax, col in zip(axes.ravel(), cols):
        ax.hist(last[col].dropna(), bins=20, color="tab:blue", alpha=0.8)
        ax.set_xlabel(col)
    axes[0, 0].set_ylabel("samples")
    fig.suptitle("Labels at each sample's last reference test")
    return _save(fig, path)


def rpt_curves(curves: pd.DataFrame, sample_id: str, path: Path) -> str:
    g = curves[curves["sample_id"] == sample_id]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 4))
    cmap = plt.get_cmap("viridis")
    cycles = sorted(g["cycle"].unique())
    for i, (cycle, c) in enumerate(g.groupby("cycle")):
        color = cmap(i / max(1, len(cycles) - 1))
        a1.plot(c["discharged_capacity_ah"], c["voltage_v"], color=color, label=f"cycle {cycle}")
        a2.plot(c["voltage_v"], c["dqdv_ah_per_v"], color=color)
    a1.set_xlabel("discharged capacity [A.h]")
    a1.set_ylabel("voltage [V]")
    a1.legend(fontsize=7)
    a2.set_xlabel("voltage [V]")
    a2.set_ylabel("-dQ/dV [A.h/V]")
    fig.suptitle(f"RPT discharge curves and ICA of {sample_id}")
    return _save(fig, path)


def nyquist_fresh_vs_aged(spectra: pd.DataFrame, sample_id: str, path: Path) -> str:
    g = spectra[spectra["sample_id"] == sample_id]
    soc = sorted(g["soc"].unique())[len(g["soc"].unique()) // 2]
    g = g[g["soc"] == soc]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for cycle, label in ((g["cycle"].min(), "fresh"), (g["cycle"].max(), "aged")):
        s = g[g["cycle"] == cycle]
        ax.plot(s["z_real_ohm"] * 1e3, -s["z_imag_ohm"] * 1e3, "o-", ms=3, label=f"{label} (cycle {cycle})")
    ax.set_xlabel("Z' [mOhm]")
    ax.set_ylabel("-Z'' [mOhm]")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(f"Nyquist, {sample_id}, SOC {soc:.0%}")
    ax.legend()
    return _save(fig, path)


def impedance_trajectories(features: pd.DataFrame, path: Path) -> str:
    soc = sorted(features["soc"].unique())[len(features["soc"].unique()) // 2]
    f = features[features["soc"] == soc]
    cols = ["r_ohm_ohm", "r_ct_ohm", "f_peak_hz", "warburg_slope"]
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
    for ax, col in zip(axes, cols):
        for _, g in f.groupby("sample_id", sort=False):
            ax.plot(g["cycle"], g[col], lw=0.7, alpha=0.6)
        ax.set_xlabel("cycle")
        ax.set_title(col, fontsize=9)
    fig.suptitle(f"Impedance features vs cycle (SOC {soc:.0%})")
    return _save(fig, path)


def _sample_rows(root: Path, tables: dict[str, pd.DataFrame], table: str, sample_id: str) -> pd.DataFrame:
    """One sample's rows of a table held in memory or, for large tables, read from disk."""
    if table in tables:
        frame = tables[table]
        return frame[frame["sample_id"] == sample_id] if len(frame) else frame
    path = Path(root) / f"{table}.parquet"
    if not path.exists():
        return pd.DataFrame()
    return pd.read_parquet(path, filters=[("sample_id", "==", sample_id)])


def all_figures(root: Path, tables: dict[str, pd.DataFrame]) -> list[str]:
    """Draw every figure the tables allow; returns file names under ``figures/``."""
    out = Path(root) / "figures"
    names = []
    labels = tables.get("labels", pd.DataFrame())
    if len(labels):
        names.append(soh_trajectories(labels, out / "soh_trajectories.png"))
        names.append(label_distributions(labels, out / "label_distributions.png"))
        # the sample that aged most shows the clearest changes
        last = labels.sort_values("cycle").groupby("sample_id").tail(1)
        example = last.sort_values(["soh", "sample_id"]).iloc[0]["sample_id"]
        curves = _sample_rows(root, tables, "curves", example)
        if len(curves):
            names.append(rpt_curves(curves, example, out / "rpt_curves.png"))
        spectra = _sample_rows(root, tables, "spectra", example)
        if len(spectra):
            names.append(nyquist_fresh_vs_aged(spectra, example, out / "nyquist_fresh_vs_aged.png"))
        if len(tables.get("impedance_features", [])):
            names.append(impedance_trajectories(tables["impedance_features"], out / "impedance_features_vs_cycle.png"))
    return names

