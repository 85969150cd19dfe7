"""Figures for the data card (PNG, matplotlib's Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _pyplot():
    """pyplot on the Agg backend (files only), chosen when a figure is drawn, not at import."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bins(n: int) -> int:
    """Histogram bins that suit the sample count: about sqrt(n), 5 to 30."""
    return int(min(30, max(5, round(np.sqrt(max(n, 1))))))


def _save(fig, path: Path, tight: bool = True) -> str:
    """Write a PNG atomically, without metadata that differs between runs (same bytes every run)."""
    import io

    from .store import atomic_write_bytes

    if tight:
        fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    _pyplot().close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path.name


def soh_trajectories(labels: pd.DataFrame, path: Path, manifest: pd.DataFrame | None = None) -> str:
    """SOH against cycle, one line per sample, coloured by ambient temperature (left) and by
    discharge C-rate (right) where the manifest has them."""
    from matplotlib.collections import LineCollection

    plt = _pyplot()
    by = []
    if manifest is not None and len(manifest):
        conditions = manifest.set_index("sample_id")
        if "ambient_temperature_k" in conditions:
            by.append(("ambient temperature [degC]", conditions["ambient_temperature_k"] - 273.15, "coolwarm"))
        if "discharge_c_rate" in conditions and conditions["discharge_c_rate"].notna().any():
            by.append(("discharge C-rate", conditions["discharge_c_rate"], "viridis"))
    by = by or [(None, None, None)]
    fig, axes = plt.subplots(1, len(by), figsize=(5.2 * len(by), 4), squeeze=False)
    groups = [(sample_id, g[["cycle", "soh"]].to_numpy(dtype=float)) for sample_id, g in labels.groupby("sample_id", sort=False)]
    for ax, (title, values, cmap) in zip(axes[0], by):
        # one artist for all samples: thousands of Line2D objects cost tens of MB
        lines = LineCollection([line for _, line in groups], linewidths=0.8, alpha=0.7)
        if values is not None:
            shade = values.reindex([sample_id for sample_id, _ in groups]).to_numpy(dtype=float)
            lines.set_array(np.nan_to_num(shade, nan=np.nanmin(shade) if np.isfinite(shade).any() else 0.0))
            lines.set_cmap(cmap)
            fig.colorbar(lines, ax=ax, label=title)
        else:
            lines.set_color(plt.get_cmap("tab10").colors)
        ax.add_collection(lines)
        ax.autoscale()
        ax.axhline(0.8, color="k", ls="--", lw=0.8, label="SOH 0.8 (end of life)")
        ax.set_xlabel("cycle")
        ax.set_ylabel("SOH (RPT capacity / initial)")
        ax.legend(loc="lower left", fontsize=8)
    fig.suptitle(f"SOH trajectories of {labels['sample_id'].nunique()} samples")
    return _save(fig, path)


def label_distributions(labels: pd.DataFrame, path: Path) -> str:
    plt = _pyplot()
    last = labels.sort_values("cycle").groupby("sample_id").tail(1).copy()
    last["plating_loss_mah"] = 1000 * last["plating_loss_ah"]
    last["resistance_mohm"] = 1000 * last["resistance_ohm"]
    cols = [("soh", "SOH"), ("lli_pct", "LLI [% of lithium]"), ("lam_ne_pct", "LAM negative [%]"), ("lam_pe_pct", "LAM positive [%]"),
            ("plating_loss_mah", "plated lithium lost [mA.h]"), ("resistance_mohm", "DC resistance [mOhm]")]
    fig, axes = plt.subplots(2, 3, figsize=(9, 5))
    for ax, (col, title) in zip(axes.ravel(), cols):
        values = last[col].dropna()
        ax.hist(values, bins=_bins(len(values)), color="tab:blue", alpha=0.8)
        ax.set_xlabel(title)
    axes[0, 0].set_ylabel("samples")
    axes[1, 0].set_ylabel("samples")
    fig.suptitle(f"Labels at each sample's last reference test ({len(last)} samples)")
    return _save(fig, path)


def rpt_curves(curves: pd.DataFrame, sample_id: str, path: Path) -> str:
    plt = _pyplot()
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
    # the scale shows the ICA's peaks: a peak more than twice the next one (the graphite
    # stage near the top of charge) is cut at 1.3x that next peak and labelled
    dqdv = g["dqdv_ah_per_v"].to_numpy(float)
    first = g[g["cycle"] == cycles[0]]["dqdv_ah_per_v"].to_numpy(float) if cycles else dqdv
    inner = first[1:-1]
    maxima = np.sort(inner[(inner > first[:-2]) & (inner >= first[2:])])[::-1] if len(first) > 2 else np.array([])
    if np.isfinite(dqdv).any() and len(maxima) > 1 and maxima[0] > 2 * maxima[1] > 0:
        top = 1.3 * float(maxima[1])
        peak = int(np.nanargmax(dqdv))
        if dqdv[peak] > top:
            a2.set_ylim(0, top)
            a2.annotate(f"peak {dqdv[peak]:.0f} A.h/V at {g['voltage_v'].iloc[peak]:.2f} V (cut)", fontsize=7,
                        xy=(g["voltage_v"].iloc[peak], top), xytext=(0.03, 0.92), textcoords="axes fraction",
                        arrowprops={"arrowstyle": "->", "lw": 0.6})
    a2.set_xlabel("voltage [V]")
    a2.set_ylabel("-dQ/dV [A.h/V]")
    fig.suptitle(f"RPT discharge curves and ICA of {sample_id}")
    return _save(fig, path)


