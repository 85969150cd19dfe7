"""Throughput of the factory against the bare-solver limit and a naive loop (same run).

    python scripts/bench_throughput.py --samples 6

Prints samples per minute, per-sample wall-time percentiles and peak RSS for:
  factory   pybamm_factory.simulate.simulate_sample (model built once, inputs, few outputs,
            RPT curves, EIS at 3 SOCs and all labels);
  bare      the sum of the solver's own solve times for those samples, as PyBaMM reports
            them (Solution.solve_time of every aging step + EISSolution.solve_time of
            every spectrum): the limit the factory could reach with zero overhead;
  naive     a loop people write first, with the same outputs: a new pybamm.Simulation
            per sample with the whole experiment in one solve and every variable kept,
            a new EISSimulation per sample, the same labels and features;
  naive-aging  the naive aging solve alone (no EIS, no labels), for reference.
and the SOH / LLI / r_ct error of the factory settings against a tight reference
(rtol 1e-8, mesh x2) on the first samples.
"""

from __future__ import annotations

import argparse
import copy
import resource
import time
from types import SimpleNamespace

import numpy as np
import pybamm

from pybamm_factory.design import build_manifest, load_design, parse_design
from pybamm_factory.labels import curve_table, label_rows, spectrum_features
from pybamm_factory.parameters import make_model
from pybamm_factory.protocols import get_kind
from pybamm_factory.simulate import simulate_sample
from pybamm_factory.simulate.aging import (
    SUMMARY_COLUMNS,
    AgingEngine,
    AgingRun,
    _FailureRecorder,
    base_parameter_values,
    make_solver,
)
from pybamm_factory.simulate.eis import EisEngine
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
        timing = tables["timings"].iloc[0]  # times live outside solver_log (they differ run to run)
        solver.append(timing["solver_time_s"] + timing["eis_solver_time_s"])
        results.append(tables)
    return time.perf_counter() - t0, np.array(walls), np.array(solver), results


def _naive_simulation(design, row):
    """A new pybamm.Simulation for one sample: full experiment, parameters set as numbers."""
    engine = AgingEngine.__new__(AgingEngine)
    engine.design, engine.protocol = design, design.protocols[0]
    pv = base_parameter_values(design)
    pv.update({"Ambient temperature [K]": row["ambient_temperature_k"], "Initial temperature [K]": row["ambient_temperature_k"]})
    pv.update({n: row[n] for n in design.varied})
    engine.parameter_values = pv  # numbers, not inputs: what the snapshots read (maximum concentration)
    engine.nominal_capacity_ah = float(pv["Nominal cell capacity [A.h]"])
    engine.rpt_current_a = design.aging.rpt_discharge_c_rate * engine.nominal_capacity_ah
    engine.summary_columns = dict(SUMMARY_COLUMNS)
    engine.kind = get_kind(engine.protocol.kind)
    rpt = engine._rpt_steps()
    aging = engine.kind.cycle_steps(engine.protocol, row, engine.nominal_capacity_ah, engine.nominal_capacity_ah)
    k = design.aging.rpt_interval_cycles
    cycles = [rpt] + ([aging] * k + [rpt]) * (design.aging.max_cycles // k)
    sim = pybamm.Simulation(make_model(design.model, design.model_options), parameter_values=pv,
                            experiment=pybamm.Experiment(cycles), var_pts=design.mesh, solver=make_solver(design))
    currents = {"Charge current [A]": row["charge_c_rate"] * engine.nominal_capacity_ah,
                "Discharge current [A]": row["discharge_c_rate"] * engine.nominal_capacity_ah}
    return engine, sim, currents, k


def naive_sample(design, row, with_eis: bool):
    """What people write first: a new Simulation per sample keeping every variable, the whole
    experiment in one solve; with_eis adds a new EISSimulation per sample and the same labels."""
    engine, sim, currents, k = _naive_simulation(design, row)
    sol = sim.solve(inputs=currents)
    if not with_eis:
        return
    out = AgingRun()
    recorder = _FailureRecorder()
    rpt_cycles = [c for i, c in enumerate(sol.cycles) if i % (k + 1) == 0]
    for n, cyc in enumerate(rpt_cycles):
        engine._take_snapshot(SimpleNamespace(cycles=[cyc], last_state=cyc.last_state), n * k, out, recorder,
                              currents)
    eis = EisEngine(design)  # a new EISSimulation for this sample
    ids = {"sample_id": row["sample_id"], "cell_design_id": row["cell_design_id"]}
    label_rows(ids, out.snapshots, engine.nominal_capacity_ah, out.status)
    for snap in out.snapshots:
        curve_table(snap.discharged_ah, snap.voltage_v)
        for soc in design.eis.socs:
            z, _ = eis.impedance(eis.aged_inputs(row, snap, soc))
            spectrum_features(eis.frequencies_hz, z.real, z.imag)


def run_naive(design, rows, with_eis: bool = True):
    t0 = time.perf_counter()
    walls = []
    for row in rows:
        t = time.perf_counter()
        naive_sample(design, row, with_eis)
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
    n_total, n_walls = run_naive(design, rows, with_eis=True)
    a_total, a_walls = run_naive(design, rows, with_eis=False)
    per_min = lambda total: 60 * len(rows) / total  # noqa: E731
    bare = per_min(f_solver.sum())
    print(f"{'variant':<10} {'samples/min':>12} {'p50 s':>8} {'p90 s':>8}")
    print(f"{'factory':<10} {per_min(f_total):12.2f} {np.percentile(f_walls, 50):8.2f} {np.percentile(f_walls, 90):8.2f}")
    print(f"{'bare':<10} {bare:12.2f} {'':>8} {'':>8}")
    print(f"{'naive':<10} {per_min(n_total):12.2f} {np.percentile(n_walls, 50):8.2f} {np.percentile(n_walls, 90):8.2f}")
    print(f"{'naive-aging':<10} {per_min(a_total):12.2f} {np.percentile(a_walls, 50):8.2f} "
          f"{np.percentile(a_walls, 90):8.2f}  (aging solve only)")
    print(f"factory / bare-solver throughput: {per_min(f_total) / bare:.3f}  (goal >= 0.85)")
    print(f"factory / naive throughput:       {per_min(f_total) / per_min(n_total):.2f}  (goal >= 1.5; same outputs)")
    print(f"factory / naive-aging throughput: {per_min(f_total) / per_min(a_total):.2f}  (naive-aging skips EIS and labels)")
    print(f"peak RSS of this process after the factory run: {f_rss:.0f} MiB")
    if args.parallel_samples:
        parallel_efficiency(design, args.parallel_samples, args.seed)
    if not args.skip_reference:
        errs = reference_errors(design, rows, results)
        print(f"label error vs tight reference (rtol 1e-8, mesh x2): SOH {errs['soh']:.5f}, LLI {errs['lli_pct']:.4f} %, "
              f"r_ct {100 * errs['r_ct_ohm_rel']:.2f} % (goal: SOH <= 0.002)")


if __name__ == "__main__":
    main()
