"""Cycle jumps against brute force: accuracy and cells-to-end-of-life per CPU-minute.

    python scripts/bench_lifetime.py                 # the seven cells below, 1 process
    python scripts/bench_lifetime.py --workers 2     # two cells at a time (CPU time per cell is unchanged)
    python scripts/bench_lifetime.py --cells 25C-mid --tolerance 0.3
    python scripts/bench_lifetime.py --explore       # OKane2022's own values, jumped, to 8000 cycles
    python scripts/bench_lifetime.py --settings      # the default's mesh and tolerances against tight ones

Each cell is aged with the default design's physics and settings, once with the
design's adaptive cycle jumps and once with every cycle solved (``cycle_jump: off``),
with the exact run's reference tests forced to the cycles where the jumped run put
them, so both are compared at the same RPTs. Printed per cell: the largest SOH, LLI and
LAM differences over the RPTs, the end-of-life cycle (SOH 0.8, interpolated between
RPTs) of both, the CPU seconds of both (time.process_time of the aging solves, EIS not
included: it is the same in both) and their ratio; then cells-to-EOL per CPU-minute for
both, the ratio, and the peak RSS. Targets (issue 18): SOH within 0.005, LLI and LAM
within 0.3 %-points at every RPT, EOL within 3 %, >= 20x for cells of >= 1000 equivalent
full cycles.
"""

from __future__ import annotations

import argparse
import copy
import math
import resource
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np

from pybamm_factory.design import load_design, parse_design
from pybamm_factory.labels.capacity import end_of_life
from pybamm_factory.simulate.aging import AgingEngine

SEI = "SEI solvent diffusivity [m2.s-1]"
PLATING = "Lithium plating kinetic rate constant [m.s-1]"
LAM_NE = "Negative electrode LAM constant proportional term [s-1]"
LAM_PE = "Positive electrode LAM constant proportional term [s-1]"
AM_PE = "Positive electrode active material volume fraction"

# Cells inside the default design's ranges, spanning temperature, C-rates and which
# mechanism leads: (ambient degC, charge C, discharge C, SEI, plating, LAM_ne, LAM_pe).
CELLS = {
    "25C-mid": (25, 0.5, 1.0, 1.4e-21, 1e-9, 1.6e-6, 1.6e-6),
    "25C-fast-LAM-knee": (25, 1.0, 2.0, 1.4e-21, 1e-9, 2.7778e-6, 2.7778e-6),
    "40C-SEI-led": (40, 0.5, 1.0, 2.5e-21, 1e-9, 8.8e-7, 8.8e-7),
    "40C-fast": (40, 1.0, 2.0, 2.5e-21, 3e-9, 2.7778e-6, 2.7778e-6),
    "10C-plating": (10, 1.0, 0.5, 7.9e-22, 1e-8, 8.8e-7, 8.8e-7),
    "10C-gentle": (10, 0.3, 0.5, 1.4e-21, 1e-9, 1.6e-6, 1.6e-6),
    "10C-fast-discharge": (10, 0.35, 1.8, 1.5e-21, 2.1e-10, 2.68e-6, 1.97e-6),
}
LITERATURE = (25, 0.5, 1.0, 2.5e-22, 1e-9, 2.7778e-7, 2.7778e-7)


def designs(tolerance: float | None):
    jumped = load_design("default")
    raw = copy.deepcopy(jumped.raw)
    if tolerance is not None:
        raw["aging"]["cycle_jump"]["tolerance"] = tolerance
        jumped = parse_design(raw, "default (tolerance override)")
    exact_raw = copy.deepcopy(raw)
    exact_raw["aging"]["cycle_jump"] = "off"
    exact_raw["aging"].pop("rpt_fade_step", None)
    return jumped, parse_design(exact_raw, "default (cycle_jump off)")


def row_of(design, cell) -> dict:
    temperature_c, charge, discharge, sei, plating, lam_ne, lam_pe = cell
    row = {SEI: sei, PLATING: plating, LAM_NE: lam_ne, LAM_PE: lam_pe, AM_PE: 0.665,
           "charge_c_rate": charge, "discharge_c_rate": discharge}
    return {k: v for k, v in row.items() if k in design.varied or k.endswith("c_rate")}


