"""Global sensitivity: which varied parameters each label and impedance feature depends on.

``pybamm-factory sensitivity DIR`` reads a finished dataset and attributes the variance of
each label (per RPT, and at each sample's final RPT) to the design's varied parameters:

* a Saltelli design (``sampler: sobol``): SALib's ``sobol.analyze`` gives first-order
  (S1) and total-order (ST) Sobol' indices with bootstrap confidence intervals. The
  manifest is SALib's ``sobol.sample(problem, N, calc_second_order=False)`` in order, so
  no second-order indices can be estimated from it (that needs N * (2D + 2) rows);
* any other design (``sampler: lhs``): SALib's ``rbd_fast`` (Plischke's EASI ordering of the
  given sample, Tissot-Prieur bias correction) gives first-order indices with bootstrap
  intervals from the samples as they are; there is no total-order index (``ST`` is NaN).

The tidy table (label, rpt, parameter, S1, S1_conf, ST, ST_conf, method, n, ...) goes to
``DIR/sensitivity/sensitivity.parquet`` beside a heat-map and a per-RPT figure. That folder
is outside the dataset's ``checksums.sha256``: the analysis is derived from the data and may
be rerun with other labels. :func:`card_section` renders the final-RPT table as markdown.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np
import pandas as pd

from ..errors import FactoryError

# labels.parquet columns, then impedance_features.parquet columns (at one SOC)
DEFAULT_LABELS = ("soh", "lli_pct", "lam_ne_pct", "lam_pe_pct", "resistance_ohm", "eol_cycle", "rul_to_80_cycles",
                  "r_ohm_ohm", "r_ct_ohm")
PER_SAMPLE_LABELS = ("eol_cycle",)  # one value per sample: analysed at the final RPT only
KEY_COLUMNS = ("sample_id", "cell_design_id", "sweep_id", "sample_index", "cycle", "soc")
FINAL = "final"
CONF_LEVEL = 0.95
NUM_RESAMPLES = 100  # bootstrap resamples of SALib's confidence intervals
BOOTSTRAP_SEED = 1  # the intervals are the same every run
# Stated minimum sample sizes below which a warning says the indices are indicative only:
# Saltelli base N (the run has N * (D + 2) cell designs); given-data samples for rbd_fast.
MIN_SALTELLI_BASE = 64
MIN_RBD_SAMPLES = 100
# rbd_fast sums M harmonics and corrects the bias by 2M/n; its bootstrap uses n/2 samples,
# so n must be well above 4M. M = n // 10 (at most 10, SALib's default) keeps 2M/n = 0.2;
# below this many solved samples (M = 2) the analysis is refused.
LEAST_RBD_SAMPLES = 20
RBD_MAX_HARMONICS = 10
TABLE_COLUMNS = ["label", "rpt", "parameter", "S1", "S1_conf", "ST", "ST_conf", "method", "n", "cycle_min", "cycle_max",
                 "stable", "note"]
NO_VALUE = "skipped: no solved sample has a value here (censored, e.g. no cell reached 80 % SOH)"
OUT_FOLDER = "sensitivity"
TABLE_FILE = "sensitivity.parquet"
HEATMAP_FILE = "heatmap.png"


class SensitivityError(FactoryError, ValueError):
    """A dataset or request the analysis cannot use; the message is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split("\n")))


@dataclass
class Sensitivity:
    """The tidy table, the method used and the warning / note lines to show."""

    table: pd.DataFrame
    method: str
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- reading the dataset


def _read(root: Path, name: str, required: bool = True) -> pd.DataFrame | None:
    from ..dataset.store import has_table, read_table

    if not has_table(root, name):
        if required:
            raise SensitivityError(f"{root}: no data/{name}/ (not a finished pybamm-factory dataset?)")
        return None
    return read_table(root, name)


def _design(root: Path) -> dict:
    path = root / "metadata.json"
    try:
        raw = json.loads(path.read_text())["design"]
    except FileNotFoundError:
        raise SensitivityError(f"{root}: no metadata.json (not a finished pybamm-factory dataset?)") from None
    except (ValueError, KeyError, TypeError):
        raise SensitivityError(f"{path}: not a dataset's metadata (no 'design' record)") from None
    if not isinstance(raw, dict):
        raise SensitivityError(f"{path}: 'design' is not a mapping")
    return raw


