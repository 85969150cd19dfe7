"""Simulate the kirkaldy-expt2 design at OKane2022's own degradation rates, one cell per
chamber temperature, and print it beside the measured LG M50T cells.

    python scripts/compare_kirkaldy.py [--realdata ../shared/realdata] [--workers 3]

Measured: ``kirkaldy_lgm50t/`` (C/10 capacity per RPT; degradation modes from the authors'
OCV fits). Simulated: SOH from the C/10 RPT discharge, LAM from PyBaMM's summary variables,
LLI as lithium lost over the fresh C/10 capacity (the measured files' convention:
``lli_capacity_pct``, docs/calibration.md), 0.1 s pulse resistance at 50 % SOC. The
uncalibrated comparison the aging calibration starts from; nothing here is fitted.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

LITERATURE = {  # OKane2022's own values (the centre of the design's spreads)
    "SEI solvent diffusivity [m2.s-1]": 2.5e-22,
    "Lithium plating kinetic rate constant [m.s-1]": 1e-9,
    "Negative electrode LAM constant proportional term [s-1]": 2.7778e-7,
    "Positive electrode LAM constant proportional term [s-1]": 2.7778e-7,
}
CELLS = {10: "A", 25: "C", 40: "E"}


def simulate(temperature_c: float) -> pd.DataFrame:
    from pybamm_factory.design import load_design
    from pybamm_factory.labels.tables import lli_capacity_pct
    from pybamm_factory.simulate.aging import AgingEngine

    design = load_design("kirkaldy-expt2")
    engine = AgingEngine(design, design.protocols[0], temperature_c + 273.15)
    t0 = time.perf_counter()
    run = engine.run(dict(LITERATURE))
    s = run.snapshots
    q0 = s[0].discharged_ah[-1]
    pulse = [next((r for soc, r, _ in x.pulses if abs(soc - 0.5) < 1e-9), np.nan) for x in s]
    return pd.DataFrame({"temperature_c": temperature_c, "cycle": [x.cycle for x in s],
                         "soh": [x.discharged_ah[-1] / q0 for x in s],
                         "lli_capacity_pct": [lli_capacity_pct(x.summary, s[0].summary, q0) for x in s],
                         "lam_ne_pct": [x.summary["lam_ne_pct"] for x in s],
                         "lam_pe_pct": [x.summary["lam_pe_pct"] for x in s], "r_0p1s_mohm": np.array(pulse) * 1e3,
                         "status": run.status, "cpu_s": time.perf_counter() - t0,
                         "cycles_solved": run.cycles_solved, "jumps": run.jumps})


def measured(root: Path, temperature_c: int) -> pd.DataFrame:
    cell = CELLS[temperature_c]
    base = root / "kirkaldy_lgm50t"
    csv = pd.read_csv(next(base.glob(f"Expt 2,2 - cell {cell} (*) - Extracted Data.csv")))
    dm = pd.read_csv(next((base / "DMA Output" / f"cell {cell}").glob("*DM data*.csv")))
    n = min(len(csv), len(dm))
    return pd.DataFrame({"cycle": csv["Ageing Cycles"][:n], "soh": dm["SoH"][:n], "lli_capacity_pct": 100 * dm["LLI"][:n],
                         "lam_ne_pct": 100 * dm["LAM NE_tot"][:n], "lam_pe_pct": 100 * dm["LAM PE"][:n],
                         "r_0p1s_mohm": 1e3 * csv["0.1s Resistance (Ohms)"][:n]})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdata", default=str(Path(__file__).resolve().parents[2] / "shared" / "realdata"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with ProcessPoolExecutor(args.workers) as pool:
        sims = list(pool.map(simulate, CELLS))
    cols = ["soh", "lli_capacity_pct", "lam_ne_pct", "lam_pe_pct", "r_0p1s_mohm"]
    for sim in sims:
        t = int(sim["temperature_c"].iloc[0])
        meas = measured(Path(args.realdata), t)
        print(f"\n{t} degC (cell {CELLS[t]}): simulated {sim['status'].iloc[0]}, {sim['cpu_s'].iloc[0]:.0f} CPU s, "
              f"{sim['cycles_solved'].iloc[0]} cycles solved, {sim['jumps'].iloc[0]} jumps")
        merged = meas.merge(sim[["cycle"] + cols], on="cycle", how="outer", suffixes=("_meas", "_sim")).sort_values("cycle")
        header = "cycle  " + "  ".join(f"{c:>11s} meas/sim" for c in cols)
        print(header)
        for _, r in merged.iterrows():
            print(f"{int(r['cycle']):5d}  " + "  ".join(f"{r[c + '_meas']:9.3f}/{r[c + '_sim']:<9.3f}" for c in cols))


if __name__ == "__main__":
    main()
