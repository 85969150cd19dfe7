"""`pybamm-factory observe DIR --profile NAME --seed S`: measured copies of a dataset's tables.

Reads the physics tables through ``dataset.store`` (``read_table`` / ``iter_table``) and writes

    DIR/observed/<profile>/curves.parquet               the RPT discharges as the instrument logged them
    DIR/observed/<profile>/spectra.parquet              the impedance sweeps with the instrument's noise
    DIR/observed/<profile>/impedance_features.parquet   features of the noisy sweeps (the factory's code)
    DIR/observed/<profile>/rpt_features.parquet         capacity, SOH, DC resistance, ICA/DVA of the logged discharges
    DIR/observed/<profile>/channel_errors.parquet       the offsets, gains and drift rates each sample's channel drew
    DIR/observed/<profile>/clean_vs_observed.png        a clean and an observed discharge, and a Nyquist plot of both
    DIR/observed/<profile>/observation.json             profile, seed, package version, row counts, the quality
                                                        gate on clean and observed data, sha256 of each file

Every observed row carries ``observation_profile``. The folder is derived from the tables (as
``sensitivity/`` is): outside ``checksums.sha256``; the physics tables are only read. The same
dataset, profile and seed give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FactoryError
from .apply import (
    PROFILE_COLUMN,
    RPT_FEATURES,
    channel_errors,
    observe_sample_curves,
    observe_sample_spectra,
)
from .profiles import Profile, load_profile

OUT_FOLDER = "observed"
RECORD = "observation.json"
FIGURE = "clean_vs_observed.png"
TABLES = ("curves", "spectra", "impedance_features", "rpt_features", "channel_errors")
# clean vs observed in the card: (observed table, clean table, column)
COMPARED = (("rpt_features", "labels", "capacity_ah"), ("rpt_features", "labels", "soh"),
            ("rpt_features", "labels", "resistance_ohm"), ("rpt_features", "labels", "ica_peak1_v"),
            ("rpt_features", "labels", "ica_peak1_ah_per_v"),
            ("rpt_features", "labels", "dva_peak_capacity_fraction"),
            ("impedance_features", "impedance_features", "r_ohm_ohm"),
            ("impedance_features", "impedance_features", "r_ct_ohm"),
            ("impedance_features", "impedance_features", "kk_residual"))


class ObserveError(FactoryError, ValueError):
    """A dataset or request the measurement layer cannot use; the message is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


@dataclass
class Observation:
    folder: Path
    profile: Profile
    seed: int
    rows: dict[str, int] = field(default_factory=dict)
    quality: dict = field(default_factory=dict)
    paths: list[Path] = field(default_factory=list)


def _table(root: Path, name: str, required: bool = True) -> pd.DataFrame | None:
    from ..dataset.store import read_table

    try:
        frame = read_table(root, name)
    except (FileNotFoundError, OSError):
        frame = None
    if frame is None or frame.empty:
        if required:
            raise ObserveError(f"{root}: no {name} table (not a finished pybamm-factory dataset?)")
        return None
    return frame


def _slices(root: Path, name: str):
    from ..dataset.store import iter_table

    try:
        yield from iter_table(root, name)
    except FileNotFoundError:
        return


def _metadata(root: Path) -> dict:
    path = root / "metadata.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise ObserveError(f"{root}: no metadata.json (not a finished pybamm-factory dataset?)") from None
    except ValueError:
        raise ObserveError(f"{path}: not valid JSON") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("design"), dict):
        raise ObserveError(f"{path}: not a dataset's metadata (no 'design' record)")
    return meta


