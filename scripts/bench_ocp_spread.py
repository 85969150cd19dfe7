"""What the electrodes' OCP spreads cost and change: the default design aged with its
fitted spreads against the same design without them, in the same run.

    python scripts/bench_ocp_spread.py [--design default] [--samples 4] [--temperature-c 25]

The spreads replace the positive electrode's analytic OCP and the negative electrode's
cubic interpolant by cubic interpolants of the particle-population curves
(simulate/ocp_spread.py). Both engines age the same manifest rows at one ambient
temperature with the design's cycle jumps. Prints, per engine: the build time, aged cells
per CPU-minute (process CPU of ``AgingEngine.run``, builds excluded), cycles per CPU-second,
peak RSS; the throughput ratio; and how far the spreads move the ageing: the largest
difference in RPT SOH and LLI, and in the cycle where SOH crosses 0.8, between the two.
"""

from __future__ import annotations

import copy

import numpy as np
from bench_compile import age_each, engine_arguments, largest_differences, trajectory  # scripts/ is on the path

from pybamm_factory.design import build_manifest, load_design, parse_design
from pybamm_factory.parameters import SPREAD_SUFFIX


def eol_cycle(cycles, soh, threshold=0.8):
    below = np.flatnonzero(soh < threshold)
    if not below.size or below[0] == 0:
        return np.nan
    i = below[0]
    return float(np.interp(threshold, [soh[i], soh[i - 1]], [cycles[i], cycles[i - 1]]))


def main():
    args = engine_arguments(__doc__)
    base = load_design(args.design)
    spreads = {k: v for k, v in base.fixed.items() if k.endswith(SPREAD_SUFFIX)}
    if not spreads:
        raise SystemExit(f"{args.design}: the design fixes no OCP voltage spread; nothing to compare")
    raw = copy.deepcopy(base.raw)
    raw["fixed"] = {k: v for k, v in raw.get("fixed", {}).items() if k not in spreads}
    designs = {"no spread": parse_design(raw, f"{args.design} without spreads"), "spreads": base}
    rows = build_manifest(base, args.samples, args.seed).to_dict("records")
    print(f"{args.design}: {', '.join(f'{k} = {1000 * v:.2f} mV' for k, v in spreads.items())}; "
          f"{len(rows)} cells at {args.temperature_c:g} degC")
    results = age_each(designs, rows, args.temperature_c + 273.15)
    (cpu_a, runs_a), (cpu_b, runs_b) = results["no spread"], results["spreads"]
    print(f"ratio spreads / no spread throughput: {cpu_a / cpu_b:.2f}x")
    d_soh, d_lli = largest_differences(runs_a, runs_b)
    d_eol = 0.0
    for a, b in zip(runs_a, runs_b):
        ea, eb = eol_cycle(*trajectory(a)[:2]), eol_cycle(*trajectory(b)[:2])
        if np.isfinite(ea) and np.isfinite(eb):
            d_eol = max(d_eol, abs(eb / ea - 1))
    print(f"largest difference, spreads against none (interpolated at the no-spread RPT cycles): "
          f"SOH {d_soh:.4f}, LLI {d_lli:.3f} %-points, cycles to SOH 0.8 {100 * d_eol:.1f} %")


if __name__ == "__main__":
    main()