def age(design, cell, rpt_cycles=None):
    engine = AgingEngine(design, design.protocols[0], cell[0] + 273.15)
    row = row_of(design, cell)
    engine.ensure_built(row)
    cpu = time.process_time()
    run = engine.run(row, rpt_cycles=rpt_cycles)
    return run, time.process_time() - cpu, engine.nominal_capacity_ah


def trajectory(run, nominal_ah):
    q0 = np.ptp(run.snapshots[0].discharged_ah)
    rows = []
    for snap in run.snapshots:
        s = snap.summary
        rows.append((snap.cycle, np.ptp(snap.discharged_ah) / q0, s.get("lli_pct", np.nan), s.get("lam_ne_pct", np.nan),
                     s.get("lam_pe_pct", np.nan), s.get("throughput_ah", np.nan) / (2 * nominal_ah)))
    return np.array(rows)


def compare(name, tolerance):
    jumped_design, exact_design = designs(tolerance)
    cell = CELLS[name]
    jumped, cpu_jump, nominal = age(jumped_design, cell)
    exact, cpu_exact, _ = age(exact_design, cell, rpt_cycles=jumped.rpt_cycles)
    a, b = trajectory(jumped, nominal), trajectory(exact, nominal)
    n = min(len(a), len(b))
    same = np.array_equal(a[:n, 0], b[:n, 0])
    d = np.abs(a[:n] - b[:n])
    # only observed ends of life are compared: a run that stopped (or failed) before SOH
    # 0.8 has no EOL to compare, and a projected one would measure the projection
    eol_j, eol_e = (e.eol_cycle if e.source == "observed" else math.nan
                    for e in (end_of_life(a[:, 0], a[:, 1]), end_of_life(b[:, 0], b[:, 1])))
    efc_e = float(np.interp(eol_e, b[:, 0], b[:, 5])) if math.isfinite(eol_e) else float(b[-1, 5])
    return {
        "cell": name, "status": f"{jumped.status}/{exact.status}", "rpts": n, "same_rpt_cycles": same,
        "d_soh": float(d[:, 1].max()), "d_lli": float(d[:, 2].max()), "d_lam_ne": float(d[:, 3].max()),
        "d_lam_pe": float(d[:, 4].max()), "eol_jump": eol_j, "eol_exact": eol_e,
        "eol_err_pct": 100 * abs(eol_j - eol_e) / eol_e if math.isfinite(eol_e) and math.isfinite(eol_j) else math.nan,
        "efc_eol": efc_e, "cycles": exact.cycles_completed, "solved_jump": jumped.cycles_solved, "jumps": jumped.jumps,
        "cpu_jump_s": cpu_jump, "cpu_exact_s": cpu_exact,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "reasons": (jumped.failure_reason, exact.failure_reason),
    }


def explore():
    jumped_design, _ = designs(None)
    raw = copy.deepcopy(jumped_design.raw)
    raw["aging"].update({"max_cycles": 8000, "rpt_interval_cycles": 1000, "stop_soh": 0.5})
    design = parse_design(raw, "default at OKane2022's own values")
    run, cpu, nominal = age(design, LITERATURE)
    print(f"OKane2022's own values, 25 degC, 0.5C/1C, jumped ({cpu:.0f} CPU s, {run.cycles_solved} cycles solved):")
    for cycle, soh, lli, lam_ne, lam_pe, efc in trajectory(run, nominal):
        print(f"  cycle {cycle:5.0f}  EFC {efc:6.0f}  SOH {soh:.4f}  LLI {lli:5.2f} %  LAM_ne {lam_ne:5.2f} %  LAM_pe {lam_pe:5.2f} %")


def settings_check(names=("25C-mid", "10C-plating")):
    for name in names:
        _settings_check(name)