def rpt_conditions(root: Path, meta: dict, manifest: pd.DataFrame) -> tuple[dict, dict]:
    """Per sample: the RPT discharge current [A] and the cell temperature during it [K]."""
    raw = meta["design"]
    aging = raw.get("aging") or {}
    c_rate, rpt_c = aging.get("rpt_discharge_c_rate"), aging.get("rpt_temperature_c")
    if c_rate is None:  # the design left it at its default: ask the design loader
        from ..design import load_design

        design = load_design(root / "design.yaml")
        c_rate, rpt_c = design.aging.rpt_discharge_c_rate, design.aging.rpt_temperature_c
    nominal_name = "Nominal cell capacity [A.h]"
    nominal = (meta.get("parameter_values") or {}).get(nominal_name)
    currents, temperatures = {}, {}
    for _, row in manifest.iterrows():
        q = row[nominal_name] if nominal_name in manifest.columns else nominal
        if q is None or not isinstance(q, (int, float)) or not math.isfinite(float(q)) or q <= 0:
            raise ObserveError(f"{root}: metadata.json gives no '{nominal_name}'; the RPT current is unknown")
        currents[row["sample_id"]] = float(c_rate) * float(q)
        temperatures[row["sample_id"]] = (float(rpt_c) + 273.15 if rpt_c is not None
                                          else float(row.get("ambient_temperature_k", 298.15)))
    return currents, temperatures


def _by_sample(frame: pd.DataFrame):
    return frame.groupby("sample_id", sort=False)


