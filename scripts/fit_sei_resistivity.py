"""Fit the SEI film resistivity to measured resistance growth (Kirkaldy et al. LG M50T cells).

    python scripts/fit_sei_resistivity.py [--design default] [--cells A C E] [--workers 2]

The SEI film is the aging model's only resistance that grows with the lithium it consumes,
and its resistance is linear in ``SEI resistivity [Ohm.m]``. So each cell is simulated under
its own usage (design ``kirkaldy-expt2``, the cell's measured mean temperature, the design's
median ageing parameters) at two resistivities; the relative DC-resistance growth at each
RPT is then a + b * rho, and rho is the least-squares fit of that line to the measured
0.1 s pulse-resistance ratio (every second RPT) of all cells at once. The resistance is the
factory's ``resistance_ohm`` label (instantaneous drop at the start of the RPT discharge,
relative to the cell's first RPT), so fitted and used quantity are the same. Prints the
fit, the per-cell errors and each run's SOH (which the resistivity barely moves).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from pybamm_factory.calibrate.trajectories import TrajectoryProblem, read_kirkaldy
from pybamm_factory.design import load_design
from pybamm_factory.labels.capacity import dc_resistance_ohm

RHO = "SEI resistivity [Ohm.m]"


def simulate(design_name: str, traj: pd.DataFrame, rho: float) -> dict:
    from pybamm_factory.simulate.aging import get_aging_engine

    usage, model = load_design("kirkaldy-expt2"), load_design(design_name)
    fixed = {k: float(v.ppf(0.5)) for k, v in model.varied.items()}
    problem = TrajectoryProblem(usage, traj, [], fixed=dict(fixed, **{RHO: rho}), compile_model=False, model_design=model)
    _, t_k, rpts = problem.cells[0]
    engine = get_aging_engine(problem.design, problem.design.protocols[0].protocol_id, t_k)
    row = problem.row([])
    engine.ensure_built(row)
    run = engine.run(row, rpt_cycles=rpts)
    r = np.array([dc_resistance_ohm(s.rest_voltage_v, float(s.voltage_v[0]), s.current_a) for s in run.snapshots])
    q = np.array([float(np.ptp(s.discharged_ah)) for s in run.snapshots])
    return {"status": run.status, "cycle": [int(s.cycle) for s in run.snapshots], "r_ratio": r / r[0], "soh": q / q[0],
            "r0_ohm": float(r[0])}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--design", default="default")
    ap.add_argument("--realdata", type=Path, default=Path("../shared/realdata"))
    ap.add_argument("--cells", nargs="+", default=["A", "C", "E"])
    ap.add_argument("--rho", nargs=2, type=float, default=(2e5, 2e4), help="the two resistivities simulated")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    t0 = time.time()
    root = args.realdata / "kirkaldy_lgm50t"
    traj = read_kirkaldy(root)
    tasks = [(cell, rho) for cell in args.cells for rho in args.rho]
    runs = Parallel(n_jobs=args.workers, backend="loky")(
        delayed(simulate)(args.design, traj[traj.cell_id == cell], rho) for cell, rho in tasks)
    k_all, y_all, c_all, per_cell = [], [], [], {}
    for cell in args.cells:
        hi, lo = (runs[tasks.index((cell, rho))] for rho in args.rho)
        measured = pd.read_csv(next(root.glob(f"* cell {cell} *Extracted Data.csv")))["0.1s Resistance (Ohms)"]
        m = (measured / measured.iloc[0]).to_numpy(float)[: len(hi["r_ratio"])]
        slope = (hi["r_ratio"] - lo["r_ratio"]) / (args.rho[0] - args.rho[1])
        offset = lo["r_ratio"] - slope * args.rho[1]
        ok = np.isfinite(m) & (np.arange(len(m)) > 0)
        k_all.append(slope[ok]), c_all.append(offset[ok]), y_all.append(m[ok])
        per_cell[cell] = (slope, offset, m, ok, hi, lo, float(measured.iloc[0]))
    k, c, y = (np.concatenate(v) for v in (k_all, c_all, y_all))
    rho = float(np.sum(k * (y - c)) / np.sum(k * k))
    print(f"fitted {RHO}: {rho:.4g} (design '{args.design}' uses {load_design(args.design).fixed.get(RHO, 'the set value')})")
    for cell, (slope, offset, m, ok, hi, lo, r0_measured) in per_cell.items():
        fit = offset + slope * rho
        single = float(np.sum(slope[ok] * (m[ok] - offset[ok])) / np.sum(slope[ok] ** 2))
        print(f"cell {cell}: R0 {1e3 * lo['r0_ohm']:.2f} mOhm (measured 0.1 s: {1e3 * r0_measured:.2f}); resistance ratio at the last RPT "
              f"measured {m[ok][-1]:.4f}, fitted {fit[ok][-1]:.4f}; max error {np.max(np.abs(fit[ok] - m[ok])):.4f}; "
              f"this cell alone: {single:.4g}; SOH at the end {hi['soh'][-1]:.4f} / {lo['soh'][-1]:.4f} at the two "
              f"resistivities; status {hi['status']} / {lo['status']}")
    print(f"wall {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
