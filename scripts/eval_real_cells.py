"""Factory-trained models on real cells, against the baselines #21 names.

    python scripts/eval_real_cells.py datasets/default-n200-seed7 [--realdata ../shared/realdata] [--soc 0.8]
        [--sets zhang,kirkaldy] [--out models/real-cells] [--all-estimators]

For each real set and target it trains on the factory dataset (``pybamm_factory.learn.train``),
predicts the real cells through the same readers and features as ``pybamm-factory predict``,
and prints the MAE of:

* factory: the factory-trained model (the estimator train selected);
* (a) train mean: predicting the factory training data's mean;
* (b) real mean: the best constant for the real cells (their own mean);
* (c) real LOCO: a random forest trained on the real cells themselves, leave one cell out,
  on the same features.

Real sets: Zhang et al. 2020 coin cells (SOH from EIS, relative features, all spectra and
those within the factory's SOH range) and Kirkaldy et al. LG M50T cells (SOH, LLI, LAM_NE,
LAM_PE from what their RPT summaries record: C/10 capacity, 0.1 s resistance, and usage:
charge throughput, days and temperature). LLI is scored twice: trained on the factory's
``lli_capacity_pct`` (all lithium lost), and trained on it as the cells' own analysis counts
it, above its positive frame's zero ("lli_capacity_pct in frame": ``train(lli_frame=...)``
with the cells' mean fresh frame), which is what their LLI column measures. Writes
``real_cells.csv`` and the predictions into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pybamm_factory.calibrate.trajectories import read_kirkaldy
from pybamm_factory.dataset.store import read_table
from pybamm_factory.learn.measured import observations
from pybamm_factory.learn.models import ESTIMATORS, make_estimator
from pybamm_factory.learn.predict import load_model, predict_frame
from pybamm_factory.learn.train import train


def loco(frame: pd.DataFrame, columns, target: str, seed: int = 0) -> np.ndarray:
    pred = np.full(len(frame), np.nan)
    for cell in frame["cell_id"].unique():
        test = (frame["cell_id"] == cell).to_numpy()
        est = make_estimator("random_forest", seed).fit(frame.loc[~test, columns].to_numpy(float),
                                                         frame.loc[~test, target].to_numpy(float))
        pred[test] = est.predict(frame.loc[test, columns].to_numpy(float))
    return pred


def kirkaldy_observations(root: Path) -> pd.DataFrame:
    """Features of the Kirkaldy et al. RPT summaries (one cell per file) with the measured
    degradation modes of their DMA files beside them."""
    frames = []
    for f in sorted(root.glob("* - cell * - Extracted Data.csv")):
        frame, _ = observations([f], cell_id=f.name.split(" - cell ")[1].split(" ")[0])
        frames.append(frame)
    obs = pd.concat(frames, ignore_index=True)
    obs["cycle"] = obs["cycle"].astype(int)
    return obs.merge(read_kirkaldy(root), on=["cell_id", "cycle"], how="left", suffixes=("", "_dma"))


def score(name, target, features, frame, truth_col, model, mean_train, subset="all") -> dict:
    columns = model.columns
    result = predict_frame(model, frame)
    y = frame[truth_col].to_numpy(float)
    ok = np.isfinite(y)
    p = result[f"{model.target}_predicted"].to_numpy(float)
    real_loco = loco(frame[ok].reset_index(drop=True), columns, truth_col)
    mae = lambda q: float(np.mean(np.abs(q - y[ok])))  # noqa: E731
    return {"set": name, "subset": subset, "target": target, "features": features, "estimator": model.estimator_name,
            "cells": int(frame.loc[ok, "cell_id"].nunique()), "rows": int(ok.sum()),
            "in_domain_share": float(result.loc[ok, "in_domain"].mean()),
            "mae_factory": mae(p[ok]), "mae_a_train_mean": mae(np.full(ok.sum(), mean_train)),
            "mae_b_real_mean": mae(np.full(ok.sum(), y[ok].mean())), "mae_c_real_loco": mae(real_loco)}


def train_mean(model_dir: Path) -> float:
    return float(json.loads((model_dir / "model.json").read_text())["target_train_mean"])


def figure(out: Path, model_dir_eis: Path, zhang: pd.DataFrame, kirkaldy: pd.DataFrame) -> None:
    """Left: how impedance grows with fade, factory cells against the coin cells (medians per
    SOH bin). Right: Kirkaldy modes, factory-model prediction against the measured ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pybamm_factory.learn.features import dataset_features
    from pybamm_factory.learn.train import load_dataset

    meta = json.loads((model_dir_eis / "model.json").read_text())
    sim = dataset_features(load_dataset(Path(meta["dataset"])), soc=meta.get("eis_soc") or 0.5)
    bins = np.linspace(0.7, 1.0, 13)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for data, soh, style, who in ((sim, "soh", "-", "factory"), (zhang, "soh_measured", "--", "Zhang coin cells")):
        mid = 0.5 * (bins[1:] + bins[:-1])
        cut = pd.cut(data[soh], bins)
        for col, color in (("eis_r_ohm_ohm_ratio", "C0"), ("eis_r_ct_ohm_ratio", "C1"), ("eis_zmod_1hz_ohm_ratio", "C2")):
            med = data.groupby(cut, observed=False)[col].median().to_numpy()
            axes[0].plot(mid, med, style, color=color, label=f"{col.removeprefix('eis_')} ({who})")
    axes[0].set_xlabel("SOH")
    axes[0].set_ylabel("ratio to the cell's first spectrum")
    axes[0].set_title("impedance growth with fade (medians)")
    axes[0].invert_xaxis()
    axes[0].legend(fontsize=7)
    colors = {"A": "C0", "C": "C1", "E": "C3"}
    # LLI as the cells' analysis counts it where the dataset allows (the model trained with --lli-frame)
    lli_dir = "lli_capacity_pct-in-frame" if (out / "lli_capacity_pct-in-frame-capacity").is_dir() else "lli_capacity_pct"
    for target, name, marker in (("lli_capacity_pct", lli_dir, "o"), ("lam_ne_pct", "lam_ne_pct", "s"),
                                 ("lam_pe_pct", "lam_pe_pct", "^")):
        model = load_model(out / f"{name}-capacity")
        pred = predict_frame(model, kirkaldy)[f"{target}_predicted"]
        label = "LLI in frame" if name.endswith("in-frame") else target
        for cell, g in kirkaldy.groupby("cell_id"):
            axes[1].scatter(g[target], pred[g.index], marker=marker, color=colors.get(cell, "k"), s=18,
                            label=f"{label} cell {cell}")
    lim = [0, max(15, float(np.nanmax(kirkaldy[["lli_capacity_pct", "lam_ne_pct", "lam_pe_pct"]].to_numpy())) + 1)]
    axes[1].plot(lim, lim, "k--", lw=1)
    axes[1].set_xlabel("measured (DMA of the C/10 pseudo-OCV), %")
    axes[1].set_ylabel("factory model from C/10 capacity, %")
    axes[1].set_title("Kirkaldy LG M50T: degradation modes")
    axes[1].legend(fontsize=6, ncol=3)
    fig.tight_layout()
    fig.savefig(out / "real_cells.png", dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--realdata", type=Path, default=Path("../shared/realdata"))
    ap.add_argument("--soc", type=float, default=0.8, help="SOC of the factory spectra matched to Zhang's (default 0.8)")
    ap.add_argument("--out", type=Path, default=Path("models/real-cells"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sets", default="zhang,kirkaldy", help="real sets to score: zhang, kirkaldy or both (default)")
    ap.add_argument("--all-estimators", action="store_true",
                    help="score every estimator, not only the one train selected")
    args = ap.parse_args()
    sets = {s.strip() for s in args.sets.split(",") if s.strip()}
    if not sets or sets - {"zhang", "kirkaldy"}:
        ap.error(f"--sets: allowed zhang, kirkaldy; got {args.sets!r}")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = time.time()

    zhang = obs = None
    if "zhang" in sets:
        # Zhang et al. 2020: SOH from EIS
        zhang_file = args.realdata / "zhang2020_eis" / "data_eis_zhang2020.csv"
        model_dir = args.out / f"soh-eis-soc{args.soc:g}"
        train(args.dataset, target="soh", features="eis", soc=args.soc, out=model_dir, seed=args.seed)
        model = load_model(model_dir)
        zhang, _ = observations([zhang_file])
        mean = train_mean(model_dir)
        lo = model.domain.target_range[0]
        within = zhang[zhang["soh_measured"] >= lo].reset_index(drop=True)
        others = [e for e in ESTIMATORS if e != model.estimator_name] if args.all_estimators else []
        for m in [model] + [load_model(model_dir, e) for e in others]:
            rows.append(score("zhang2020 coin cells", "soh", "eis", zhang, "soh_measured", m, mean))
            rows.append(score("zhang2020 coin cells", "soh", "eis", within, "soh_measured", m, mean,
                              subset=f"soh>={lo:.2f}"))
        pd.concat([zhang[["cell_id", "cycle", "soh_measured"]], predict_frame(model, zhang)], axis=1).to_csv(
            args.out / "zhang_predictions.csv", index=False)

    if "kirkaldy" in sets:
        # Kirkaldy et al. 2024: SOH, LLI, LAM from the RPT summaries
        obs = kirkaldy_observations(args.realdata / "kirkaldy_lgm50t")
        # the cells' analysis counts LLI above its positive frame's zero: their mean fresh frame
        fresh = obs[obs["cycle"] == 0]
        frame = (float(fresh["pe_lithiation_top"].mean()), float(fresh["pe_lithiation_bottom"].mean()))
        windows = read_table(Path(args.dataset), "labels")
        has_windows = "pe_lithiation_top" in windows.columns and windows["pe_lithiation_top"].notna().any()
        for features in ("capacity", "capacity,resistance", "capacity,usage", "capacity,resistance,usage"):
            for target in ("soh", "lli_capacity_pct", "lli_capacity_pct in frame", "lam_ne_pct", "lam_pe_pct"):
                if target.endswith(" in frame") and not has_windows:
                    continue  # a dataset from before the factory labelled the positive window
                name, lli_frame = (target.removesuffix(" in frame"), frame) if target.endswith(" in frame") else (target, None)
                model_dir = args.out / f"{target.replace(' ', '-')}-{features.replace(',', '+')}"
                train(args.dataset, target=name, features=features, out=model_dir, seed=args.seed, lli_frame=lli_frame)
                model = load_model(model_dir)
                others = [e for e in ESTIMATORS if e != model.estimator_name] if args.all_estimators else []
                for m in [model] + [load_model(model_dir, e) for e in others]:
                    rows.append(score("kirkaldy LG M50T", target, features, obs, name, m, train_mean(model_dir)))
    if sets == {"zhang", "kirkaldy"}:
        figure(args.out, model_dir_eis=args.out / f"soh-eis-soc{args.soc:g}", zhang=zhang, kirkaldy=obs)
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "real_cells.csv", index=False, float_format="%.5g")
    with pd.option_context("display.width", 220, "display.max_columns", 20, "display.float_format", "{:.4f}".format):
        print(table.to_string(index=False))
    print(f"wall {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
