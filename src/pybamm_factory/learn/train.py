"""Train the baseline estimators on a factory dataset and write a model directory.

Split schemes, each reported in ``metrics.csv``:

* ``grouped``: the dataset's own splits (every cell design wholly in train, val or test):
  the figure to quote;
* ``random``: rows shuffled into 70/15/15 regardless of cell: the leaky figure, printed
  beside the grouped one so the effect of leakage is visible;
* ``extrapolate_temperature``: test = every row at the dataset's highest ambient
  temperature; train/val = the dataset's train/val rows at the other temperatures, minus
  any cell design that also appears in test;
* ``extrapolate_rate``: test = the fastest-ageing fifth of the cells (lowest end-of-life
  cycle, observed or projected); train/val likewise.

Intervals are split-conformal: the 90 % quantile of the absolute residuals on the grouped
validation split, added either side of a prediction (``interval_half_width``); they hold
for data like the validation split, which is what the domain check guards.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..dataset.store import has_table, read_table
from ..labels.tables import frame_window_problem, lli_capacity_pct_in_frame_table
from .domain import Domain
from .features import dataset_features, definitions_markdown, feature_columns, parse_groups
from .models import ESTIMATORS, make_estimator, save_estimator

TARGETS = {
    "soh": "state of health: RPT capacity / the cell's first RPT capacity (1)",
    "rul_to_80_cycles": "cycles left until SOH 0.8 (observed or projected), protocol cycles",
    "lli_capacity_pct": "lithium lost, % of the fresh cell's RPT capacity (the denominator of capacity-axis "
                        "degradation-mode analyses; all lithium, unless counted in an analysis's positive frame)",
    "lli_pct": "loss of lithium inventory, % of all lithium in both electrodes' particles of the fresh cell "
               "(PyBaMM's; about 1.5x the capacity in an LG M50, so it reads smaller than lli_capacity_pct)",
    "lam_ne_pct": "loss of negative-electrode active material, %",
    "lam_pe_pct": "loss of positive-electrode active material, %",
}
SCHEMES = ("grouped", "random", "extrapolate_temperature", "extrapolate_rate")
COVERAGE = 0.9
DATASET_DESIGN = "dataset_design.yaml"  # the dataset's design, copied into the model directory


@dataclass
class TrainResult:
    model_dir: Path
    metrics: pd.DataFrame
    selected: str


def load_dataset(directory: Path) -> dict:
    directory = Path(directory)
    if not has_table(directory, "labels"):
        raise FileNotFoundError(f"{directory}: not a finished factory dataset (no data/labels/)")
    tables = {}
    for name in ("labels", "manifest", "splits", "curves", "spectra", "pulses"):
        if has_table(directory, name):
            tables[name] = read_table(directory, name)
    return tables


def _metrics(y_true, y_pred) -> dict:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    if len(y_true) == 0:
        return {"n": 0, "mae": math.nan, "rmse": math.nan, "r2": math.nan}
    return {"n": int(len(y_true)), "mae": float(mean_absolute_error(y_true, y_pred)),
            "rmse": float(math.sqrt(mean_squared_error(y_true, y_pred))),
            "r2": float(r2_score(y_true, y_pred)) if len(y_true) > 1 else math.nan}


def split_schemes(frame: pd.DataFrame, seed: int) -> dict[str, pd.Series]:
    """Per scheme, a train/validation/test (or None) label per row."""
    out = {"grouped": frame["split"].where(frame["split"].isin(["train", "validation", "test"]))}
    rng = np.random.default_rng(seed)
    u = rng.random(len(frame))
    out["random"] = pd.Series(np.where(u < 0.7, "train", np.where(u < 0.85, "validation", "test")), index=frame.index)

    def holdout(mask: pd.Series) -> pd.Series:
        held_designs = set(frame.loc[mask, "cell_design_id"])
        label = out["grouped"].where(~frame["cell_design_id"].isin(held_designs))
        label = label.replace({"test": "train"})  # the dataset's test rows not held out train too
        return label.where(~mask, "test")

    temps = frame["ambient_temperature_k"]
    if temps.nunique() > 1:
        out["extrapolate_temperature"] = holdout(np.isclose(temps, temps.max()))
    eol = frame.groupby("cell_id")["eol_cycle"].transform("first")
    if eol.notna().sum() > 10:
        cut = eol.quantile(0.2)
        out["extrapolate_rate"] = holdout(eol <= cut)
    return out


def train(dataset_dir, target: str = "soh", features: str = "both", normalise: str = "relative", soc: float = 0.5,
          out: Path | None = None, seed: int = 0, shuffle_labels: bool = False, progress=None,
          lli_frame: tuple[float, float] | None = None) -> TrainResult:
    """Fit the three estimators under every split scheme; write the model directory.

    ``shuffle_labels`` permutes the target across cells before fitting (a control: its
    scores must be worse than the true labels'). ``lli_frame`` (with target
    ``lli_capacity_pct``): the positive frame of the degradation-mode analysis whose LLI the
    model should predict, (lithiation at the top, at the bottom) of the fresh RPT discharge in
    that analysis's frame; the target is then counted as it counts, above its zero
    (:func:`~..labels.tables.lli_capacity_pct_in_frame_table`)."""
    if target not in TARGETS:
        raise ValueError(f"--target: '{target}' is not one of {', '.join(TARGETS)}")
    if lli_frame is not None:
        top, bottom = (float(v) for v in lli_frame)
        if target != "lli_capacity_pct":
            raise ValueError(f"--lli-frame: applies to --target lli_capacity_pct, not '{target}'")
        problem = frame_window_problem(top, bottom)
        if problem:
            raise ValueError(f"--lli-frame: {problem}")
        lli_frame = (top, bottom)
    dataset_dir = Path(dataset_dir)
    groups = parse_groups(features)
    columns = feature_columns(groups, normalise)
    tables = load_dataset(dataset_dir)
    frame = dataset_features(tables, soc=soc)
    available = [c for c in columns if c in frame and frame[c].notna().mean() > 0.5]
    missing = [c for c in columns if c not in available]
    if not available:
        raise ValueError(f"{dataset_dir}: the dataset has none of the '{features}' features "
                         f"(EIS needs the spectra table, curves the curves table)")
    columns = available
    if target not in frame:
        raise ValueError(f"{dataset_dir}: the labels table has no '{target}' column (a dataset written before "
                         "the factory labelled it; regenerate it with `pybamm-factory run`)")
    if lli_frame is not None:
        if "pe_lithiation_top" not in frame:
            raise ValueError(f"{dataset_dir}: the labels table has no 'pe_lithiation_top' column, which --lli-frame "
                             "needs (a dataset written before the factory labelled it; regenerate it with "
                             "`pybamm-factory run`)")
        frame[target] = lli_capacity_pct_in_frame_table(frame, lli_frame, cell="cell_id")
    frame = frame[np.isfinite(frame[target].astype(float))].reset_index(drop=True)
    frame = frame[frame["split"].isin(["train", "validation", "test"])].reset_index(drop=True)
    if shuffle_labels:
        rng = np.random.default_rng(seed + 1)
        frame[target] = rng.permutation(frame[target].to_numpy())
    if frame.empty:
        raise ValueError(f"{dataset_dir}: no usable rows with a finite '{target}'")
    x_all = frame[columns].to_numpy(float)
    y_all = frame[target].to_numpy(float)

    schemes = split_schemes(frame, seed)
    records, predictions, fitted = [], [], {}
    steps = [(s, e) for s in schemes for e in ESTIMATORS]
    for k, (scheme, name) in enumerate(steps):
        label = schemes[scheme]
        tr = (label == "train").to_numpy()
        if tr.sum() < 5:
            continue
        est = make_estimator(name, seed).fit(x_all[tr], y_all[tr])
        if scheme == "grouped":
            fitted[name] = est
        for part in ("validation", "test"):
            mask = (label == part).to_numpy()
            pred = est.predict(x_all[mask]) if mask.any() else np.array([])
            records.append({"scheme": scheme, "estimator": name, "split": part, **_metrics(y_all[mask], pred)})
            if scheme == "grouped" or part == "test":
                predictions.append(pd.DataFrame({
                    "scheme": scheme, "estimator": name, "split": part, "cell_id": frame.loc[mask, "cell_id"].values,
                    "cycle": frame.loc[mask, "cycle"].values, f"{target}_true": y_all[mask],
                    f"{target}_predicted": pred}))
        if progress:
            progress(k + 1, len(steps), scheme, name)
    metrics = pd.DataFrame(records)
    grouped_val = metrics[(metrics.scheme == "grouped") & (metrics.split == "validation")].set_index("estimator")["mae"]
    selected = str(grouped_val.idxmin())

    # conformal half-widths from the grouped validation residuals
    val = (schemes["grouped"] == "validation").to_numpy()
    half_width = {}
    for name, est in fitted.items():
        resid = np.abs(est.predict(x_all[val]) - y_all[val]) if val.any() else np.array([np.nan])
        n = len(resid)
        level = min(1.0, math.ceil((n + 1) * COVERAGE) / max(n, 1))
        half_width[name] = float(np.quantile(resid, level)) if n else math.nan

    out = Path(out) if out else dataset_dir.parent / f"model-{dataset_dir.name}-{target}-{'+'.join(groups)}"
    out.mkdir(parents=True, exist_ok=True)
    for name, est in fitted.items():
        save_estimator(est, out / "estimators" / f"{name}.skops")
    train_rows = (schemes["grouped"] == "train").to_numpy()
    domain = Domain.fit(frame.loc[train_rows, columns], target_values=y_all[train_rows])
    domain.save(out)
    importance = _importance(fitted, frame, columns, target, schemes["grouped"], seed)
    importance.to_csv(out / "feature_importance.csv", index=False)
    metrics.to_csv(out / "metrics.csv", index=False, float_format="%.6g")
    pd.concat(predictions, ignore_index=True).to_csv(out / "predictions.csv", index=False, float_format="%.6g")
    (out / "features.md").write_text(
        f"# Features of this model\n\nGroups: {', '.join(groups)}; normalise: {normalise}; "
        f"EIS and pulse features at SOC {frame['eis_soc'].iloc[0] if 'eis_soc' in frame else soc:g}.\n\n"
        + definitions_markdown(columns))
    design = _dataset_rpt(dataset_dir)
    if (dataset_dir / "design.yaml").is_file():  # what `predict --rpt-design` starts a matching design from
        shutil.copyfile(dataset_dir / "design.yaml", out / DATASET_DESIGN)
    meta = {
        "format": "pybamm-factory model 1",
        "pybamm_factory_version": __version__,
        "target": target, "target_definition": TARGETS[target] + (
            f"; counted above the zero of a degradation-mode analysis's positive frame with the fresh window "
            f"{lli_frame[0]:g} .. {lli_frame[1]:g}" if lli_frame is not None else ""),
        "lli_frame": list(lli_frame) if lli_frame is not None else None,
        "features": columns, "feature_groups": list(groups), "normalise": normalise,
        "features_missing_from_dataset": missing,
        "eis_soc": float(frame["eis_soc"].iloc[0]) if "eis_soc" in frame else None,
        "dataset": str(dataset_dir), "dataset_rows": int(len(frame)), "seed": seed,
        "target_train_mean": float(np.mean(y_all[train_rows])),
        "shuffled_labels": shuffle_labels,
        "reference_test": design,
        "selected_estimator": selected,
        "interval": {"coverage": COVERAGE, "method": "split conformal on the grouped validation split",
                     "half_width": half_width},
        "trust": "estimators are skops files; predict loads only types from scikit-learn and NumPy "
                 "(models.load_estimator) and refuses any other",
    }
    (out / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    _figure(out, pd.concat(predictions, ignore_index=True), importance, target, selected)
    return TrainResult(out, metrics, selected)


def _dataset_rpt(dataset_dir: Path) -> dict:
    """The reference test the dataset's features come from (rate, window), for predict's check."""
    from ..design.spec import load_design

    try:
        design = load_design(dataset_dir / "design.yaml")
    except Exception:  # noqa: BLE001 - an older or edited design: the check is then skipped
        return {}
    proto, aging = design.protocols[0], design.aging
    return {"discharge_c_rate": aging.rpt_discharge_c_rate,
            "upper_voltage_v": aging.rpt_upper_voltage_v or getattr(proto, "upper_voltage_v", None),
            "lower_voltage_v": aging.rpt_lower_voltage_v or getattr(proto, "lower_voltage_v", None),
            "ambient_temperatures_c": list(getattr(design, "ambient_temperatures_c", []) or [])}


def _importance(fitted: dict, frame, columns, target, grouped, seed) -> pd.DataFrame:
    """Permutation importance (drop in R2) of each feature on the grouped test split."""
    from sklearn.inspection import permutation_importance

    test = (grouped == "test").to_numpy()
    rows = []
    if test.sum() < 5:
        return pd.DataFrame(columns=["estimator", "feature", "importance_mean", "importance_std"])
    x, y = frame.loc[test, columns].to_numpy(float), frame.loc[test, target].to_numpy(float)
    for name, est in fitted.items():
        result = permutation_importance(est, x, y, n_repeats=3, random_state=seed, scoring="r2")
        for col, m, s in zip(columns, result.importances_mean, result.importances_std):
            rows.append({"estimator": name, "feature": col, "importance_mean": m, "importance_std": s})
    return pd.DataFrame(rows).sort_values(["estimator", "importance_mean"], ascending=[True, False])


def _figure(out: Path, predictions: pd.DataFrame, importance: pd.DataFrame, target: str, selected: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    grouped = predictions[(predictions.scheme == "grouped") & (predictions.split == "test")]
    leaky = predictions[(predictions.scheme == "random") & (predictions.split == "test")]
    for ax, data, title in ((axes[0], grouped, "grouped test split (cells unseen)"),
                            (axes[1], leaky, "row-random test split (leaky)")):
        for name in ESTIMATORS:
            d = data[data.estimator == name]
            if len(d):
                ax.scatter(d[f"{target}_true"], d[f"{target}_predicted"], s=6, alpha=0.5, label=name)
        if len(data):
            lo = np.nanmin(data[[f"{target}_true", f"{target}_predicted"]].to_numpy())
            hi = np.nanmax(data[[f"{target}_true", f"{target}_predicted"]].to_numpy())
            ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xlabel(f"true {target}")
        ax.set_ylabel(f"predicted {target}")
        ax.set_title(title)
        ax.legend(fontsize=8)
    imp = importance[importance.estimator == selected].head(12)
    axes[2].barh(imp["feature"][::-1], imp["importance_mean"][::-1], xerr=imp["importance_std"][::-1])
    axes[2].set_xlabel("permutation importance (drop in R2, grouped test)")
    axes[2].set_title(f"features of the selected estimator ({selected})")
    axes[2].tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(out / "figure.png", dpi=110)
    plt.close(fig)


def summary_table(metrics: pd.DataFrame) -> str:
    """Test-split MAE / R2 per scheme and estimator, grouped and leaky side by side."""
    test = metrics[metrics.split == "test"].copy()
    test["cell"] = test.apply(lambda r: f"{r['mae']:.4g} / {r['r2']:.3f}", axis=1)
    table = test.pivot(index="estimator", columns="scheme", values="cell")
    table = table[[s for s in SCHEMES if s in table.columns]]
    return "test MAE / R2\n" + table.to_string()

