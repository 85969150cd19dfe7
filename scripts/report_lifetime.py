"""What a finished dataset's lives look like: the figures issue 18 asks to report.

    python scripts/report_lifetime.py datasets/default-n200-seed7

Prints the solver status and RUL-source counts, the cycles and equivalent full cycles to
SOH 0.8 (10th / 50th / 90th percentiles), the fewest RPTs any cell had before its end of
life, the exponent b of SOH = 1 - a N^b, the knee count, the Spearman correlation of the
fade rate with temperature and C-rates, the mode mix at end of life, and the leak of the
hidden SEI rate into the fresh cell's capacity and R_ct. Conventions:
pybamm_factory.labels.fade.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from pybamm_factory.dataset.store import has_table, read_table
from pybamm_factory.labels import fade


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path)
    args = parser.parse_args()
    root = args.dataset
    log = read_table(root, "solver_log")
    timings = pd.read_parquet(root / "timings.parquet")  # wall times live apart from solver_log
    labels = read_table(root, "labels")
    manifest = read_table(root, "manifest")
    features = read_table(root, "impedance_features") if has_table(root, "impedance_features") else None
    ok = set(log.loc[log["status"] == "ok", "sample_id"])
    print(f"samples {len(log)}; status {log['status'].value_counts().to_dict()}")
    print(f"rul_source (ok cells) {labels[labels['sample_id'].isin(ok)].groupby('sample_id')['rul_source'].first().value_counts().to_dict()}")
    print(f"per sample: cycles represented median {log['cycles_completed'].median():.0f}, solved median "
          f"{log['cycles_solved'].median():.0f}, jumps median {log['jumps'].median():.0f}, RPTs median "
          f"{log['rpts_completed'].median():.0f}; worker wall time median {timings['wall_time_s'].median():.1f} s, "
          f"sum {timings['wall_time_s'].sum() / 60:.1f} min")
    cells = fade.per_cell(labels, manifest, ok)
    sei = "SEI solvent diffusivity [m2.s-1]"
    stats = fade.summary(cells, features, sei if sei in manifest else None)
    print(json.dumps(stats, indent=1))
    if not cells.empty:
        by_t = cells.groupby("ambient_temperature_k")[["eol_cycle", "lli_pct", "lam_ne_pct", "lam_pe_pct"]].median()
        print("median by ambient temperature:\n" + by_t.round(2).to_string())


if __name__ == "__main__":
    main()