def _bar(total: int, desc: str, quiet: bool):
    import sys

    from tqdm import tqdm

    return tqdm(total=total, disable=quiet, file=sys.stderr, unit="sample", desc=desc, dynamic_ncols=True)


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    from ..dataset.store import atomic_write_parquet

    atomic_write_parquet(frame.reset_index(drop=True), path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _quality(spectra_frames: list[pd.DataFrame], features: pd.DataFrame) -> dict:
    from ..quality.checks import check_circuit_fit, check_kk, check_spectra_slices

    results, _ = check_spectra_slices(spectra_frames)
    results += [check_kk(features), check_circuit_fit(features)]
    return {r.name: {"count": r.count, "blocking": r.blocking, "examples": r.examples} for r in results}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pybamm-factory")
    except PackageNotFoundError:
        return "unknown"


def observe(root: str | Path, profile: str | Path | Profile, seed: int = 0, quiet: bool = True,
            make_figure: bool = True, progress: Callable | None = None) -> Observation:
    """Observe a finished dataset with ``profile`` (a packaged name, a YAML file or a Profile)
    and ``seed``; write ``root/observed/<profile>/``. Returns what was written."""
    root = Path(root)
    if not root.is_dir():
        raise ObserveError(f"{root}: no such dataset directory")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2 ** 32:
        raise ObserveError(f"--seed {seed!r}: must be an integer in [0, 2**32)")
    seed = int(seed)
    prof = load_profile(profile)
    meta = _metadata(root)
    manifest = _table(root, "manifest")
    if "sample_index" in manifest.columns:
        manifest = manifest.sort_values("sample_index", kind="mergesort").reset_index(drop=True)
    labels = _table(root, "labels", required=False)
    currents, temperatures = rpt_conditions(root, meta, manifest)
    elapsed, resistance = {}, {}
    if labels is not None and len(labels):
        for sample_id, rows in _by_sample(labels):
            cycles = rows["cycle"].astype(int)
            elapsed[sample_id] = dict(zip(cycles, rows.get("elapsed_days", pd.Series(np.nan, index=rows.index)).astype(float)))
            resistance[sample_id] = dict(zip(cycles, rows.get("resistance_ohm", pd.Series(np.nan, index=rows.index)).astype(float)))
    folder = root / OUT_FOLDER / prof.name
    if folder.exists() and not folder.is_dir():
        raise ObserveError(f"{folder}: is a file, not a folder")
    bar_factory = progress or (lambda total, desc: _bar(total, desc, quiet))
    n_samples = int(manifest["sample_id"].nunique())

    curves_out, rpt_out = [], []
    with bar_factory(n_samples, f"observe {prof.name}: curves") as bar:
        for piece in _slices(root, "curves"):
            for sample_id, rows in _by_sample(piece):
                if sample_id not in currents:
                    raise ObserveError(f"{root}: curves hold sample {sample_id} that the manifest lacks")
                c, f = observe_sample_curves(rows, prof, seed, currents[sample_id], elapsed.get(sample_id),
                                             resistance.get(sample_id), temperatures[sample_id])
                curves_out.append(c)
                rpt_out.append(f)
                bar.update(1)
    spectra_out, features_out = [], []
    with bar_factory(n_samples, f"observe {prof.name}: spectra") as bar:
        for piece in _slices(root, "spectra"):
            for _, rows in _by_sample(piece):
                s, f = observe_sample_spectra(rows, prof, seed)
                spectra_out.append(s)
                features_out.append(f)
                bar.update(1)

    channels = pd.DataFrame([{"sample_id": sid, **channel_errors(prof, seed, sid).as_dict()}
                             for sid in manifest["sample_id"].astype(str)])
    channels[PROFILE_COLUMN] = prof.name
    order = dict(zip(manifest["sample_id"], range(len(manifest))))
    frames = {name: _concat(parts, name, order) for name, parts in
              (("curves", curves_out), ("spectra", spectra_out), ("impedance_features", features_out),
               ("rpt_features", rpt_out), ("channel_errors", [channels]))}
    result = Observation(folder, prof, seed)
    folder.mkdir(parents=True, exist_ok=True)
    record_path = folder / RECORD
    record_path.unlink(missing_ok=True)  # written last: a folder without it is unfinished
    files = {}
    for name in TABLES:
        path = folder / f"{name}.parquet"
        if frames[name].empty:
            path.unlink(missing_ok=True)
            continue
        _write_parquet(frames[name], path)
        result.rows[name] = len(frames[name])
        result.paths.append(path)
        files[path.name] = _sha256(path)
    clean_features = _table(root, "impedance_features", required=False)
    result.quality = {
        "clean": _quality(list(_slices(root, "spectra")), clean_features if clean_features is not None else pd.DataFrame()),
        "observed": _quality([frames["spectra"]], frames["impedance_features"]),
    }
    if make_figure and not frames["curves"].empty:
        path = figure(root, prof.name, observed=frames)
        result.paths.append(path)
        files[path.name] = _sha256(path)
    else:
        (folder / FIGURE).unlink(missing_ok=True)  # a figure of an earlier observation would not match
    record = {
        "profile": prof.name,
        "seed": seed,
        "package": "pybamm-factory",
        "package_version": _version(),
        "profile_values": prof.as_dict(),
        "rows": result.rows,
        "quality": result.quality,
        "files_sha256": files,
        "note": ("derived from the dataset's tables by `pybamm-factory observe`; outside checksums.sha256; the same "
                 "dataset, profile, seed and package version give the same bytes"),
    }
    from ..dataset.store import atomic_write_text

    atomic_write_text(record_path, json.dumps(record, indent=2, sort_keys=False) + "\n")
    result.paths.append(record_path)
    return result


# rows of each output in manifest order, then by these keys (descending frequency), whatever
# order the store hands the samples over in
ORDER = {"curves": ("cycle", "capacity_fraction"), "rpt_features": ("cycle",),
         "spectra": ("cycle", "soc", "frequency_hz"), "impedance_features": ("cycle", "soc"), "channel_errors": ()}


def _concat(frames: list[pd.DataFrame], name: str, order: dict) -> pd.DataFrame:
    frames = [f for f in frames if f is not None and len(f)]
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    frame["_order"] = frame["sample_id"].map(order)
    keys = ["_order", *ORDER[name]]
    frame = frame.sort_values(keys, ascending=[k != "frequency_hz" for k in keys], kind="mergesort")
    return frame.drop(columns="_order").reset_index(drop=True)


# ---------------------------------------------------------------- what the card and the figure show


def observed_profiles(root: str | Path) -> list[str]:
    """Profiles observed in this dataset (folders with a finished observation.json)."""
    base = Path(root) / OUT_FOLDER
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / RECORD).is_file())


def read_observed(root: str | Path, profile: str, table: str) -> pd.DataFrame | None:
    path = Path(root) / OUT_FOLDER / profile / f"{table}.parquet"
    return pd.read_parquet(path) if path.is_file() else None


