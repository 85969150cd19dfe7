"""Aging throughput with the model compiled to C (``solver.compile``) against the same
engine interpreted by CasADi's virtual machine, measured in the same run.

    python scripts/bench_compile.py [--design default] [--samples 4] [--temperature-c 25]

Both engines age the same manifest rows (all at one ambient temperature) with cycle jumps
as the design sets them. Prints, per engine: the build time (the first compile on a
machine includes gcc; later runs load the cached library), aged cells per CPU-minute
(process CPU time of ``AgingEngine.run``, builds excluded), cycles represented per
CPU-second, peak RSS, the ratio of the two throughputs, and the largest difference in
RPT SOH and LLI between the two (they differ by floating-point order only).
"""

from __future__ import annotations

import argparse
import copy
import resource
import time

import numpy as np

from pybamm_factory.design import build_manifest, load_design, parse_design
from pybamm_factory.simulate.aging import AgingEngine


def age(design, rows, temperature_k):
    t0 = time.perf_counter()
    engine = AgingEngine(design, design.protocols[0], temperature_k)
    engine.ensure_built(rows[0])
    build_s = time.perf_counter() - t0
    cpu, runs = 0.0, []
    for row in rows:
        c0 = time.process_time()
        runs.append(engine.run(row))
        cpu += time.process_time() - c0
    return build_s, cpu, runs


def trajectory(run):
    """RPT cycles, SOH (capacity over the first RPT's) and LLI [%] of one aging run."""
    cycles = np.array([s.cycle for s in run.snapshots], float)
    capacity = np.array([np.ptp(s.discharged_ah) for s in run.snapshots])
    lli = np.array([s.summary["lli_pct"] for s in run.snapshots])
    return cycles, capacity / capacity[0], lli


def largest_differences(runs_a, runs_b) -> tuple[float, float]:
    """Largest SOH and LLI differences between paired runs. The two put fade-step RPTs a
    few cycles apart: b's trajectory is interpolated at a's RPT cycles, within b's range."""
    d_soh = d_lli = 0.0
    for a, b in zip(runs_a, runs_b):
        ca, sa, la = trajectory(a)
        cb, sb, lb = trajectory(b)
        inside = ca <= cb.max()
        d_soh = max(d_soh, float(np.max(np.abs(sa[inside] - np.interp(ca[inside], cb, sb)))))
        d_lli = max(d_lli, float(np.max(np.abs(la[inside] - np.interp(ca[inside], cb, lb)))))
    return d_soh, d_lli


def engine_arguments(doc: str) -> argparse.Namespace:
    """The options of a two-engine comparison: design, samples, temperature, seed."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--design", default="default")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--temperature-c", type=float, default=25.0)
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args()


def age_each(designs: dict, rows, temperature_k) -> dict:
    """Age the rows with each design's engine; print and return (CPU s, runs) per name."""
    results = {}
    for name, design in designs.items():
        build_s, cpu_s, runs = age(design, rows, temperature_k)
        cycles = sum(r.cycles_completed for r in runs)
        results[name] = (cpu_s, runs)
        print(f"{name:12s} build {build_s:6.1f} s | {len(runs)} cells, {cycles} cycles, statuses "
              f"{sorted({r.status for r in runs})} | {60 * len(runs) / cpu_s:6.2f} cells per CPU-minute, "
              f"{cycles / cpu_s:7.1f} cycles per CPU-s | peak RSS "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return results


def main():
    args = engine_arguments(__doc__)
    base = load_design(args.design)
    designs = {}
    for compiled in (False, True):
        raw = copy.deepcopy(base.raw)
        raw.setdefault("solver", {})["compile"] = compiled
        designs["compiled" if compiled else "interpreted"] = parse_design(raw, f"{args.design} (compile {compiled})")
    manifest = build_manifest(designs["interpreted"], args.samples, args.seed)
    rows = [r for r in manifest.to_dict("records")]
    results = age_each(designs, rows, args.temperature_c + 273.15)
    (cpu_i, runs_i), (cpu_c, runs_c) = results["interpreted"], results["compiled"]
    print(f"ratio compiled / interpreted throughput: {cpu_i / cpu_c:.2f}x")
    d_soh, d_lli = largest_differences(runs_i, runs_c)
    print(f"largest difference between the two trajectories (compiled interpolated at the interpreted RPT cycles): "
          f"SOH {d_soh:.5f}, LLI {d_lli:.4f} %-points")


if __name__ == "__main__":
    main()