def _numeric(frame: pd.DataFrame | None) -> list[str]:
    if frame is None:
        return []
    return [c for c in frame.columns if c not in KEY_COLUMNS and pd.api.types.is_numeric_dtype(frame[c])]


def _per_rpt(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """(label, rpt, sample_id, cycle, value): RPT index per sample ('0' = fresh) and 'final'."""
    t = frame[["sample_id", "cycle", label]].rename(columns={label: "value"})
    t = t.sort_values(["sample_id", "cycle"], kind="stable")
    t["value"] = pd.to_numeric(t["value"], errors="coerce").astype(float)
    t["rpt"] = t.groupby("sample_id").cumcount().astype(str)
    last = t.groupby("sample_id", sort=False).tail(1).assign(rpt=FINAL)
    t = last if label in PER_SAMPLE_LABELS else pd.concat([t, last], ignore_index=True)
    return t.assign(label=label)


def _outputs(root: Path, labels: list[str] | None, soc: float) -> tuple[pd.DataFrame, list[str]]:
    """Long frame of every analysed output, and notes on default outputs the dataset lacks."""
    table = _read(root, "labels")
    features = _read(root, "impedance_features", required=False)
    label_cols, feature_cols = _numeric(table), _numeric(features)
    explicit = labels is not None
    wanted = list(labels) if explicit else list(DEFAULT_LABELS)
    unknown = [w for w in wanted if w not in label_cols and w not in feature_cols]
    notes: list[str] = []
    if unknown and explicit:
        raise SensitivityError(f"unknown label {', '.join(repr(u) for u in unknown)}; choose from the numeric columns of "
                               f"labels.parquet and impedance_features.parquet: {', '.join(label_cols + feature_cols)}")
    wanted = [w for w in wanted if w not in unknown]
    at_soc = None
    if features is not None and any(w in feature_cols and w not in label_cols for w in wanted):
        at_soc = features[np.isclose(features["soc"].astype(float), soc, rtol=0, atol=1e-9)]
        if at_soc.empty:
            socs = ", ".join(f"{s:g}" for s in sorted(features["soc"].dropna().unique())) or "none"
            missing = [w for w in wanted if w in feature_cols and w not in label_cols]
            if explicit:
                raise SensitivityError(f"no impedance sweep at soc {soc:g} (--soc); the dataset's sweeps are at soc {socs}")
            notes.append(f"note: {', '.join(missing)} skipped: no impedance sweep at soc {soc:g} (sweeps at soc {socs}; "
                         "see --soc)")
            wanted = [w for w in wanted if w not in missing]
    if not wanted:
        raise SensitivityError(f"{root}: none of the labels {', '.join(DEFAULT_LABELS)} is in the dataset; name some with --labels")
    frames = [_per_rpt(table if w in label_cols else at_soc, w) for w in wanted]
    out = pd.concat(frames, ignore_index=True)
    order = {w: i for i, w in enumerate(wanted)}
    out["_label"] = out["label"].map(order)
    out["_rpt"] = out["rpt"].map(lambda r: math.inf if r == FINAL else int(r))
    out = out.sort_values(["_label", "_rpt"], kind="stable").drop(columns=["_label", "_rpt"])
    return out.reset_index(drop=True), notes


# ---------------------------------------------------------------- estimators


def _constant(y: np.ndarray) -> bool:
    return bool(np.ptp(y) <= 1e-12 * max(1.0, float(np.abs(y).max())))


def _zeros(d: int, total: bool) -> dict:
    zero = np.zeros(d)
    return {"S1": zero, "S1_conf": zero, "ST": zero if total else np.full(d, np.nan), "ST_conf": zero if total else np.full(d, np.nan)}


class _Saltelli:
    """Sobol' indices of a complete Saltelli sample (SALib's ``sobol.analyze``)."""

    method = "sobol"

    def __init__(self, root: Path, manifest: pd.DataFrame, names: list[str], ok: np.ndarray, per_cell: int,
                 drop_incomplete: bool):
        self.d, self.per_cell, self.drop = len(names), per_cell, drop_incomplete
        self.problem = {"num_vars": self.d, "names": list(names), "bounds": [[0.0, 1.0]] * self.d}
        n = len(manifest)
        if per_cell < 1 or n % per_cell:
            raise SensitivityError(f"{root}: {n} samples are not whole groups of conditions_per_cell_design = {per_cell}")
        values = manifest[names].to_numpy(float).reshape(n // per_cell, per_cell, self.d)
        if not np.array_equal(values, np.repeat(values[:, :1], per_cell, axis=1), equal_nan=True):
            raise SensitivityError(f"{root}: the samples of one cell design (conditions_per_cell_design = {per_cell}) "
                                   "differ in their varied parameters; the manifest is not as the sobol sampler wrote it")
        cells = values[:, 0]
        self.n_cells = len(cells)
        if self.n_cells % (self.d + 2):
            raise SensitivityError(f"{root}: {self.n_cells} cell designs are not a complete Saltelli sample of "
                                   f"N * (D + 2) rows (D = {self.d}); the manifest is not as the sobol sampler wrote it")
        self.blocks = self.n_cells // (self.d + 2)
        _check_saltelli_order(root, cells.reshape(self.blocks, self.d + 2, self.d))
        failed = int((~ok).sum())
        if failed and not drop_incomplete:
            bad_blocks = np.unique(np.flatnonzero(~ok) // per_cell // (self.d + 2)).size
            raise SensitivityError(
                f"{failed} of {n} samples did not solve (status other than ok); Saltelli's estimators need every sample "
                f"of a block (A, B and the {self.d} mixed rows): rerun them, or pass --drop-incomplete to analyse the "
                f"{self.blocks - bad_blocks} of {self.blocks} blocks without a failed sample")
        self.minimum = MIN_SALTELLI_BASE * (self.d + 2) * per_cell

    def __call__(self, y: np.ndarray) -> tuple[dict | None, int, str]:
        cell_y = y.reshape(self.n_cells, self.per_cell).mean(axis=1)  # NaN when one condition lacks a value
        blocks = cell_y.reshape(self.blocks, self.d + 2)
        complete = ~np.isnan(blocks).any(axis=1)
        missing = int(np.isnan(y).sum())
        if missing == len(y):
            return None, 0, NO_VALUE
        if not complete.all() and not self.drop:
            return None, len(y) - missing, (f"skipped: {missing} of {len(y)} samples have no value here (failed, censored, "
                                            "or ended before this RPT); --drop-incomplete analyses the complete blocks")
        kept = blocks[complete]
        n = len(kept) * (self.d + 2) * self.per_cell
        if len(kept) < 2:
            return None, n, f"skipped: {len(kept)} complete Saltelli block(s); the estimators need at least 2"
        flat = kept.ravel()
        if _constant(flat):
            return _zeros(self.d, True), n, "constant output"
        from SALib.analyze import sobol

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = sobol.analyze(self.problem, flat, calc_second_order=False, num_resamples=NUM_RESAMPLES,
                              conf_level=CONF_LEVEL, seed=BOOTSTRAP_SEED)
        return {k: np.asarray(s[k], float) for k in ("S1", "S1_conf", "ST", "ST_conf")}, n, ""


def _check_saltelli_order(root: Path, cells: np.ndarray) -> None:
    """Each block of D + 2 rows must be A, AB_1 .. AB_D, B: AB_j is A with column j from B."""
    a, b = cells[:, 0], cells[:, -1]
    for j in range(cells.shape[2]):
        expected = a.copy()
        expected[:, j] = b[:, j]
        bad = np.flatnonzero(~np.isclose(cells[:, 1 + j], expected, rtol=1e-12, atol=0.0).all(axis=1))
        if bad.size:
            raise SensitivityError(f"{root}: manifest.parquet is not in SALib's Saltelli order (block {bad[0]}, row "
                                   f"{bad[0] * cells.shape[1] + 1 + j}); the sobol estimators need the rows as sampled")


class _RbdFast:
    """First-order indices from the sample as given (SALib's ``rbd_fast``)."""

    method = "rbd_fast"

    def __init__(self, root: Path, manifest: pd.DataFrame, names: list[str], ok: np.ndarray):
        self.d, self.ok = len(names), ok
        self.x = manifest[names].to_numpy(float)
        self.problem = {"num_vars": self.d, "names": list(names), "bounds": [[0.0, 1.0]] * self.d}
        solved = int(ok.sum())
        if solved < LEAST_RBD_SAMPLES:
            raise SensitivityError(
                f"{root}: too few samples for sensitivity indices: {solved} of {len(ok)} solved, rbd_fast (used for "
                f"non-Saltelli designs) needs at least {LEAST_RBD_SAMPLES} ({MIN_RBD_SAMPLES} for stable indices); "
                "run more samples, or a design with sampler: sobol")
        self.minimum = MIN_RBD_SAMPLES

    def __call__(self, y: np.ndarray) -> tuple[dict | None, int, str]:
        use = self.ok & ~np.isnan(y)
        n = int(use.sum())
        if n == 0:
            return None, 0, NO_VALUE
        if n < LEAST_RBD_SAMPLES:
            return None, n, f"skipped: {n} samples have a value here; rbd_fast needs at least {LEAST_RBD_SAMPLES}"
        if _constant(y[use]):
            return _zeros(self.d, False), n, "constant output"
        from SALib.analyze import rbd_fast

        harmonics = min(RBD_MAX_HARMONICS, n // 10)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = rbd_fast.analyze(self.problem, self.x[use], y[use], M=harmonics, num_resamples=NUM_RESAMPLES,
                                 conf_level=CONF_LEVEL, seed=BOOTSTRAP_SEED)
        nan = np.full(self.d, np.nan)
        return {"S1": np.asarray(s["S1"], float), "S1_conf": np.asarray(s["S1_conf"], float), "ST": nan, "ST_conf": nan}, n, ""


# ---------------------------------------------------------------- the analysis


def _conditions_vary(manifest: pd.DataFrame, per_cell: int) -> list[str]:
    """Condition columns whose values are not the same for every cell design."""
    from ..design.manifest import condition_columns

    varying = []
    for column in condition_columns(manifest):
        values = manifest[column].astype(str).to_numpy().reshape(-1, per_cell)
        if not (values == values[:1]).all():
            varying.append(column)
    return varying


def analyse(root: str | Path, labels: list[str] | None = None, soc: float = 0.5,
            drop_incomplete: bool = False) -> Sensitivity:
    """Sensitivity indices of ``labels`` (default :data:`DEFAULT_LABELS`) per RPT and at
    each sample's final RPT. Raises :class:`SensitivityError` for what it cannot analyse."""
    from ..dataset.store import varied_parameters

    root = Path(root)
    if not root.is_dir():
        raise SensitivityError(f"{root}: no such dataset directory")
    raw = _design(root)
    manifest = _read(root, "manifest").sort_values("sample_index", kind="stable").reset_index(drop=True)
    log = _read(root, "solver_log")
    names = [n for n in varied_parameters(root) if n in manifest.columns]
    if not names:
        raise SensitivityError(f"{root}: the design varies no parameter; there is nothing to attribute")
    if labels is not None and not labels:
        raise SensitivityError("--labels: give at least one label name")
    status = manifest["sample_id"].map(log.drop_duplicates("sample_id").set_index("sample_id")["status"])
    ok = (status == "ok").to_numpy()
    outputs, notes = _outputs(root, labels, soc)
    warn: list[str] = []
    per_cell = int(raw.get("conditions_per_cell_design", 1) or 1)
    if raw.get("sampler", "lhs") == "sobol":
        analyser = _Saltelli(root, manifest, names, ok, per_cell, drop_incomplete)
        varying = _conditions_vary(manifest, per_cell)
        if varying:
            warn.append(f"warning: operating conditions ({', '.join(varying)}) differ between cell designs: Saltelli's "
                        "estimators take them as noise, which widens the intervals and inflates ST; fix them in the design, "
                        "or give every cell design the same set (conditions_sampler: factorial, conditions_per_cell_design = "
                        "the number of combinations)")
        if per_cell > 1:
            notes.append(f"note: a cell design's output is the mean over its {per_cell} conditions")
    else:
        analyser = _RbdFast(root, manifest, names, ok)

    rows = []
    sample_ids = manifest["sample_id"]
    for (label, rpt), group in outputs.groupby(["label", "rpt"], sort=False):
        values = group.drop_duplicates("sample_id").set_index("sample_id")["value"]
        y = sample_ids.map(values).to_numpy(float, copy=True)
        y[~ok] = np.nan
        result, n, note = analyser(y)
        cycles = group.loc[group["sample_id"].isin(sample_ids[ok]), "cycle"]
        if result is None:
            stable = pd.NA
            result = {k: np.full(len(names), np.nan) for k in ("S1", "S1_conf", "ST", "ST_conf")}
        elif note == "constant output":
            stable = True
        else:
            above = (result["S1"] - result["S1_conf"] > 0) | (np.nan_to_num(result["ST"] - result["ST_conf"], nan=-1.0) > 0)
            stable = bool(above.any())
        for j, name in enumerate(names):
            rows.append({"label": label, "rpt": rpt, "parameter": name, **{k: float(v[j]) for k, v in result.items()},
                         "method": analyser.method, "n": n,
                         "cycle_min": float(cycles.min()) if len(cycles) else np.nan,
                         "cycle_max": float(cycles.max()) if len(cycles) else np.nan,
                         "stable": stable, "note": note})
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table["n"] = table["n"].astype("int64")
    table["stable"] = table["stable"].astype("boolean")
    warn += _warnings(table, analyser)
    notes += _skip_notes(table)
    return Sensitivity(table=table, method=analyser.method, warnings=warn, notes=notes)


def _rpts(rpts) -> str:
    return ", ".join(dict.fromkeys(rpts))


def _warnings(table: pd.DataFrame, analyser) -> list[str]:
    out = []
    analysed = table[table["stable"].notna()]
    small = analysed[(analysed["n"] < analyser.minimum) & (analysed["note"] == "")]
    if not small.empty:
        n = int(small["n"].min())
        if analyser.method == "sobol":
            base = n // ((analyser.d + 2) * analyser.per_cell)
            out.append(f"warning: n = {n} samples (Saltelli base N = {base}) is below the stated minimum N = "
                       f"{MIN_SALTELLI_BASE} ({analyser.minimum} samples here): the intervals are wide, treat the indices "
                       "as indicative")
        else:
            out.append(f"warning: n = {n} samples is below the stated minimum of {MIN_RBD_SAMPLES} for rbd_fast: the "
                       "intervals are wide, treat the indices as indicative")
    unstable = analysed[~analysed["stable"].astype(bool)]
    for label, group in unstable.groupby("label", sort=False):
        out.append(f"warning: {label}: at rpt {_rpts(group['rpt'])} every parameter's {CONF_LEVEL:.0%} interval overlaps "
                   "zero: the sample is too small for stable indices")
    return out


def _skip_notes(table: pd.DataFrame) -> list[str]:
    out = []
    skipped = table[table["note"].str.startswith("skipped")]
    for (label, note), group in skipped.groupby(["label", "note"], sort=False):
        out.append(f"note: {label}: rpt {_rpts(group['rpt'])} {note}")
    return out


# ---------------------------------------------------------------- outputs


def _index_column(table: pd.DataFrame) -> str:
    """ST for Sobol' tables, S1 where there is no total-order index."""
    return "ST" if table["ST"].notna().any() else "S1"


def heatmap(table: pd.DataFrame, path: str | Path) -> Path:
    """Parameters x labels at the final RPT (ST, or S1 for rbd_fast); '*' marks a label
    whose every interval overlaps zero. PNG without run-dependent metadata."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    column = _index_column(table)
    final = table[table["rpt"] == FINAL]
    params = list(dict.fromkeys(final["parameter"]))
    labels = list(dict.fromkeys(final["label"]))
    grid = final.set_index(["parameter", "label"])[column].unstack("label").reindex(index=params, columns=labels)
    unstable = final.groupby("label", sort=False)["stable"].first().reindex(labels)
    fig, ax = plt.subplots(figsize=(2.5 + 0.9 * len(labels), 1.6 + 0.45 * len(params)))
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")
    image = ax.imshow(np.ma.masked_invalid(grid.to_numpy(float)), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(len(params)):
        for j in range(len(labels)):
            v = grid.iat[i, j]
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white" if v < 0.6 else "black")
    ax.set_xticks(range(len(labels)), [f"{lab} *" if _is_false(unstable[lab]) else lab for lab in labels], rotation=45, ha="right")
    ax.set_yticks(range(len(params)), params)
    ax.set_title(f"{column} at the final RPT ({final['method'].iloc[0] if len(final) else ''}; * every interval overlaps 0)",
                 fontsize=9)
    fig.colorbar(image, ax=ax, label=column)
    return _save(fig, path)


def _is_false(value) -> bool:
    return value is not pd.NA and not pd.isna(value) and not bool(value)


def rpt_figure(table: pd.DataFrame, label: str, path: str | Path) -> Path:
    """One label's indices at each RPT index (fresh cell = 0), with their intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    column = _index_column(table)
    rows = table[(table["label"] == label) & (table["rpt"] != FINAL)].copy()
    rows["index"] = rows["rpt"].astype(int)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for name, group in rows.groupby("parameter", sort=False):
        ax.errorbar(group["index"], group[column], yerr=group[f"{column}_conf"], marker="o", capsize=3, label=name)
    ticks = rows.drop_duplicates("index")
    ax.set_xticks(ticks["index"], [f"{i}\n{_cycles(lo, hi)}" for i, lo, hi in
                                   zip(ticks["index"], ticks["cycle_min"], ticks["cycle_max"])])
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("RPT index (cycle)")
    ax.set_ylabel(f"{column} of {label} ({CONF_LEVEL:.0%} interval)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _cycles(lo: float, hi: float) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "-"
    return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"


def _save(fig, path: Path) -> Path:
    import io

    import matplotlib.pyplot as plt

    from ..dataset.store import atomic_write_bytes

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _pm(value: float, conf: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.2f} ± {conf:.2f}" if np.isfinite(conf) else f"{value:.2f}"


def format_table(table: pd.DataFrame, rpt: str = FINAL) -> str:
    """The rows of one RPT ('final' by default) as aligned text, for the terminal."""
    rows = table[table["rpt"] == rpt]
    shown = pd.DataFrame({
        "label": rows["label"], "parameter": rows["parameter"],
        "S1": [_pm(v, c) for v, c in zip(rows["S1"], rows["S1_conf"])],
        "ST": [_pm(v, c) for v, c in zip(rows["ST"], rows["ST_conf"])],
        "n": rows["n"], "stable": rows["stable"].map(lambda s: "n/a" if s is pd.NA else ("yes" if s else "NO")),
        "note": rows["note"].str.split(":").str[0],  # the whole reason is printed as a note line
    })
    return f"rpt = {rpt} ({CONF_LEVEL:.0%} intervals):\n" + shown.to_string(index=False)


def card_section(table: pd.DataFrame) -> str:
    """Markdown for the data card: the final-RPT indices per label and parameter."""
    method = table["method"].iloc[0] if len(table) else "n/a"
    if method == "sobol":
        how = ("Sobol' first-order (S1) and total-order (ST) indices from the Saltelli sample (SALib `sobol.analyze`, "
               "bootstrap intervals). No second-order indices: the manifest is sampled with `calc_second_order=False`.")
    else:
        how = ("First-order indices (S1) from the sample as given (SALib `rbd_fast`, bootstrap intervals); this design is "
               "not a Saltelli sample, so there is no total-order index.")
    lines = ["## Global sensitivity", "",
             f"{how} Intervals are {CONF_LEVEL:.0%}; *unstable* marks a label whose every interval overlaps zero. "
             f"Per-RPT indices are in `{OUT_FOLDER}/{TABLE_FILE}` (outside the checksums above).", "",
             "| label | parameter | S1 | ST | n | stable |", "|---|---|---|---|---|---|"]
    column = _index_column(table)
    for label, rows in table[table["rpt"] == FINAL].groupby("label", sort=False):
        top = rows[column].idxmax() if rows[column].notna().any() else None
        for i, r in rows.iterrows():
            name = str(r["parameter"]).replace("|", "\\|")
            name = f"**{name}**" if i == top and r["note"] == "" else name
            stable = "n/a" if r["stable"] is pd.NA else ("yes" if r["stable"] else "*unstable*")
            lines.append(f"| {label} | {name} | {_pm(r['S1'], r['S1_conf'])} | {_pm(r['ST'], r['ST_conf'])} | {r['n']} "
                         f"| {stable} |")
    return "\n".join(lines) + "\n"


def write(result: Sensitivity, out: str | Path, main_label: str | None = None) -> list[Path]:
    """The table, the heat-map and the per-RPT figure of ``main_label`` (the first label with
    per-RPT rows by default) under ``out``. Returns the paths written."""
    from ..dataset.store import atomic_write_parquet

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SensitivityError(f"--out {out}: is a file, not a folder")
    table = result.table
    paths = [out / TABLE_FILE]
    atomic_write_parquet(table, paths[0])
    paths.append(heatmap(table, out / HEATMAP_FILE))
    per_rpt = table[(table["rpt"] != FINAL) & table["stable"].notna()]
    if main_label is None and not per_rpt.empty:
        main_label = per_rpt["label"].iloc[0]
    if main_label is not None:
        paths.append(rpt_figure(table, main_label, out / f"{main_label}_by_rpt.png"))
    return paths


EXAMPLE = """Which varied parameters each label and impedance feature depends on.

Sobol' indices (S1, ST, 95 % intervals) for a Saltelli design (sampler: sobol); rbd_fast
first-order indices for any other design. Per RPT and at each sample's final RPT; writes
sensitivity.parquet, heatmap.png and <label>_by_rpt.png to --out (outside the dataset's
checksums) and prints the final-RPT table.

\b
Example:
  pybamm-factory sensitivity datasets/my-sobol-n256-seed7
  pybamm-factory sensitivity DIR --labels soh,lli_pct,r_ct_ohm --soc 0.5 --out sens/
"""


@click.command("sensitivity", help=EXAMPLE, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--labels", default=None,
              help=f"Comma-separated labels / impedance features [default: {', '.join(DEFAULT_LABELS)}].")
@click.option("--soc", default=0.5, type=float, show_default=True, help="SOC of the impedance sweeps whose features are analysed.")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None, help="Output folder [default: DIRECTORY/sensitivity].")
@click.option("--drop-incomplete", is_flag=True,
              help="Saltelli designs: drop the blocks holding a failed sample or a missing value instead of refusing (the "
                   "indices then describe the region where the model solves).")
def sensitivity(directory: Path, labels: str | None, soc: float, out: Path | None, drop_incomplete: bool):
    try:
        wanted = None if labels is None else list(dict.fromkeys(s.strip() for s in labels.split(",") if s.strip()))
        result = analyse(directory, wanted, soc, drop_incomplete)
        out = out if out is not None else Path(directory) / OUT_FOLDER
        paths = write(result, out)
    except SensitivityError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    for line in result.warnings + result.notes:
        click.echo(line, err=True)
    click.echo(format_table(result.table))
    inside = Path(out).resolve().is_relative_to(Path(directory).resolve())
    click.echo("wrote: " + ", ".join(str(p) for p in paths) + (" (outside the dataset's checksums.sha256)" if inside else ""))
    finished = all((Path(directory) / name).exists() for name in ("metadata.json", "design.yaml", "checksums.sha256"))
    if finished and Path(out).resolve() == (Path(directory) / OUT_FOLDER).resolve():
        from ..api import refresh_card

        refresh_card(directory)  # the card's "Global sensitivity" section shows the final-RPT table
        click.echo(f"card: {Path(directory) / 'README.md'} now holds the final-RPT indices")