def compare(root: str | Path, profile: str) -> pd.DataFrame:
    """Clean vs observed, one row per feature: n, clean and observed medians, median and
    95th percentile of |observed - clean| (rows matched on sample, cycle and SOC)."""
    root = Path(root)
    rows = []
    for observed_table, clean_table, column in COMPARED:
        obs = read_observed(root, profile, observed_table)
        clean = _table(root, clean_table, required=False)
        if obs is None or clean is None or column not in obs or column not in clean:
            continue
        keys = ["sample_id", "cycle"] + (["soc"] if "soc" in obs and "soc" in clean else [])
        merged = clean[keys + [column]].merge(obs[keys + [column]], on=keys, suffixes=("_clean", "_observed"))
        a, b = merged[f"{column}_clean"].astype(float), merged[f"{column}_observed"].astype(float)
        ok = np.isfinite(a) & np.isfinite(b)
        diff = (b - a)[ok].abs()
        rows.append({"feature": column, "table": observed_table, "n": int(ok.sum()),
                     "clean_median": float(a[ok].median()) if ok.any() else math.nan,
                     "observed_median": float(b[ok].median()) if ok.any() else math.nan,
                     "abs_diff_median": float(diff.median()) if ok.any() else math.nan,
                     "abs_diff_p95": float(diff.quantile(0.95)) if ok.any() else math.nan})
    return pd.DataFrame(rows, columns=["feature", "table", "n", "clean_median", "observed_median", "abs_diff_median",
                                       "abs_diff_p95"])


def _g(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.4g}"


