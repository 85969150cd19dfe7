"""The augmentation pipeline: train a generator on a dataset's train split, write the
cells it generates, score them against the test split.

``augment(dir, model="cvae"|"wgan", samples=N, seed=S)`` trains on the dataset's
``train`` split only, writes generated tables under ``dir/augment/<generator_id>/`` with
the physics schemas plus ``is_generated``, ``generator_id`` and the conditions used, and
scores the generator, and the two baselines of :mod:`.baselines`, against the ``test``
split (never seen in training). Physics tables are never modified. The card is not this
module's business: :func:`card_section` returns its section, and
:func:`pybamm_factory.api.augment` re-renders the card with it.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..dataset.store import atomic_write_parquet, atomic_write_text, has_table, read_table, varied_parameters
from ..design import build_manifest, load_design
from ..errors import FactoryError
from ..labels import curve_table, end_of_life, ica_dva_features
from . import data as cells
from . import metrics
from .baselines import CopyGenerator, NoiseGenerator


class AugmentError(FactoryError, ValueError):
    """The dataset cannot be augmented (too few cells, unknown model, ...)."""


CURVE_POINTS = 51
GENERATED_TABLES = ("manifest", "labels", "curves", "impedance_features")


def _load(root: Path) -> dict[str, pd.DataFrame]:
    names = ("manifest", "solver_log", "labels", "curves", "impedance_features", "splits")
    missing = [n for n in names if not has_table(root, n)]
    if missing:
        raise AugmentError(f"{root}: not a finished dataset (no rows in {', '.join(f'data/{n}/' for n in missing)})")
    return {n: read_table(root, n) for n in names}


def _split_ids(tables, split):
    s = tables["splits"]
    return s.loc[s["split"] == split, "sample_id"].tolist()


def _progress(total, quiet):
    from tqdm import tqdm

    return tqdm(total=total, disable=quiet, desc="training", unit="step", dynamic_ncols=True)


def _generate(model, space, conditions_raw, seed):
    y = space.unscale_y(model.sample(space.scale_x(conditions_raw), seed))
    return cells.decode_cells(space, y)


def _tstr_rows(space, x_raw, decoded):
    """(features, SOH) per (cell, RPT): conditions plus cycle number -> SOH."""
    feats = np.repeat(x_raw, space.rpts, axis=0)
    cyc = np.asarray(decoded["cycle"], float).reshape(-1, 1)
    return np.hstack([feats, cyc]), decoded["soh"].reshape(-1)


def _eol(space, decoded):
    return np.array([end_of_life(c, s).eol_cycle for c, s in zip(decoded["cycle"], decoded["soh"])])


def _score(space, model_cells, x_gen, test_cells, x_test, train_cells, x_train, seed):
    real = cells.metric_features(space, test_cells)
    fake_at_test = cells.metric_features(space, model_cells["at_test"])
    train_feat = cells.metric_features(space, train_cells)
    gen_feat = cells.metric_features(space, model_cells["generated"])
    z = lambda a: (a - train_feat.mean(0)) / np.where(train_feat.std(0) > 0, train_feat.std(0), 1.0)  # noqa: E731
    tr_x, tr_y = _tstr_rows(space, x_train, train_cells)
    te_x, te_y = _tstr_rows(space, x_test, test_cells)
    ge_x, ge_y = _tstr_rows(space, x_gen, model_cells["generated"])
    mae_real = metrics.tstr_mae(tr_x, tr_y, te_x, te_y, seed)
    mae_gen = metrics.tstr_mae(ge_x, ge_y, te_x, te_y, seed)
    out = {
        "classifier_auc": metrics.classifier_auc(z(real), z(fake_at_test), seed),
        "mmd_rbf": metrics.mmd_rbf(z(real), z(fake_at_test)),
        "wasserstein_mean": float(metrics.wasserstein_per_feature(z(real), z(fake_at_test)).mean()),
        "tstr_soh_mae": mae_gen, "trtr_soh_mae": mae_real, "tstr_soh_ratio": mae_gen / mae_real,
        "memorisation_ratio": float(np.median(metrics.nearest_distance(z(gen_feat), z(train_feat)))
                                    / np.median(metrics.nearest_distance(z(real), z(train_feat)))),
        **{f"physics_{k}": v for k, v in metrics.physics_sanity(model_cells["generated"]).items()},
    }
    eol_tr, eol_te, eol_ge = _eol(space, train_cells), _eol(space, test_cells), _eol(space, model_cells["generated"])
    if np.isfinite(eol_te).sum() >= 2 and np.isfinite(eol_ge).sum() >= 5 and np.isfinite(eol_tr).sum() >= 5:
        m_te, m_tr, m_ge = np.isfinite(eol_te), np.isfinite(eol_tr), np.isfinite(eol_ge)
        out["tstr_eol_mae_cycles"] = metrics.tstr_mae(x_gen[m_ge], eol_ge[m_ge], x_test[m_te], eol_te[m_te], seed)
        out["trtr_eol_mae_cycles"] = metrics.tstr_mae(x_train[m_tr], eol_tr[m_tr], x_test[m_te], eol_te[m_te], seed)
    return out


def _tables(space, decoded, frame, generator_id, nominal_ah):
    """Generated rows in the physics schemas plus is_generated, generator_id, conditions."""
    cond_cols = list(frame.columns.drop(["sample_id", "cell_design_id", "sample_index"], errors="ignore"))
    labels, curves_rows, feats = [], [], []
    for i, (_, row) in enumerate(frame.iterrows()):
        ids = {"sample_id": row["sample_id"], "cell_design_id": row["cell_design_id"]}
        cycles = [int(c) for c in decoded["cycle"][i]]
        eol = end_of_life(cycles, decoded["soh"][i])
        grid = np.linspace(0, 1, space.curve_points)
        for j, cycle in enumerate(cycles):
            cap = decoded["capacity_ah"][i, j]
            q, v = grid * cap, decoded["voltage_v"][i, j]
            lab = {**ids, "cycle": int(cycle)}
            lab.update({k: float(decoded[k][i, j]) for k in cells.LABELS + ["soh", "throughput_ah", "lli_ah", "lli_capacity_pct"]
                        if k != "cycle" and k in decoded})
            lab["equivalent_full_cycles"] = lab["throughput_ah"] / (2 * nominal_ah)
            lab["elapsed_days"] = (cycle - cycles[0]) * space.days_per_cycle  # bookkeeping, as throughput
            lab.update({"eol_cycle": eol.eol_cycle, "rul_to_80_cycles": max(eol.eol_cycle - cycle, 0.0)
                        if math.isfinite(eol.eol_cycle) else math.nan,
                        "rul_source": eol.source, "rul_fit_rmse": eol.fit_rmse, "solver_status": "ok"})
            lab.update(ica_dva_features(q, v))
            labels.append(lab)
            curve = pd.DataFrame(curve_table(q, v))
            curve.insert(0, "cycle", int(cycle))
            for k, val in reversed(list(ids.items())):
                curve.insert(0, k, val)
            curves_rows.append(curve)
            feats.append({**ids, "sweep_id": f"{row['sample_id']}-c{cycle:05d}-soc{round(space.soc * 100):03d}",
                          "cycle": int(cycle), "soc": space.soc,
                          **{k: float(decoded[k][i, j]) for k in cells.IMPEDANCE},
                          "r_ct_fit_ohm": np.nan, "fit_residual": np.nan, "kk_residual": np.nan,
                          "circuit_arcs": 0, "r0_fit_ohm": np.nan, "r_hf_arc_fit_ohm": np.nan})  # no circuit fitted
    out = {"manifest": frame.copy(), "labels": pd.DataFrame(labels), "curves": pd.concat(curves_rows, ignore_index=True),
           "impedance_features": pd.DataFrame(feats)}
    conditions = frame.set_index("sample_id")[cond_cols]
    for name, table in out.items():
        if name != "manifest":
            table = table.join(conditions, on="sample_id")
        table["is_generated"] = True
        table["generator_id"] = generator_id
        out[name] = table
    return out


def _plot(space, train_cells, decoded, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for c, s in zip(train_cells["cycle"], train_cells["soh"]):
        ax.plot(c, s, color="tab:blue", alpha=0.25, lw=0.8)
    for c, s in zip(decoded["cycle"][:100], decoded["soh"][:100]):
        ax.plot(c, s, color="tab:orange", alpha=0.25, lw=0.8)
    ax.plot([], [], color="tab:blue", label="physics (train)")
    ax.plot([], [], color="tab:orange", label="generated")
    ax.set_xlabel("cycle")
    ax.set_ylabel("SOH")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def augment(root: str | Path, model: str = "cvae", samples: int = 200, seed: int = 0, epochs: int | None = None,
            conditions: pd.DataFrame | None = None, quiet: bool = False) -> dict:
    """Train a generator on the train split, write generated tables, score it; returns the report."""
    from .models import MODELS

    root = Path(root)
    if model not in MODELS:
        raise AugmentError(f"model '{model}' not allowed; allowed: {', '.join(MODELS)}")
    t0 = time.perf_counter()
    tables = _load(root)
    ok = set(tables["solver_log"].loc[tables["solver_log"]["status"] == "ok", "sample_id"])
    feats = tables["impedance_features"]
    socs = sorted(feats["soc"].unique())
    space = cells.make_space(tables["manifest"], tables["labels"][tables["labels"]["sample_id"].isin(ok)],
                             soc=float(socs[len(socs) // 2]), curve_points=CURVE_POINTS, varied=varied_parameters(root))
    manifest = tables["manifest"].set_index("sample_id")
    train_ids, y_train = cells.cell_table(space, tables, [s for s in _split_ids(tables, "train") if s in ok])
    test_ids, y_test = cells.cell_table(space, tables, [s for s in _split_ids(tables, "test") if s in ok])
    if len(train_ids) < 4 or len(test_ids) < 2:
        raise AugmentError(f"{root}: needs >= 4 complete train cells and >= 2 test cells, found {len(train_ids)} and {len(test_ids)}")
    x_train = space.conditions(manifest.loc[train_ids])
    x_test = space.conditions(manifest.loc[test_ids])
    space.fit(x_train, y_train)
    cells.fit_throughput(space, tables["labels"], train_ids)

    import torch

    torch.manual_seed(seed)  # weight initialisation draws from the global generator
    net = MODELS[model](x_train.shape[1], space.basis.shape[0])
    epochs = epochs or 1500
    with _progress(epochs, quiet) as bar:
        history = net.fit(space.scale_x(x_train), space.scale_y(y_train), seed, epochs=epochs, progress=bar.update)
    fingerprint = [sorted(train_ids), net.config(), seed, epochs, samples, conditions is None]
    digest = hashlib.sha256(json.dumps(fingerprint).encode()).hexdigest()[:8]
    generator_id = f"{model}-seed{seed}-{digest}"
    out = root / "augment" / generator_id
    out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out / "model.pt")
    atomic_write_text(out / "model.json", json.dumps({"kind": model, "config": net.config(), "seed": seed, "epochs": epochs,
                                                      "space": {"rpts": space.rpts, "conditions": space.condition_names,
                                                                "log_conditions": space.log_conditions, "soc": space.soc,
                                                                "curve_points": space.curve_points,
                                                                "principal_directions": int(space.basis.shape[0])},
                                                      "train_samples": sorted(train_ids)}, indent=2))

    frame = _conditions_frame(root, samples, seed, conditions, space, generator_id)
    x_gen = space.conditions(frame)
    decoded = _generate(net, space, x_gen, seed)
    meta = json.loads((root / "metadata.json").read_text())
    nominal = float(meta["parameter_values"].get("Nominal cell capacity [A.h]", 1.0))
    for name, table in _tables(space, decoded, frame, generator_id, nominal).items():
        atomic_write_parquet(table, out / f"{name}.parquet", f"generated_{name}")

    train_cells = cells.decode_cells(space, y_train)
    test_cells = cells.decode_cells(space, y_test)
    scores = {}
    y_scaled = space.scale_y(y_train)
    for name, gen in (("model", net), ("noise_baseline", NoiseGenerator().fit(x_train, y_scaled)),
                      ("copy_baseline", CopyGenerator().fit(x_train, y_scaled))):
        sets = {"at_test": _generate(gen, space, x_test, seed + 7), "generated": decoded if gen is net else _generate(gen, space, x_gen, seed)}
        scores[name] = _score(space, sets, x_gen, test_cells, x_test, train_cells, x_train, seed)
    # the floor: how well the same classifier tells physics train cells from physics test cells
    train_feat, test_feat = cells.metric_features(space, train_cells), cells.metric_features(space, test_cells)
    z = (train_feat.std(0) > 0)
    scores["physics_train_vs_test"] = {"classifier_auc": metrics.classifier_auc(
        (test_feat[:, z] - train_feat[:, z].mean(0)) / train_feat[:, z].std(0),
        (train_feat[:, z] - train_feat[:, z].mean(0)) / train_feat[:, z].std(0), seed)}
    _plot(space, train_cells, decoded, out / "soh_generated_vs_physics.png")
    report = {"generator_id": generator_id, "model": model, "seed": seed, "epochs": epochs,
              "train_cells": len(train_ids), "test_cells": len(test_ids), "generated_cells": len(frame),
              "loss_first": history[0], "loss_last": history[-1], "train_wall_time_s": time.perf_counter() - t0,
              "targets": {"classifier_auc_max": 0.75, "tstr_soh_ratio_max": 1.5}, "metrics": scores}
    atomic_write_text(out / "augmentation_report.json", json.dumps(report, indent=2))
    return report


def _conditions_frame(root, samples, seed, conditions, space, generator_id):
    """Conditions to generate at: given by the user, or drawn from the dataset's design."""
    if conditions is None:
        design = load_design(root / "design.yaml")
        conditions = build_manifest(design, samples, seed + 1_000_003)
    missing = [c for c in space.condition_names if c not in conditions.columns]
    if missing:
        raise AugmentError(f"conditions lack columns {missing}")
    frame = conditions[space.condition_names].reset_index(drop=True).copy()
    frame.insert(0, "sample_index", np.arange(len(frame), dtype="int64"))
    frame.insert(0, "cell_design_id", [f"g-{generator_id}-{i}" for i in range(len(frame))])
    frame.insert(0, "sample_id", [f"g-{generator_id}-{i:05d}" for i in range(len(frame))])
    if "protocol_id" in conditions.columns:
        frame["protocol_id"] = conditions["protocol_id"].to_numpy()
    return frame


