"""Predict a target for measured cells with a model directory written by ``train``.

Each measured observation gets the point prediction of the chosen estimator (the one
``train`` selected on the grouped validation split, unless named), a 90 % interval
(split-conformal half-width from training), and the domain check. Where the files hold
a capacity, ``soh_measured`` (capacity / the cell's first) is written beside the
prediction so the error can be read off.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..labels.limits import SOH_MAX
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
    floor, ceiling = PHYSICAL_RANGE.get(target, (-np.inf, np.inf))
    clipped = (point < floor) | (point > ceiling)
    out = out.clip(lower=floor, upper=ceiling)
    for i in np.flatnonzero(outside | clipped):
        note = domain.iloc[i, 1]
        domain.iloc[i, 0] = False
        note = (note + "; " if note else "") + "prediction outside the training target range"
        if clipped[i]:
            note += f" (the model gave {point[i]:.4g}; clipped to the physical range [{floor:g}, {ceiling:g}])"
        domain.iloc[i, 1] = note
    return pd.concat([out, domain], axis=1)


# A target's physical range: a prediction beyond it (a linear model far outside its inputs'
# range extrapolates without bound) is clipped to it and flagged, never written as is
# (lli_capacity_pct: all lithium lost would read about 150 % of the capacity in an LG M50)
PHYSICAL_RANGE = {"soh": (0.0, SOH_MAX), "lli_pct": (0.0, 100.0), "lli_capacity_pct": (0.0, 200.0), "lam_ne_pct": (0.0, 100.0),
                  "lam_pe_pct": (0.0, 100.0), "rul_to_80_cycles": (0.0, np.inf)}

WINDOW_TOLERANCE_V = 0.05  # a file's discharge limits this far from the dataset's are another window
RATE_TOLERANCE = 0.25  # ... and a C-rate this far (relative) another rate


@dataclass
class RptMatch:
    """A measured cell's reference discharge where it differs from the dataset's."""

    cell_id: str
    c_rate: float
    upper_voltage_v: float
    lower_voltage_v: float
    differences: list


def rpt_mismatches(model: Model, frame: pd.DataFrame) -> list[RptMatch]:
    """Cells of cycler files whose discharges differ from the dataset's reference test in
    C-rate (more than 25 %) or voltage window (more than 50 mV at either end)."""
    rpt = model.meta.get("reference_test") or {}
    if "discharge_current_a" not in frame or not rpt.get("discharge_c_rate"):
        return []
    out = []
    for cell, g in frame.dropna(subset=["discharge_current_a"]).groupby("cell_id", sort=False):
        c_rate = abs(g["discharge_current_a"].median()) / g["capacity_measured"].iloc[0]
        upper = float(g["upper_voltage_v"].median()) if "upper_voltage_v" in g else float("nan")
        lower = float(g["lower_voltage_v"].median())
        differences = []
        if abs(c_rate / rpt["discharge_c_rate"] - 1) > RATE_TOLERANCE:
            differences.append(f"discharges at about C/{1 / c_rate:.3g} ({c_rate:.2f}C of its first capacity) where "
                               f"the model's data come from a {rpt['discharge_c_rate']:g}C reference discharge")
        for end, value in (("upper", upper), ("lower", lower)):
            ref = rpt.get(f"{end}_voltage_v")
            if ref is not None and np.isfinite(value) and abs(value - ref) > WINDOW_TOLERANCE_V:
                differences.append(f"its {end} voltage is {value:.3f} V where the dataset's reference test uses {ref:g} V")
        if differences:
            out.append(RptMatch(str(cell), float(c_rate), upper, lower, differences))
    return out


def _rpt_notes(mismatches: list[RptMatch]) -> list[str]:
    return [f"{m.cell_id}: {'; '.join(m.differences)}: curve features are not comparable. Write a design whose "
            "reference test is the file's with --rpt-design PATH, generate a dataset with it and train on that"
            for m in mismatches]


def rpt_design(model: Model, match: RptMatch) -> dict:
    """The model's dataset design with its reference test set to the cell's: discharge
    C-rate and voltage window (limits rounded to 10 mV, each kept inside the parameter
    set's cut-offs by the design's own check when it is loaded)."""
    import copy

    import yaml

    from .train import DATASET_DESIGN

    path = model.directory / DATASET_DESIGN
    if not path.is_file():
        dataset = Path(model.meta.get("dataset", ""))
        path = dataset / "design.yaml"
        if not path.is_file():
            raise FileNotFoundError(f"{model.directory}: neither {DATASET_DESIGN} nor the dataset's design.yaml "
                                    f"({path}) is there to start a matching design from")
    from ..parameters import parameter_values

    raw = copy.deepcopy(yaml.safe_load(path.read_text()))
    pv = parameter_values(raw["parameter_set"])
    cutoff = {"upper": float(pv["Upper voltage cut-off [V]"]), "lower": float(pv["Lower voltage cut-off [V]"])}
    aging = raw.setdefault("aging", {})
    aging["rpt_discharge_c_rate"] = float(f"{match.c_rate:.3g}")
    clipped = []
    for end, value in (("upper", match.upper_voltage_v), ("lower", match.lower_voltage_v)):
        if not np.isfinite(value):
            continue
        inside = min(max(round(value, 2), cutoff["lower"]), cutoff["upper"])
        if inside != round(value, 2):
            clipped.append(f"the {end} voltage {value:.2f} V is outside {raw['parameter_set']}'s cut-offs, "
                           f"so {inside:g} V is used")
        aging[f"rpt_{end}_voltage_v"] = inside
    if (aging.get("rpt_lower_voltage_v") or 0.0) >= (aging.get("rpt_upper_voltage_v") or 99.0):
        raise ValueError(f"{match.cell_id}: the file's voltage window does not overlap {raw['parameter_set']}'s "
                         f"cut-offs [{cutoff['lower']:g}, {cutoff['upper']:g}] V; no design written")
    cell = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]+", "-", match.cell_id)).strip("-.") or "cell"
    raw["name"] = f"{raw.get('name', 'design')}-rpt-{cell}"[:64].rstrip("-.")
    raw["description"] = (f"{raw.get('description', '')} Reference test set to the measured cell {match.cell_id}'s "
                          f"(written by pybamm-factory predict: {'; '.join(match.differences + clipped)}).").strip()
    return raw


def predict(model_dir, files, cell_id: str | None = None, estimator: str | None = None,
            rpt_design_path=None) -> tuple[pd.DataFrame, list[str]]:
    """Observations of the files with their predictions; and notes for the console. With
    ``rpt_design_path``, where a cycler file's reference discharge differs from the
    dataset's, the design with the file's reference test is written there (one cell's:
    the first that differs) for a dataset whose curve features compare."""
    model = load_model(model_dir, estimator)
    frame, notes = observations(files, cell_id=cell_id)
    mismatches = rpt_mismatches(model, frame)
    notes += _rpt_notes(mismatches)
    if rpt_design_path is not None:
        notes.append(_write_rpt_design(model, mismatches, Path(rpt_design_path)))
    result = predict_frame(model, frame)
    keep = [c for c in ("cell_id", "source", "cycle", "soh_measured", "capacity_measured") if c in frame]
    out = pd.concat([frame[keep], result], axis=1)
    out.insert(0, "estimator", model.estimator_name)
    return out, notes


def _write_rpt_design(model: Model, mismatches: list[RptMatch], path: Path) -> str:
    import yaml

    if not mismatches:
        return f"--rpt-design: every file's discharges match the dataset's reference test; {path} not written"
    from ..design import parse_design

    raw = rpt_design(model, mismatches[0])
    parse_design(raw, str(path))  # refused here, in one line, rather than by `run` later
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Written by `pybamm-factory predict --rpt-design`: the design of {model.meta.get('dataset', 'the dataset')}\n"
              f"# with its reference test set to cell {mismatches[0].cell_id}'s. Generate and train on it:\n"
              f"#   pybamm-factory run --design {path} --samples N --seed S --out DIR\n"
              f"#   pybamm-factory train DIR --target {model.target} --features {','.join(model.meta.get('feature_groups', []))}\n")
    path.write_text(header + yaml.safe_dump(raw, sort_keys=False))
    return (f"wrote {path}: the dataset's design with cell {mismatches[0].cell_id}'s reference test "
            f"({raw['aging']['rpt_discharge_c_rate']:g}C, {raw['aging'].get('rpt_lower_voltage_v')}-"
            f"{raw['aging'].get('rpt_upper_voltage_v', 'protocol')} V); run it, then train on it")
