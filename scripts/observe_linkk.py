"""At what EIS noise level does the factory's lin-KK gate start failing?

Adds the measurement layer's impedance noise (``pybamm_factory.observe``: Gaussian noise on Z'
and Z'', each with standard deviation level x |Z|, growing as (corner / f) ** exponent below
the corner frequency) to every sweep of a dataset, at each level and for several seeds, and
counts the sweeps that ``quality.checks.check_kk`` flags (lin-KK residual > KK_THRESHOLD). No
gain error: a constant gain is KK-consistent and changes nothing here.

Usage:
    pybamm-factory run --design smoke --samples 4 --workers 2 --out /tmp/smoke4
    python scripts/observe_linkk.py /tmp/smoke4 --seeds 10
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import pandas as pd

from pybamm_factory.dataset.store import read_table
from pybamm_factory.labels.impedance import KK_THRESHOLD
from pybamm_factory.observe import kk_failure_share, load_profile

LEVELS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 2.0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", help="a finished dataset with impedance spectra")
    parser.add_argument("--levels", default=",".join(f"{x:g}" for x in LEVELS),
                        help="EIS noise levels, %% of |Z| (standard deviation of Z' and of Z'')")
    parser.add_argument("--seeds", type=int, default=10, help="seeds per level (each observes every sweep once)")
    parser.add_argument("--corner-hz", type=float, default=1.0, help="corner frequency of the low-frequency growth")
    parser.add_argument("--exponents", default="0,0.5", help="growth exponents below the corner (0 = white)")
    args = parser.parse_args(argv)
    spectra = read_table(args.dataset, "spectra")
    if spectra.empty:
        print(f"{args.dataset}: no impedance spectra", file=sys.stderr)
        return 2
    levels = [float(x) for x in args.levels.split(",") if x.strip()]
    sweeps = spectra["sweep_id"].nunique()
    f = spectra["frequency_hz"]
    print(f"{args.dataset}: {sweeps} sweeps of {spectra.groupby('sweep_id').size().iloc[0]} frequencies, "
          f"{f.min():g}-{f.max():g} Hz; {args.seeds} seeds per level; lin-KK threshold {KK_THRESHOLD}")
    tables = []
    for exponent in (float(x) for x in args.exponents.split(",") if x.strip()):
        profile = replace(load_profile("ideal"), eis_noise_corner_hz=args.corner_hz, eis_noise_low_frequency_exponent=exponent)
        table = kk_failure_share(spectra, profile, levels, range(args.seeds))
        label = "white" if exponent == 0 else f"x(f_c/f)^{exponent:g} below {args.corner_hz:g} Hz"
        tables.append(table.assign(noise=label))
    out = pd.concat(tables, ignore_index=True)
    wide = out.pivot_table(index="level_pct", columns="noise", values=["share", "median_kk_residual"], sort=False)
    print("share of sweeps failing lin-KK (and median lin-KK residual) per EIS noise level [% of |Z|]:")
    print("| noise % of |Z| | " + " | ".join(f"{n}: failing" for n in out["noise"].unique()) + " | "
          + " | ".join(f"{n}: median residual" for n in out["noise"].unique()) + " |")
    print("|---" * (1 + 2 * out["noise"].nunique()) + "|")
    for level, row in wide.iterrows():
        shares = " | ".join(f"{row[('share', n)]:.0%}" for n in out["noise"].unique())
        medians = " | ".join(f"{row[('median_kk_residual', n)]:.4f}" for n in out["noise"].unique())
        print(f"| {level:g} | {shares} | {medians} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