def card_section(root: str | Path) -> str:
    """Markdown for the data card: each observed profile, its seed and source, and clean vs
    observed features. Empty text when the dataset has not been observed."""
    root = Path(root)
    profiles = observed_profiles(root)
    if not profiles:
        return ""
    lines = ["## Observed data (measurement layer)", "",
             f"`pybamm-factory observe` wrote measured copies of the curves, spectra and features to `{OUT_FOLDER}/<profile>/` "
             "(outside the checksums above; every row carries `observation_profile`). The physics tables are unchanged. "
             "Features of the observed data are computed with the same code as the clean ones. ICA/DVA of observed data come "
             "from the 101-point curves, the labels' from the solver's own points, so resampling alone moves them; the "
             "`ideal` profile (no instrument error) shows by how much.", ""]
    for name in profiles:
        record = json.loads((root / OUT_FOLDER / name / RECORD).read_text())
        values = record.get("profile_values", {})
        lines += [f"### `{name}` (seed {record.get('seed')}, pybamm-factory {record.get('package_version')})", "",
                  f"{values.get('description', '')} Source: {values.get('source', '')}", ""]
        kk = {side: record.get("quality", {}).get(side, {}).get("kk_inconsistent", {}).get("count") for side in ("clean", "observed")}
        sweeps = record.get("rows", {}).get("impedance_features")
        if (root / OUT_FOLDER / name / FIGURE).is_file():
            lines += [f"![clean vs observed, {name}]({OUT_FOLDER}/{name}/{FIGURE})", ""]
        if sweeps:
            lines += [f"Sweeps failing the lin-KK gate: {kk['clean']} clean, {kk['observed']} observed, of {sweeps}.", ""]
        table = compare(root, name)
        if len(table):
            lines += ["| feature | n | clean median | observed median | median abs diff | p95 abs diff |",
                      "|---|---|---|---|---|---|"]
            for r in table.itertuples(index=False):
                lines.append(f"| {r.feature} | {r.n} | {_g(r.clean_median)} | {_g(r.observed_median)} | "
                             f"{_g(r.abs_diff_median)} | {_g(r.abs_diff_p95)} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def figure(root: str | Path, profile: str, observed: dict | None = None) -> Path:
    """``observed/<profile>/clean_vs_observed.png``: the first sample's first RPT discharge,
    clean and observed side by side, and a Nyquist plot of its first sweep, clean and noisy."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..dataset.store import atomic_write_bytes

    root = Path(root)
    observed = observed or {t: read_observed(root, profile, t) for t in ("curves", "spectra")}
    obs_curves, obs_spectra = observed.get("curves"), observed.get("spectra")
    if obs_curves is None or obs_curves.empty:
        raise ObserveError(f"{root / OUT_FOLDER / profile}: no observed curves to plot")
    sample_id = obs_curves["sample_id"].iloc[0]
    cycle = obs_curves.loc[obs_curves["sample_id"] == sample_id, "cycle"].iloc[0]
    clean_curves = _first_sample(root, "curves", sample_id)
    clean = clean_curves[clean_curves["cycle"] == cycle]
    noisy = obs_curves[(obs_curves["sample_id"] == sample_id) & (obs_curves["cycle"] == cycle)]
    fig, axes = plt.subplots(1, 3, figsize=(12.5, 3.8))
    axes[0].plot(clean["discharged_capacity_ah"], clean["voltage_v"], color="tab:blue")
    axes[0].set_title(f"clean: {sample_id}, cycle {cycle}", fontsize=9)
    axes[1].plot(noisy["discharged_capacity_ah"], noisy["voltage_v"], color="tab:red")
    axes[1].set_title(f"observed ({profile})", fontsize=9)
    for ax in axes[:2]:
        ax.set_xlabel("discharged capacity [A.h]")
        ax.set_ylabel("voltage [V]")
    axes[1].sharey(axes[0])
    # millivolts do not show on a volt axis: the observed minus the clean voltage at the same capacity
    inset = axes[1].inset_axes([0.14, 0.1, 0.5, 0.36])
    q = noisy["discharged_capacity_ah"].to_numpy(float)
    inner = (q > 0.05 * q[-1]) & (q < 0.95 * q[-1])
    residual = noisy["voltage_v"].to_numpy(float) - np.interp(q, clean["discharged_capacity_ah"], clean["voltage_v"])
    inset.plot(q[inner], 1e3 * residual[inner], ".", ms=3, color="tab:red")
    inset.axhline(0.0, color="tab:blue", lw=0.8)
    inset.tick_params(labelsize=6)
    inset.set_title("observed - clean [mV]", fontsize=6)
    if obs_spectra is not None and not obs_spectra.empty:
        sweep_id = obs_spectra.loc[obs_spectra["sample_id"] == sample_id, "sweep_id"]
        sweep_id = sweep_id.iloc[0] if len(sweep_id) else obs_spectra["sweep_id"].iloc[0]
        clean_spectra = _first_sample(root, "spectra", obs_spectra.loc[obs_spectra["sweep_id"] == sweep_id, "sample_id"].iloc[0])
        cs = clean_spectra[clean_spectra["sweep_id"] == sweep_id]
        ns = obs_spectra[obs_spectra["sweep_id"] == sweep_id]
        axes[2].plot(1e3 * cs["z_real_ohm"], -1e3 * cs["z_imag_ohm"], "o-", ms=3, color="tab:blue", label="clean")
        axes[2].plot(1e3 * ns["z_real_ohm"], -1e3 * ns["z_imag_ohm"], "s", ms=3, color="tab:red", label="observed")
        axes[2].set_title(f"Nyquist: {sweep_id}", fontsize=9)
        axes[2].set_xlabel("Z' [mOhm]")
        axes[2].set_ylabel("-Z'' [mOhm]")
        axes[2].set_aspect("equal", adjustable="datalim")
        axes[2].legend(fontsize=8)
    else:
        axes[2].set_axis_off()
        axes[2].text(0.5, 0.5, "no impedance spectra", ha="center", va="center")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    path = root / OUT_FOLDER / profile / FIGURE
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _first_sample(root: Path, table: str, sample_id: str) -> pd.DataFrame:
    for piece in _slices(root, table):
        rows = piece[piece["sample_id"] == sample_id]
        if len(rows):
            return rows
    return pd.DataFrame(columns=["sample_id", "cycle", "sweep_id", "discharged_capacity_ah", "voltage_v", "z_real_ohm",
                                 "z_imag_ohm"])


__all__ = ["OUT_FOLDER", "ObserveError", "Observation", "RPT_FEATURES", "card_section", "compare", "figure", "observe",
           "observed_profiles", "read_observed"]
