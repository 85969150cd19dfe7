"""Where a fitted ageing design's simulated lithium loss goes, beside the LG M50T cells' LLI.

    python scripts/lli_by_sink.py [--design designs/lgm50t-aging.yaml] [--realdata ../shared/realdata]

Simulates the Kirkaldy et al. cells (usage ``kirkaldy-expt2``, the fitted values of the
design's calibration report, each cell its own per-cell values) and prints, at every fourth
RPT, the lithium lost since the first RPT in % of its capacity: all of it (PyBaMM's books),
the part the cells' degradation-mode analysis can see (lithium above its positive frame's
zero, :func:`pybamm_factory.labels.tables.lli_capacity_pct_in_frame`), the measured LLI, and
the part that left with lost negative or positive active material (PyBaMM's "Loss of lithium
due to loss of active material in ... electrode"). Also prints both denominators of PyBaMM's
and the cells' convention, and the positive electrode's lithiation at the top and bottom of
the first C/10 RPT in the model and in the cells' analysis (1 - ``PE_hi``, 1 - ``PE_lo``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pybamm_factory.calibrate import start_values
from pybamm_factory.calibrate.trajectories import PARAMETERS, TrajectoryProblem, read_trajectories, starting_x
from pybamm_factory.design.spec import load_design
from pybamm_factory.labels.tables import (
    FARADAY_AH_PER_MOL,
    lli_ah,
    lli_capacity_pct,
    lli_capacity_pct_in_frame,
    positive_frame_zero,
)
from pybamm_factory.simulate.aging import get_aging_engine

SINK = "Loss of lithium due to loss of active material in {} electrode [mol]"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--design", default="designs/lgm50t-aging.yaml")
    ap.add_argument("--realdata", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "realdata")
    args = ap.parse_args()
    root = args.realdata / "kirkaldy_lgm50t"
    measured = read_trajectories(root)
    values = start_values(args.design)
    per_cell = tuple(k for k, v in values.items() if isinstance(v, dict))
    names = [k for k in values if k in PARAMETERS]
    problem = TrajectoryProblem(load_design("kirkaldy-expt2"), measured, [PARAMETERS[n] for n in names],
                                model_design=load_design("default"), per_cell=per_cell)
    x = starting_x(problem, values)
    for cell, t_k, rpts in problem.cells:
        engine = get_aging_engine(problem.design, problem.design.protocols[0].protocol_id, t_k)
        for side in ("negative", "positive"):
            engine.summary_columns[SINK.format(side)] = side
        row = problem.row(x, cell)
        engine.ensure_built(row)
        run = engine.run(row, rpt_cycles=rpts)
        first = run.snapshots[0]
        q0 = np.ptp(first.discharged_ah)
        model = (first.pe_lithiation_top, first.pe_lithiation_bottom)
        frame = problem.frames[cell]
        if frame is None:
            raise SystemExit(f"{root}: cell {cell} has no positive frame (pe_lithiation_top / pe_lithiation_bottom)")
        last = run.snapshots[-1].summary
        lithium_ah = 100 * lli_ah(last) / last["lli_pct"]  # the denominator of PyBaMM's lli_pct
        print(f"cell {cell} ({t_k - 273.15:.1f} degC): all lithium in the particles {lithium_ah:.2f} A.h, first RPT "
              f"capacity {q0:.2f} A.h; positive lithiation at the top / bottom of the first RPT: model "
              f"{model[0]:.3f} / {model[1]:.3f}, the cell's analysis {frame[0]:.3f} / {frame[1]:.3f} (its zero is the "
              f"model's {positive_frame_zero(model, frame):.3f})")
        m = measured[measured["cell_id"] == cell].set_index("cycle")
        for s in run.snapshots[4::4] + ([run.snapshots[-1]] if len(run.snapshots) % 4 != 1 else []):
            sink = {side: 100 * FARADAY_AH_PER_MOL * (s.summary[side] - first.summary[side]) / q0
                    for side in ("negative", "positive")}
            print(f"  cycle {s.cycle:5d}: LLI simulated {lli_capacity_pct(s.summary, first.summary, q0):5.2f} "
                  f"(with negative material {sink['negative']:4.2f}, with positive {sink['positive']:4.2f}), "
                  f"of it above the analysis's zero {lli_capacity_pct_in_frame(s.summary, first.summary, q0, model, frame):5.2f}, "
                  f"measured {m.loc[s.cycle, 'lli_capacity_pct']:5.2f}; LAM_PE simulated {s.summary['lam_pe_pct']:4.2f}, "
                  f"measured {m.loc[s.cycle, 'lam_pe_pct']:4.2f} (% of the first RPT's capacity / of the electrode)")

if __name__ == "__main__":
    main()
