"""Predict a target for measured cells with a model directory written by ``train``.

Each measured observation gets the point prediction of the chosen estimator (the one
``train`` selected on the grouped validation split, unless named), a 90 % interval
(split-conformal half-width from training), and the domain check. Where the files hold
a capacity, ``soh_measured`` (capacity / the cell's first) is written beside the
prediction so the error can be read off.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .domain import Domain
from .measured import observations
from .models import ESTIMATORS, load_estimator


@dataclass
class Model:
    directory: Path
    meta: dict
    estimator_name: str
    estimator: object
    domain: Domain

    @property
    def target(self) -> str:
        return self.meta["target"]

    @property
    def columns(self) -> list[str]:
        return self.meta["features"]


def load_model(model_dir, estimator: str | None = None) -> Model:
    model_dir = Path(model_dir)
    meta_path = model_dir / "model.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{model_dir}: not a model directory (no model.json; write one with `pybamm-factory train`)")
    meta = json.loads(meta_path.read_text())
    name = estimator or meta["selected_estimator"]
    if name not in ESTIMATORS:
        raise ValueError(f"--estimator: '{name}' is not one of {', '.join(ESTIMATORS)}")
    path = model_dir / "estimators" / f"{name}.skops"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such estimator in the model directory")
    return Model(model_dir, meta, name, load_estimator(path), Domain.load(model_dir))


def predict_frame(model: Model, frame: pd.DataFrame) -> pd.DataFrame:
    """Predictions, interval and domain check for observation rows that hold the features."""
    x = frame.reindex(columns=model.columns).astype(float)
    point = model.estimator.predict(x.to_numpy(float))
    half = float(model.meta["interval"]["half_width"].get(model.estimator_name, np.nan))
    target = model.target
    out = pd.DataFrame({f"{target}_predicted": point, f"{target}_low": point - half, f"{target}_high": point + half},
                       index=frame.index)
    domain = model.domain.check(x)
    lo, hi = model.domain.target_range
    outside = (point < lo - 0.1 * (hi - lo)) | (point > hi + 0.1 * (hi - lo))
    for i in np.flatnonzero(outside):
        note = domain.iloc[i, 1]
        domain.iloc[i, 0] = False
        domain.iloc[i, 1] = (note + "; " if note else "") + "prediction outside the training target range"
    return pd.concat([out, domain], axis=1)


def _rpt_notes(model: Model, frame: pd.DataFrame) -> list[str]:
    """Where a cycler file's discharges differ from the dataset's reference test."""
    rpt = model.meta.get("reference_test") or {}
    notes = []
    if "discharge_current_a" not in frame or not rpt.get("discharge_c_rate"):
        return notes
    for cell, g in frame.dropna(subset=["discharge_current_a"]).groupby("cell_id"):
        c_rate = abs(g["discharge_current_a"].median()) / g["capacity_measured"].iloc[0]
        if abs(c_rate / rpt["discharge_c_rate"] - 1) > 0.25:
            notes.append(f"{cell}: discharges at about C/{1 / c_rate:.3g} ({c_rate:.2f}C of its first capacity); the "
                         f"model's data come from a {rpt['discharge_c_rate']:g}C reference discharge: curve features "
                         f"are not comparable. Generate a dataset whose design sets aging.rpt_discharge_c_rate: "
                         f"{c_rate:.2f} and train on it")
    return notes


def predict(model_dir, files, cell_id: str | None = None, estimator: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Observations of the files with their predictions; and notes for the console."""
    model = load_model(model_dir, estimator)
    frame, notes = observations(files, cell_id=cell_id)
    notes += _rpt_notes(model, frame)
    result = predict_frame(model, frame)
    keep = [c for c in ("cell_id", "source", "cycle", "soh_measured", "capacity_measured") if c in frame]
    out = pd.concat([frame[keep], result], axis=1)
    out.insert(0, "estimator", model.estimator_name)
    return out, notes
