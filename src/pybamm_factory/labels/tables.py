"""Per-sample label rows from the reference tests of one aging run."""

from __future__ import annotations

import math

from .capacity import EOL_SOH, dc_resistance_ohm, end_of_life, rpt_capacity_ah
from .curves import ica_dva_features
from .fade import knee

FARADAY_AH_PER_MOL = 96485.33212 / 3600.0


def lli_ah(summary: dict) -> float:
    """Lithium lost from the particles [A.h] (SEI, plating, lithium in lost active material)."""
    return summary.get("lli_mol", math.nan) * FARADAY_AH_PER_MOL


def lli_capacity_pct(summary: dict, first: dict, first_capacity_ah: float) -> float:
    """Lithium lost since the first RPT in % of that RPT's capacity: a measured degradation-mode
    analysis counts from its first test (the simulation's own start lies a charge before it)."""
    return 100.0 * (lli_ah(summary) - lli_ah(first)) / first_capacity_ah


def positive_frame_zero(model_window: tuple[float, float], frame_window: tuple[float, float]) -> float:
    """The model's positive lithiation (fraction of its maximum concentration) at which a
    degradation-mode analysis's positive frame reads zero.

    A DMA measures each electrode's lithiation on its own half-cell curve, from 0 at the
    curve's top (highest potential) to 1 at its end. Both scales count lithium linearly, so
    one maps onto the other by the fresh cell's two reference points, the positive
    lithiation at the top and at the bottom of the first RPT's discharge:
    ``model_window`` = (top, bottom) in the model, ``frame_window`` = (top, bottom) in the
    DMA's frame. Lithium below the frame's zero is invisible to that DMA."""
    (m_top, m_bottom), (f_top, f_bottom) = model_window, frame_window
    return m_top - f_top * (m_bottom - m_top) / (f_bottom - f_top)


def frame_window_problem(top: float, bottom: float) -> str | None:
    """Why (top, bottom) is not a positive frame window (None if it is): both within 0..1 and
    top below bottom, the positive lithiation at the top and bottom of the fresh discharge."""
    if 0.0 <= top < bottom <= 1.0:
        return None
    return (f"need 0 <= top < bottom <= 1 (the positive lithiation at the top and bottom of the fresh discharge "
            f"in the analysis's frame); got {top} and {bottom}")


def hidden_positive_lithium_pct(lam_pe_pct, first_lam_pe_pct, model_window, frame_window):
    """Lithium that left with positive material below a DMA frame's zero since the first RPT,
    in % of that RPT's capacity (scalars or arrays alike). The positive electrode's capacity at
    the first RPT is that RPT's capacity over the lithiation its discharge spans in the model
    (charge balance), so the capacity itself cancels: each fraction of the electrode lost since
    then takes ``zero`` of its lithiation with it, ``zero / (bottom - top)`` RPT capacities."""
    zero = positive_frame_zero(model_window, frame_window)
    lost_fraction = (lam_pe_pct - first_lam_pe_pct) / (100.0 - first_lam_pe_pct)
    return 100.0 * zero * lost_fraction / (model_window[1] - model_window[0])


def lli_capacity_pct_in_frame(summary: dict, first: dict, first_capacity_ah: float,
                              model_window: tuple[float, float], frame_window: tuple[float, float]) -> float:
    """:func:`lli_capacity_pct` as a DMA with the positive frame ``frame_window`` reports it
    (see :func:`positive_frame_zero`): lithium that leaves with lost positive material
    counts only above the frame's zero (:func:`hidden_positive_lithium_pct`)."""
    return lli_capacity_pct(summary, first, first_capacity_ah) - hidden_positive_lithium_pct(
        summary["lam_pe_pct"], first["lam_pe_pct"], model_window, frame_window)


def lli_capacity_pct_in_frame_table(labels, frame_window: tuple[float, float], cell: str = "sample_id"):
    """:func:`lli_capacity_pct_in_frame` for every row of a labels table (one cell per
    ``cell`` value, its first RPT the row of its smallest cycle), as a Series on its index."""
    first = labels.sort_values("cycle", kind="stable").drop_duplicates(cell).set_index(cell)  # each cell's first RPT row
    f = first.reindex(labels[cell]).set_axis(labels.index)
    return labels["lli_capacity_pct"] - hidden_positive_lithium_pct(
        labels["lam_pe_pct"], f["lam_pe_pct"], (f["pe_lithiation_top"], f["pe_lithiation_bottom"]), frame_window)


def label_rows(ids: dict, snapshots, nominal_capacity_ah: float, status: str) -> list[dict]:
    """One row per RPT: capacity, SOH, mechanisms, resistance, EOL/RUL, ICA/DVA features."""
    if not snapshots:
        return []
    capacities = [rpt_capacity_ah(s.discharged_ah) for s in snapshots]
    cycles = [s.cycle for s in snapshots]
    soh = [c / capacities[0] for c in capacities]
    eol = end_of_life(cycles, soh, EOL_SOH)
    has_knee, knee_cycle = knee(cycles, soh)
    rows = []
    for snap, cap, health in zip(snapshots, capacities, soh):
        summary = snap.summary
        throughput = summary.get("throughput_ah", math.nan)
        rul = max(eol.eol_cycle - snap.cycle, 0.0) if math.isfinite(eol.eol_cycle) else math.nan
        row = {
            **ids,
            "cycle": int(snap.cycle),
            "equivalent_full_cycles": throughput / (2 * nominal_capacity_ah),
            "elapsed_days": (snap.elapsed_s - snapshots[0].elapsed_s) / 86400.0,
            "throughput_ah": throughput,
            "capacity_ah": cap,
            "soh": health,
            "lli_pct": summary.get("lli_pct", math.nan),
            "lli_ah": lli_ah(summary),
            "lli_capacity_pct": lli_capacity_pct(summary, snapshots[0].summary, capacities[0]),
            "lam_ne_pct": summary.get("lam_ne_pct", math.nan),
            "lam_pe_pct": summary.get("lam_pe_pct", math.nan),
            "pe_lithiation_top": getattr(snap, "pe_lithiation_top", math.nan),  # snapshots built by hand may lack it
            "pe_lithiation_bottom": getattr(snap, "pe_lithiation_bottom", math.nan),
            "plating_loss_ah": summary.get("plating_loss_ah", math.nan),
            "sei_loss_ah": summary.get("sei_loss_ah", 0.0) + summary.get("sei_cracks_loss_ah", 0.0),
            "resistance_ohm": dc_resistance_ohm(snap.rest_voltage_v, float(snap.voltage_v[0]), snap.current_a),
            "eol_cycle": eol.eol_cycle,
            "rul_to_80_cycles": rul,
            "rul_source": eol.source,
            "rul_fit_rmse": eol.fit_rmse,
            "knee_onset_cycle": knee_cycle if has_knee else math.nan,
            "solver_status": status,
        }
        row.update(ica_dva_features(snap.discharged_ah, snap.voltage_v))
        rows.append(row)
    return rows