def nyquist_fresh_vs_aged(spectra: pd.DataFrame, sample_id: str, path: Path) -> str:
    plt = _pyplot()
    g = spectra[spectra["sample_id"] == sample_id]
    soc = sorted(g["soc"].unique())[len(g["soc"].unique()) // 2]
    g = g[g["soc"] == soc]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for cycle, label in ((g["cycle"].min(), "fresh"), (g["cycle"].max(), "aged")):
        s = g[g["cycle"] == cycle]
        ax.plot(s["z_real_ohm"] * 1e3, -s["z_imag_ohm"] * 1e3, "o-", ms=3, label=f"{label} (cycle {cycle})")
    ax.set_xlabel("Z' [mOhm]")
    ax.set_ylabel("-Z'' [mOhm]")
    # equal axes over the data's own span: no empty quadrant, arcs keep their shape
    x, y = g["z_real_ohm"] * 1e3, -g["z_imag_ohm"] * 1e3
    span = 1.05 * max(float(x.max() - x.min()), float(y.max() - min(y.min(), 0.0)))
    ax.set_xlim(float(x.min()) - 0.025 * span, float(x.min()) + span)
    ax.set_ylim(min(float(y.min()), 0.0) - 0.025 * span, min(float(y.min()), 0.0) + span)
    ax.set_aspect("equal", adjustable="box")
    ax.set_title(f"Nyquist, {sample_id}, SOC {soc:.0%}")
    ax.legend()
    return _save(fig, path)


def impedance_trajectories(features: pd.DataFrame, path: Path) -> str:
    soc = sorted(features["soc"].unique())[len(features["soc"].unique()) // 2]
    f = features[features["soc"] == soc]
    cols = ["r_ohm_ohm", "r_ct_ohm", "f_peak_hz", "warburg_slope"]
    plt = _pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
    for ax, col in zip(axes, cols):
        for _, g in f.groupby("sample_id", sort=False):
            ax.plot(g["cycle"], g[col], lw=0.7, alpha=0.6)
        ax.set_xlabel("cycle")
        ax.set_title(col, fontsize=9)
    fig.suptitle(f"Impedance features vs cycle (SOC {soc:.0%})")
    return _save(fig, path)


def design_coverage(manifest: pd.DataFrame, solver_log: pd.DataFrame, path: Path, max_parameters: int = 5,
                    varied: list[str] | None = None) -> str | None:
    """Pairs of varied parameters (``varied``, by default the manifest's PyBaMM-named
    columns; up to ``max_parameters``), each sample a dot, ok and not ok apart: where in
    the design space the runs succeeded."""
    from ..design.manifest import varied_columns

    varied = varied_columns(manifest) if varied is None else varied
    names = [c for c in varied if c in manifest.columns and manifest[c].nunique() > 1][:max_parameters]
    if not names:
        return None
    plt = _pyplot()
    status = manifest["sample_id"].map(solver_log.set_index("sample_id")["status"]).fillna("unsolved")
    ok = (status == "ok").to_numpy()
    k = len(names)
    shown = {}
    for name in names:  # rates spanning decades are shown as their log10, so the dots spread
        values = manifest[name].astype(float)
        decades = values.min() > 0 and values.max() / values.min() > 50
        shown[name] = (np.log10(values) if decades else values, f"log10 {name}" if decades else name)
    fig, axes = plt.subplots(k, k, figsize=(2.1 * k + 1, 2.1 * k + 0.9), squeeze=False)
    for i, y in enumerate(names):
        for j, x in enumerate(names):
            ax = axes[i, j]
            (xv, xlabel), (yv, ylabel) = shown[x], shown[y]
            if i == j:
                ax.hist(xv, bins=_bins(len(manifest)), color="0.6")
            else:
                ax.scatter(xv[ok], yv[ok], s=6, color="tab:blue", label="ok")
                ax.scatter(xv[~ok], yv[~ok], s=14, marker="x", color="tab:red", label="failed / infeasible")
            if i == k - 1:
                ax.set_xlabel(xlabel, fontsize=6)
            if j == 0:
                ax.set_ylabel(ylabel, fontsize=6)
            ax.tick_params(labelsize=5)
            ax.xaxis.get_offset_text().set_fontsize(5)
            ax.yaxis.get_offset_text().set_fontsize(5)
    handles, legend_labels = axes[0, 1].get_legend_handles_labels() if k > 1 else ([], [])
    fig.suptitle(f"Design coverage: {int(ok.sum())} ok and {int((~ok).sum())} other samples over the varied parameters",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    if handles:
        fig.legend(handles, legend_labels, loc="lower center", ncol=2, fontsize=7)
    return _save(fig, path, tight=False)


def _sample_rows(root: Path, tables: dict[str, pd.DataFrame], table: str, sample_id: str) -> pd.DataFrame:
    """One sample's rows of a table held in memory or, for large tables, read from disk."""
    if table in tables:
        frame = tables[table]
        return frame[frame["sample_id"] == sample_id] if len(frame) else frame
    from .store import has_table, read_table

    return read_table(root, table, sample_id=sample_id) if has_table(root, table) else pd.DataFrame()


def all_figures(root: Path, tables: dict[str, pd.DataFrame]) -> list[str]:
    """Draw every figure the tables allow; returns file names under ``figures/``."""
    out = Path(root) / "figures"
    names = []
    labels = tables.get("labels", pd.DataFrame())
    if len(labels):
        names.append(soh_trajectories(labels, out / "soh_trajectories.png", tables.get("manifest")))
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
    if len(tables.get("manifest", [])) and "solver_log" in tables:
        from .store import varied_parameters

        coverage = design_coverage(tables["manifest"], tables["solver_log"], out / "design_coverage.png",
                                   varied=varied_parameters(root))
        if coverage:
            names.append(coverage)
    return names

