"""Figures of the calibrations (PNG files): measured against simulated discharge curves
before and after a fit, the calibrated design's cells as a band over them, and measured
against simulated aging trajectories. matplotlib is imported, and its Agg backend chosen,
inside the functions that draw, never when the module is imported."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .curve import Curve
from .design_writer import DesignCells
from .fit import FitResult
from .problem import VoltageProblem


def _pyplot():
    """pyplot on the Agg backend, chosen where a figure is drawn (files only, no display),
    not when the module is imported."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_design_cells(problem: VoltageProblem, curves: list[Curve], fit: FitResult, cells: DesignCells, path: Path) -> Path:
    """Measured curves against the band (10th to 90th percentile) of the design's cells."""
    def draw(ax, c: Curve) -> str:
        v = cells.voltage_v[c.name]
        if len(v):
            ax.fill_between(c.discharged_ah, *np.percentile(v, [10, 90], axis=0), color="tab:blue", alpha=0.25,
                            label=f"design cells, p10-p90 ({len(v)})")
        ax.plot(c.discharged_ah, problem.simulate(c, fit.values), "-", color="tab:blue", lw=1, label="fit")
        ax.plot(c.discharged_ah, c.voltage_v, "k.", ms=2, label="measured")
        return c.name

    return _curve_panels(curves, draw, path)


PANELS_PER_ROW = 4  # a fit over many temperatures and rates wraps into rows that stay readable


def _curve_panels(curves: list[Curve], draw, path: Path) -> Path:
    """One voltage-vs-discharged-capacity panel per curve; ``draw(ax, curve)`` fills one
    and returns its title. Saved to ``path``."""
    plt = _pyplot()
    cols = min(len(curves), PANELS_PER_ROW)
    rows = -(-len(curves) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.0 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(curves):
            ax.set_visible(False)
            continue
        ax.set_title(draw(ax, curves[i]), fontsize=8)
        ax.set_xlabel("discharged [A.h]")
        if i % cols == 0:
            ax.set_ylabel("voltage [V]")
    return _save(fig, axes[0][0], path, dpi=100)


def _save(fig, legend_ax, path: Path, dpi: int) -> Path:
    """Legend on ``legend_ax``, tight layout, written to ``path`` (folders made), closed."""
    legend_ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    _pyplot().close(fig)
    return path


def plot_fit(problem: VoltageProblem, curves: list[Curve], held_out: list[Curve], fit: FitResult, path: Path) -> Path:
    """Measured vs simulated voltage, before and after, one panel per curve."""
    def draw(ax, c: Curve) -> str:
        ax.plot(c.discharged_ah, c.voltage_v, "k.", ms=2, label="measured")
        ax.plot(c.discharged_ah, problem.simulate(c, fit.initial), "--", color="tab:red", label="before")
        ax.plot(c.discharged_ah, problem.simulate(c, fit.values), "-", color="tab:blue", label="after")
        return f"{c.name} (held out)" if c in held_out else c.name

    return _curve_panels(list(curves) + list(held_out), draw, path)


def plot_scores(designed: VoltageProblem, bare: VoltageProblem, curves: list[Curve], path: Path,
                names=("design", "parameter set")) -> Path:
    """Measured voltage against a design's central cell and its parameter set's own cell, one
    panel per curve (what ``score-curves`` scores)."""
    def draw(ax, c: Curve) -> str:
        ax.plot(c.discharged_ah, c.voltage_v, "k.", ms=2, label="measured")
        ax.plot(c.discharged_ah, bare.simulate(c, []), "--", color="tab:red", label=names[1])
        ax.plot(c.discharged_ah, designed.simulate(c, []), "-", color="tab:blue", label=names[0])
        return c.name

    return _curve_panels(list(curves), draw, path)


def plot_trajectories(measured, fitted, before, path: Path, names=("start", "fitted")) -> Path:
    """Measured against simulated SOH, LLI and LAM per cell, before and after the fit
    (``names``: the legend's words for ``before`` and ``fitted``)."""
    # LLI in the convention the measured table uses (trajectories module docstring)
    lli = ("lli_pct", "LLI [% of lithium]") if measured["lli_pct"].notna().any() else \
        ("lli_capacity_pct", "LLI [% of capacity]")
    cols = [("soh", "SOH"), lli, ("lam_ne_pct", "LAM NE [%]"), ("lam_pe_pct", "LAM PE [%]")]
    cells = sorted(measured["cell_id"].unique())
    plt = _pyplot()
    fig, axes = plt.subplots(len(cells), len(cols), figsize=(3.2 * len(cols), 2.4 * len(cells)), squeeze=False)
    for r, cell in enumerate(cells):
        m = measured[measured["cell_id"] == cell]
        for c, (col, label) in enumerate(cols):
            ax = axes[r][c]
            ax.plot(m["cycle"], m[col], "ko", ms=3, label="measured")
            for frame, style, name in ((before, "C0--", names[0]), (fitted, "C3-", names[1])):
                s = frame[frame["cell_id"] == cell]
                ax.plot(s["cycle"], s[col], style, lw=1.2, label=name)
            ax.set_title(f"cell {cell}, {m['temperature_c'].iloc[0]:g} degC", fontsize=8)
            ax.set_ylabel(label, fontsize=8)
            ax.tick_params(labelsize=7)
            if r == len(cells) - 1:
                ax.set_xlabel("aging cycles", fontsize=8)
    return _save(fig, axes[0][0], path, dpi=110)