def _settings_check(name):
    """The default's coarse mesh and rtol = atol = 1e-5 against the 12/6/12 mesh at 1e-8,
    both jumped, the tight run's RPTs forced to the default run's cycles."""
    design, _ = designs(None)
    raw = copy.deepcopy(design.raw)
    raw["mesh"] = {"x_n": 12, "x_s": 6, "x_p": 12, "r_n": 8, "r_p": 8}
    raw["solver"] = {"name": "IDAKLUSolver", "rtol": 1e-8, "atol": 1e-8}
    tight = parse_design(raw, "default, fine mesh, tolerances 1e-8")
    run, cpu, nominal = age(design, CELLS[name])
    ref, cpu_ref, _ = age(tight, CELLS[name], rpt_cycles=run.rpt_cycles)
    a, b = trajectory(run, nominal), trajectory(ref, nominal)
    n = min(len(a), len(b))
    print(f"{name}: default settings {cpu:.1f} CPU s, tight {cpu_ref:.1f} CPU s ({cpu_ref / cpu:.1f}x); "
          f"over {n} RPTs to cycle {a[n - 1, 0]:.0f}: max |dSOH| {np.abs(a[:n, 1] - b[:n, 1]).max():.4f}, "
          f"max |dLLI| {np.abs(a[:n, 2] - b[:n, 2]).max():.3f} %-points, "
          f"max |dLAM| {np.abs(a[:n, 3:5] - b[:n, 3:5]).max():.3f} %-points")


def print_cell(r):
    print(f"{r['cell']:18s} {r['status']:>9s} {r['rpts']:4d} {r['d_soh']:7.4f} {r['d_lli']:6.3f} {r['d_lam_ne']:6.3f} "
          f"{r['d_lam_pe']:6.3f} {r['eol_jump']:8.0f} {r['eol_exact']:9.0f} {r['eol_err_pct']:6.2f} {r['efc_eol']:7.0f} "
          f"{r['solved_jump']:4d}/{r['cycles']:<4d} {r['cpu_jump_s']:8.1f} {r['cpu_exact_s']:9.1f} "
          f"{r['cpu_exact_s'] / r['cpu_jump_s']:6.1f}", flush=True)
    if not r["same_rpt_cycles"]:
        print(f"   note: RPT cycles differ between the runs; {r['reasons']}", flush=True)
    elif r["reasons"] != ("", ""):
        print(f"   reasons: {r['reasons']}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", nargs="*", default=list(CELLS), choices=list(CELLS))
    parser.add_argument("--tolerance", type=float, default=None, help="override the design's jump tolerance")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--explore", action="store_true", help="age OKane2022's own values (jumped only) and stop")
    parser.add_argument("--settings", action="store_true", help="check the default's mesh and tolerances and stop")
    args = parser.parse_args()
    if args.explore:
        explore()
        return
    if args.settings:
        settings_check()
        return
    wall = time.perf_counter()
    print(f"{'cell':18s} {'status':>9s} {'RPTs':>4s} {'dSOH':>7s} {'dLLI':>6s} {'dLAMne':>6s} {'dLAMpe':>6s} "
          f"{'EOL jump':>8s} {'EOL exact':>9s} {'err %':>6s} {'EFC@EOL':>7s} {'solved':>7s} {'CPU jump':>8s} {'CPU exact':>9s} {'ratio':>6s}",
          flush=True)
    results = []
    with ProcessPoolExecutor(args.workers) as pool:  # each cell's line as soon as it is done
        for future in as_completed([pool.submit(compare, name, args.tolerance) for name in args.cells]):
            results.append(future.result())
            print_cell(results[-1])
    ok = [r for r in results if math.isfinite(r["eol_exact"])]
    for label, group in (("all cells reaching EOL", ok), (">= 1000 EFC at EOL", [r for r in ok if r["efc_eol"] >= 1000])):
        if not group:
            continue
        jump_rate = 60 * len(group) / sum(r["cpu_jump_s"] for r in group)
        exact_rate = 60 * len(group) / sum(r["cpu_exact_s"] for r in group)
        print(f"{label} ({len(group)}): cells-to-EOL per CPU-minute: jumped {jump_rate:.2f}, brute force {exact_rate:.3f}, "
              f"ratio {jump_rate / exact_rate:.1f}x")
    print("accuracy targets: SOH 0.005, LLI/LAM 0.3 %-points, EOL 3 %: "
          f"worst {max(r['d_soh'] for r in results):.4f}, {max(max(r['d_lli'], r['d_lam_ne'], r['d_lam_pe']) for r in results):.3f}, "
          f"{max((r['eol_err_pct'] for r in ok), default=math.nan):.2f} %")
    print(f"peak RSS per worker: {max(r['peak_rss_mib'] for r in results):.0f} MiB; wall {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
