"""Calibrate on some cells, generate, train, predict another: the calibrate -> generate ->
train -> predict workflow with the predicted cell kept out of the ageing calibration.

    python scripts/eval_held_out_population.py [--design docs/experiments/kirkaldy-usage-population.yaml]
        [--report designs/lgm50t-aging_aging_calibration/aging_calibration_report.json]
        [--realdata ../shared/realdata] [--samples 40] [--workers 2] [--seed 7] [--model-seed 0]
        [--out datasets/held-out] [--features capacity,usage]

The ageing fit's report holds, for each cell, a refit on the other cells alone
(``leave_one_temperature_out``). For each cell this script writes the population design
with its ageing ranges re-centred on that refit, runs it, trains on it
(``pybamm_factory.learn.train``) and predicts the held-out cell's LLI, LAM_NE and LAM_PE from
its RPT summary (Kirkaldy et al.'s layout). The three held-out predictions are pooled and
scored against the same baselines as ``eval_real_cells.py``: (b) the cells' own mean and
(c) a random forest trained on the real cells, leave one cell out, on the same features
and with the same seed (``--model-seed``, 0 as there).

How each ageing range is moved (stated in each written design's ``source``):

* a parameter the fit identified: the design's range shifted (in log10 for log-uniform,
  linearly for uniform) so its centre is the refit's value; its width is kept;
* a per-cell parameter (the break-in factors): log-uniform over the other cells' own fitted
  values (from the full fit; the held-out cell's value is not used);
* a parameter the fit did not identify: the design's range as it is (the data said
  nothing about it, held out or not).

What remains shared with the held-out cell: the full fit's other cells' per-cell values were
fitted beside it, and the design's widths came from fits that saw all cells.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from eval_real_cells import kirkaldy_observations, loco  # the scorer beside this script (scripts/ is on sys.path)

from pybamm_factory import api
from pybamm_factory.calibrate.trajectories import PARAMETERS
from pybamm_factory.design import parse_design
from pybamm_factory.learn.features import feature_columns, parse_groups
from pybamm_factory.learn.predict import load_model, predict_frame
from pybamm_factory.learn.train import train

TARGETS = ("lli_capacity_pct", "lam_ne_pct", "lam_pe_pct")  # LLI in the DMA files' convention


def held_out_design(raw: dict, report: dict, cell: str) -> dict:
    """The population design with its ageing ranges moved to the fit without ``cell``."""
    raw = copy.deepcopy(raw)
    loo = next(r for r in report["leave_one_temperature_out"] if r["held_out_cell"] == cell)
    raw["name"] = f"{raw['name']}-without-{cell}"
    for name, fitted in report["parameters"].items():
        spec = raw["varied"].get(name)
        if spec is None:
            continue
        low, high = float(spec["low"]), float(spec["high"])
        if "per_cell" in fitted:
            values = [v for c, v in fitted["per_cell"].items() if c != cell]
            if min(values) <= 0 or min(values) == max(values):
                raise ValueError(f"{name}: the other cells' values {values} give no log-uniform range")
            spec.update(distribution="log-uniform", low=min(values), high=max(values),
                        source=f"over the other cells' own fitted values ({', '.join(f'{v:.3g}' for v in values)}), "
                               f"cell {cell} left out")
        elif fitted.get("identified", True):
            centre = PARAMETERS[name].from_x(loo[f"x:{name}"])
            if spec.get("distribution") == "log-uniform":
                factor = centre / math.sqrt(low * high)
                spec.update(low=low * factor, high=high * factor)
            else:
                shift = centre - 0.5 * (low + high)
                if low >= 0 > low + shift:
                    raise ValueError(f"{name}: re-centred on {centre:.4g}, the range would fall below 0")
                spec.update(low=low + shift, high=high + shift)
            spec["source"] = (f"the design's range re-centred on the fit without cell {cell} ({centre:.4g}), "
                              f"width kept")
        else:
            spec["source"] = f"{spec.get('source', '')} (not identified by the fit: range kept)".strip()
    return raw


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--design", type=Path, default=Path("docs/experiments/kirkaldy-usage-population.yaml"))
    ap.add_argument("--report", type=Path,
                    default=Path("designs/lgm50t-aging_aging_calibration/aging_calibration_report.json"))
    ap.add_argument("--realdata", type=Path, default=Path("../shared/realdata"))
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7, help="seed of the populations")
    ap.add_argument("--model-seed", type=int, default=0, help="seed of the estimators (eval_real_cells.py's default)")
    ap.add_argument("--features", default="capacity,usage")
    ap.add_argument("--out", type=Path, default=Path("datasets/held-out"))
    args = ap.parse_args()
    t0 = time.time()
    raw = yaml.safe_load(args.design.read_text())
    report = json.loads(args.report.read_text())
    obs = kirkaldy_observations(args.realdata / "kirkaldy_lgm50t")
    args.out.mkdir(parents=True, exist_ok=True)
    predictions = []
    for cell in sorted(obs["cell_id"].unique()):
        design_raw = held_out_design(raw, report, cell)
        design_path = args.out / f"design-without-{cell}.yaml"
        design_path.write_text(yaml.safe_dump(design_raw, sort_keys=False))
        dataset = api.run(parse_design(design_raw, str(design_path)), samples=args.samples, workers=args.workers,
                          seed=args.seed, out=args.out / f"without-{cell}")
        held = obs[obs["cell_id"] == cell].reset_index(drop=True)
        row = held[["cell_id", "cycle", *TARGETS]].copy()
        for target in TARGETS:
            model_dir = args.out / f"model-without-{cell}-{target}"
            train(dataset, target=target, features=args.features, out=model_dir, seed=args.model_seed)
            result = predict_frame(load_model(model_dir), held)
            row[f"{target}_predicted"] = result[f"{target}_predicted"].to_numpy()
            row[f"{target}_in_domain"] = result["in_domain"].to_numpy()
        predictions.append(row)
        print(f"cell {cell} held out: done at {time.time() - t0:.0f} s", flush=True)
    pred = pd.concat(predictions, ignore_index=True)
    pred.to_csv(args.out / "held_out_predictions.csv", index=False, float_format="%.5g")
    columns = [c for c in feature_columns(parse_groups(args.features)) if c in obs and obs[c].notna().all()]
    rows = []
    for target in TARGETS:
        y = pred[target].to_numpy(float)
        real_loco = loco(obs, columns, target, seed=args.model_seed)
        truth = obs[target].to_numpy(float)
        rows.append({"target": target, "features": args.features, "rows": len(pred),
                     "in_domain_share": float(pred[f"{target}_in_domain"].mean()),
                     "mae_factory_held_out": float(np.mean(np.abs(pred[f"{target}_predicted"] - y))),
                     "mae_b_real_mean": float(np.mean(np.abs(truth - truth.mean()))),
                     "mae_c_real_loco": float(np.mean(np.abs(real_loco - truth)))})
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "held_out.csv", index=False, float_format="%.5g")
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))
    print(f"wall {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