def card_section(root: Path) -> str:
    """The card's augmentation section: every generator's fidelity against the test split
    (empty when the dataset holds none)."""
    if not list((Path(root) / "augment").glob("*/augmentation_report.json")):
        return ""
    lines = ["Generated cells live under `augment/<generator_id>/`; every row has `is_generated = true` and its",
             "`generator_id`. Physics tables are untouched. Fidelity against the physics `test` split:", "",
             "| generator | AUC (0.5 ideal) | MMD | Wasserstein | TSTR/TRTR SOH MAE | memorisation | SOH monotone |",
             "|---|---|---|---|---|---|---|"]
    for report_path in sorted((root / "augment").glob("*/augmentation_report.json")):
        r = json.loads(report_path.read_text())
        for name, m in r["metrics"].items():
            if name == "physics_train_vs_test":
                lines.append(f"|   (physics train vs test, the floor) | {m['classifier_auc']:.3f} | | | | | |")
                continue
            label = r["generator_id"] if name == "model" else f"  ({name})"
            lines.append(f"| {label} | {m['classifier_auc']:.3f} | {m['mmd_rbf']:.4f} | {m['wasserstein_mean']:.3f} | "
                         f"{m['tstr_soh_ratio']:.2f} | {m['memorisation_ratio']:.2f} | {m['physics_soh_non_increasing']:.2f} |")
    return "\n".join(lines) + "\n"
