"""Throughput of the factory against the bare-solver limit and a naive loop (same run).

    python scripts/bench_throughput.py --samples 6

Prints samples per minute, per-sample wall-time percentiles and peak RSS for:
  factory   pybamm_factory.simulate.simulate_sample (model built once, inputs, few outputs,
            RPT curves, EIS at 3 SOCs and all labels);
  bare      the sum of the solver's own time inside those samples (aging solves + EIS
            solves): the limit the factory could reach with zero overhead;
  naive     a new pybamm.Simulation per sample with the same experiment, all variables
            kept, no EIS and no labels (a loop people write first).
and the SOH / LLI / r_ct error of the factory settings against a tight reference
(rtol 1e-8, mesh x2) on the first samples.
"""

from __future__ import annotations

import argparse
import copy
import resource
import time

import numpy as np
import pybamm

from pybamm_factory.design import build_manifest, load_design, parse_design
from pybamm_factory.simulate import simulate_sample
from pybamm_factory.simulate.aging import AgingEngine, base_parameter_values, make_model, make_solver
from pybamm_factory.simulate.sample import warm_worker


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_factory(design, rows):
    warm_worker(design)
    walls, solver = [], []
    t0 = time.perf_counter()
    results = []
    for row in rows:
        t = time.perf_counter()
        tables = simulate_sample(design, row)
        walls.append(time.perf_counter() - t)
        log = tables["solver_log"].iloc[0]
        solver.append(log["solve_time_s"] + log["eis_time_s"])
        results.append(tables)
    return time.perf_counter() - t0, np.array(walls), np.array(solver), results


def run_naive(design, rows):
    """New Simulation per sample, full experiment at once, every variable kept."""
    t0 = time.perf_counter()
    walls = []
    for row in rows:
        t = time.perf_counter()
        protocol = design.protocols[0]
        engine = AgingEngine.__new__(AgingEngine)
        engine.design, engine.protocol = design, protocol
        pv = base_parameter_values(design)
        pv.update({"Ambient temperature [K]": row["ambient_temperature_k"], "Initial temperature [K]": row["ambient_temperature_k"]})
        pv.update({n: row[n] for n in design.varied})
        engine.nominal_capacity_ah = float(pv["Nominal cell capacity [A.h]"])
        engine.rpt_current_a = design.aging.rpt_discharge_c_rate * engine.nominal_capacity_ah
        aging, rpt = engine._steps()
        pv.update({"Charge current [A]": row["charge_c_rate"] * engine.nominal_capacity_ah,
                   "Discharge current [A]": row["discharge_c_rate"] * engine.nominal_capacity_ah}, check_already_exists=False)
        k = design.aging.rpt_interval_cycles
        cycles = [rpt] + ([aging] * k + [rpt]) * (design.aging.max_cycles // k)
        sim = pybamm.Simulation(make_model(design.model, design.model_options), parameter_values=pv,
                                experiment=pybamm.Experiment(cycles), var_pts=design.mesh, solver=make_solver(design))
        sim.solve(inputs={"Charge current [A]": row["charge_c_rate"] * engine.nominal_capacity_ah,
                          "Discharge current [A]": row["discharge_c_rate"] * engine.nominal_capacity_ah})
        walls.append(time.perf_counter() - t)
    return time.perf_counter() - t0, np.array(walls)


def reference_errors(design, rows, results, n=4):
    raw = copy.deepcopy(design.raw)
    raw["solver"] = {**raw.get("solver", {}), "rtol": 1e-8, "atol": 1e-8}
    raw["mesh"] = {k: 2 * v for k, v in design.mesh.items()}
    ref = parse_design(raw, "reference")
    errs = {"soh": 0.0, "lli_pct": 0.0, "r_ct_ohm_rel": 0.0}
    for row, res in zip(rows[:n], results[:n]):
        tight = simulate_sample(ref, row)
        print(f"  {row['sample_id']}: SOH factory {np.round(res['labels']['soh'].values, 4).tolist()} "
              f"reference {np.round(tight['labels']['soh'].values, 4).tolist()}")
        errs["soh"] = max(errs["soh"], float(np.max(np.abs(tight["labels"]["soh"].values - res["labels"]["soh"].values))))
        errs["lli_pct"] = max(errs["lli_pct"], float(np.max(np.abs(tight["labels"]["lli_pct"].values - res["labels"]["lli_pct"].values))))
        a, b = tight["impedance_features"]["r_ct_ohm"].values, res["impedance_features"]["r_ct_ohm"].values
        errs["r_ct_ohm_rel"] = max(errs["r_ct_ohm_rel"], float(np.max(np.abs(a - b) / a)))
    return errs


def parallel_efficiency(design, samples: int, seed: int) -> None:
    """Whole runs (pool, writing, gate, card) at 1 and 2 workers on the same samples."""
    import tempfile
    from pathlib import Path

    from pybamm_factory import api

    walls = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            api.run(design, samples=samples, workers=workers, seed=seed, out=Path(tmp) / "run", quiet=True)
            walls[workers] = time.perf_counter() - t
    eff = walls[1] / (2 * walls[2])
    print(f"whole run, {samples} samples: 1 worker {walls[1]:.1f} s, 2 workers {walls[2]:.1f} s, "
          f"parallel efficiency {eff:.2f} (goal >= 0.8)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--design", default="benchmark")
    parser.add_argument("--samples", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--parallel-samples", type=int, default=0,
                        help="also time whole runs of this many samples at 1 and 2 workers")
    args = parser.parse_args()
    design = load_design(args.design)
    rows = build_manifest(design, args.samples, args.seed).to_dict("records")
    print(f"design {design.name}: {len(rows)} samples, {design.aging.max_cycles} cycles, EIS at {len(design.eis.socs)} SOCs, 1 process")
    f_total, f_walls, f_solver, results = run_factory(design, rows)
    f_rss = peak_rss_mib()
    n_total, n_walls = run_naive(design, rows)
    per_min = lambda total: 60 * len(rows) / total  # noqa: E731
    bare = per_min(f_solver.sum())
    print(f"{'variant':<10} {'samples/min':>12} {'p50 s':>8} {'p90 s':>8}")
    print(f"{'factory':<10} {per_min(f_total):12.2f} {np.percentile(f_walls, 50):8.2f} {np.percentile(f_walls, 90):8.2f}")
    print(f"{'bare':<10} {bare:12.2f} {'':>8} {'':>8}")
    print(f"{'naive':<10} {per_min(n_total):12.2f} {np.percentile(n_walls, 50):8.2f} {np.percentile(n_walls, 90):8.2f}")
    print(f"factory / bare-solver throughput: {per_min(f_total) / bare:.3f}  (goal >= 0.85)")
    print(f"factory / naive throughput:       {per_min(f_total) / per_min(n_total):.2f}  (goal >= 1.5; naive does no EIS)")
    print(f"peak RSS of this process after the factory run: {f_rss:.0f} MiB")
    if args.parallel_samples:
        parallel_efficiency(design, args.parallel_samples, args.seed)
    if not args.skip_reference:
        errs = reference_errors(design, rows, results)
        print(f"label error vs tight reference (rtol 1e-8, mesh x2): SOH {errs['soh']:.5f}, LLI {errs['lli_pct']:.4f} %, "
              f"r_ct {100 * errs['r_ct_ohm_rel']:.2f} % (goal: SOH <= 0.002)")


if __name__ == "__main__":
    main()
