"""Predict the degradation trajectories of cells an ageing calibration did not see.

    python scripts/predict_trajectories.py [--design designs/lgm50t-aging.yaml]
        [--trajectories tests/data/kirkaldy_lgm50t_bdf] [--usage-design kirkaldy-expt2]
        [--figure predicted.png] [--workers 2]

Simulates every cell of the trajectory table (or Kirkaldy-layout folder) under the usage
design with the values the design's calibration report fitted: shared parameters as fitted,
each per-cell parameter (a break-in) at the mean in log10 of the calibrated cells' values,
since a new cell's own is unknown. It also runs each cell with every per-cell parameter at
the lowest and at the highest of those values, the range the calibrated design spreads them
over, and counts the measured points that fall inside what those three runs span. Prints, per
cell, the largest and RMS error over the reference tests after the fresh one (SOH in
%-points like the modes). The default table holds cells B, D and F of Kirkaldy et al.'s
campaign, the second cell at each temperature; the shipped fit saw A, C and E only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pybamm_factory.calibrate import start_values
from pybamm_factory.calibrate.figures import plot_trajectories
from pybamm_factory.calibrate.trajectories import PARAMETERS, TARGETS, TrajectoryProblem, read_trajectories
from pybamm_factory.design.spec import load_design

REPO = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--design", default=str(REPO / "designs" / "lgm50t-aging.yaml"))
    ap.add_argument("--trajectories", default=str(REPO / "tests" / "data" / "kirkaldy_lgm50t_bdf"))
    ap.add_argument("--usage-design", default="kirkaldy-expt2")
    ap.add_argument("--figure", default=None, help="PNG of measured against predicted trajectories")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    measured = read_trajectories(args.trajectories)
    values = start_values(args.design)
    names = [k for k in values if k in PARAMETERS]
    per_cell = [k for k in names if isinstance(values[k], dict)]
    problem = TrajectoryProblem(load_design(args.usage_design), measured, [PARAMETERS[n] for n in names],
                                model_design=load_design(args.design))
    p = {n: PARAMETERS[n] for n in names}

    def x_of(pick):
        return problem.join({n: p[n].to_x(values[n]) if n not in per_cell
                             else pick([p[n].to_x(v) for v in values[n].values()]) for n in names})

    runs = problem.simulate_many([x_of(np.mean), x_of(np.min), x_of(np.max)], args.workers)
    predicted = runs[0]
    print(f"design {args.design}; per-cell parameters at the calibrated cells' mean in x "
          f"({', '.join(per_cell) or 'none'}); table {args.trajectories}")
    for _, e in problem.errors(predicted).iterrows():
        cols = [c for c in TARGETS if f"{c}_max_pp" in e]
        print(f"cell {e['cell_id']} ({e['temperature_c']:g} degC) max / RMS |error| %-points: "
              + ", ".join(f"{c} {e[c + '_max_pp']:.2f} / {e[c + '_rms_pp']:.2f}" for c in cols))
    for run, name in zip(runs, ("mean", "lowest", "highest")):
        for cell, g in run.groupby("cell_id"):
            if (g["status"] != "ok").any():
                print(f"cell {cell}, per-cell values at their {name}: {g['status'].iloc[0]} after cycle "
                      f"{int(g['cycle'].max())}: {g['failure_reason'].iloc[0]}")
    merged = measured[measured["cycle"] > 0].merge(
        predicted, on=["cell_id", "cycle"], suffixes=("", "_mean")).merge(
        runs[1], on=["cell_id", "cycle"], suffixes=("", "_low")).merge(
        runs[2], on=["cell_id", "cycle"], suffixes=("", "_high"))
    for col in ("soh", "lli_capacity_pct", "lam_ne_pct", "lam_pe_pct"):
        if merged[col].isna().all():
            continue
        sims = merged[[f"{col}_mean", f"{col}_low", f"{col}_high"]].to_numpy(float)
        inside = (merged[col] >= sims.min(axis=1)) & (merged[col] <= sims.max(axis=1))
        print(f"{col}: {int(inside.sum())} of {len(merged)} measured points inside the span of the per-cell range")
    if args.figure:
        path = plot_trajectories(measured, predicted, runs[1], Path(args.figure),
                                 names=("per-cell values at their lowest", "predicted (their mean)"))
        print(f"figure: {path}")


if __name__ == "__main__":
    main()
