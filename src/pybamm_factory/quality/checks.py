"""The quality gate: every check has a name, a count, examples and whether it blocks.

A blocking check that fails makes ``check --strict`` exit non-zero. Informational
checks (solver failures, near-duplicate trajectories) are reported but do not block:
failed samples are kept and flagged by design, and excluded from the splits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ..design.manifest import condition_columns
from ..labels.impedance import FIT_RESIDUAL_WARN, KK_THRESHOLD
from ..labels.limits import (  # noqa: F401 - the labels' rules
    LLI_RECOVERY_TOLERANCE_PCT,
    NEGATIVE_TOLERANCE,
    PLATING_TOLERANCE_FRACTION,
    SOH_MAX,
    lithium_rules,
    physics_problems,
)

CUMULATIVE_TOLERANCE = 1e-6  # relative decrease allowed for cumulative quantities
CUMULATIVE_COLUMNS = ("throughput_ah", "sei_loss_ah", "equivalent_full_cycles")
REQUIRED_LABELS = ("capacity_ah", "soh", "lli_pct", "lam_ne_pct", "lam_pe_pct", "plating_loss_ah",
                   "sei_loss_ah", "resistance_ohm", "rul_source", "throughput_ah")
NEAR_DUPLICATE_SOH = 1e-9


@dataclass
class CheckResult:
    name: str
    blocking: bool
    count: int
    examples: list = field(default_factory=list)
    description: str = ""

    @property
    def passed(self) -> bool:
        return self.count == 0

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def _result(name, blocking, bad, description, example_col="sample_id") -> CheckResult:
    if isinstance(bad, pd.DataFrame):
        examples = bad[example_col].astype(str).drop_duplicates().head(5).tolist() if len(bad) else []
        return CheckResult(name, blocking, int(len(bad)), examples, description)
    bad = list(bad)
    return CheckResult(name, blocking, len(bad), [str(b) for b in bad[:5]], description)


def _ok_samples(solver_log: pd.DataFrame) -> set:
    return set(solver_log.loc[solver_log["status"] == "ok", "sample_id"])


def check_duplicates(manifest: pd.DataFrame) -> CheckResult:
    cols = [c for c in manifest.columns if c not in ("sample_id", "sample_index")]
    dup = manifest[manifest.duplicated(cols, keep="first")]
    return _result("duplicate_samples", True, dup, "samples with identical parameters and conditions")


def check_near_duplicates(labels: pd.DataFrame) -> CheckResult:
    if labels.empty:
        return CheckResult("near_duplicate_trajectories", False, 0, [], "")
    wide = labels.pivot_table(index="sample_id", columns="cycle", values="soh").dropna(axis=1)
    if wide.shape[1] < 2 or len(wide) < 2:
        return CheckResult("near_duplicate_trajectories", False, 0, [], "SOH trajectories closer than 1e-9")
    values = wide.to_numpy()
    pairs = []
    order = np.argsort(values[:, -1])
    for a, b in zip(order[:-1], order[1:]):
        if np.max(np.abs(values[a] - values[b])) < NEAR_DUPLICATE_SOH:
            pairs.append(f"{wide.index[a]}~{wide.index[b]}")
    return _result("near_duplicate_trajectories", False, pairs, "pairs of SOH trajectories closer than 1e-9")


def check_spectra(spectra: pd.DataFrame) -> list[CheckResult]:
    if spectra.empty:
        return [CheckResult("duplicate_spectrum_points", True, 0), CheckResult("non_monotone_frequency", True, 0),
                CheckResult("negative_real_impedance", True, 0)]
    dup = spectra[spectra.duplicated(["sweep_id", "frequency_hz"], keep="first")]
    unique = spectra.drop_duplicates(["sweep_id", "frequency_hz"])  # repeats are their own check
    diffs = unique.groupby("sweep_id", sort=False)["frequency_hz"].diff()
    sign = np.sign(diffs).groupby(unique["sweep_id"]).agg(lambda s: s.dropna().nunique())
    nonmono = [sid for sid, n in sign.items() if n > 1]
    negative = spectra[spectra["z_real_ohm"] <= 0]
    return [
        _result("duplicate_spectrum_points", True, dup, "rows repeating (sweep_id, frequency_hz)", "sweep_id"),
        _result("non_monotone_frequency", True, sorted(set(nonmono)), "sweeps whose frequency grid is not strictly monotone"),
        _result("negative_real_impedance", True, negative, "spectrum points with Z' <= 0", "sweep_id"),
    ]


def check_labels(labels: pd.DataFrame, solver_log: pd.DataFrame) -> list[CheckResult]:
    ok = _ok_samples(solver_log)
    if labels.empty:
        return [CheckResult("missing_labels", True, len(ok), sorted(ok)[:5], "ok samples without label rows")]
    ok_rows = labels[labels["sample_id"].isin(ok)]
    missing_rows = ok_rows[ok_rows[list(REQUIRED_LABELS)].isna().any(axis=1)]
    no_rows = sorted(ok - set(labels["sample_id"]))
    missing = CheckResult("missing_labels", True, len(missing_rows) + len(no_rows),
                          (missing_rows["sample_id"].drop_duplicates().head(5).tolist() + no_rows[:5])[:5],
                          "rows of ok samples with null labels, or ok samples without label rows")
    labels = ok_rows  # rows of flagged samples are reported under solver_failures
    numeric = labels.select_dtypes("number")
    soh = labels["soh"]
    negative_lli_lam, negative_plating, created = (mask for mask, _ in lithium_rules(labels))  # the worker's rules
    results = [
        missing,
        _result("soh_out_of_range", True, labels[(soh <= 0) | (soh > SOH_MAX)], f"SOH outside (0, {SOH_MAX}]"),
        _result("negative_capacity", True, labels[labels["capacity_ah"] < 0], "capacity_ah < 0"),
        _result("negative_resistance", True, labels[labels["resistance_ohm"] < 0], "resistance_ohm < 0"),
        _result("negative_lli_lam", True,
                labels[negative_lli_lam], f"LLI or LAM below -{NEGATIVE_TOLERANCE} %"),
        _result("negative_plating_loss", True,
                labels[negative_plating], f"plated-lithium capacity loss below -{PLATING_TOLERANCE_FRACTION:.2%} of the capacity"),
        _result("lithium_created", True, labels[created],
                f"LLI falling by more than {LLI_RECOVERY_TOLERANCE_PCT:g} %-points between RPTs"),
        _result("non_finite_values", True, labels[np.isinf(numeric.to_numpy(dtype=float)).any(axis=1)],
                "+/-inf in any numeric label column"),
    ]
    ordered = labels.sort_values(["sample_id", "cycle"], kind="mergesort")
    bad = []
    for col in CUMULATIVE_COLUMNS:
        step = ordered.groupby("sample_id", sort=False)[col].diff()
        scale = ordered[col].abs().clip(lower=1e-12)
        bad.append(ordered[step < -CUMULATIVE_TOLERANCE * scale])
    results.append(_result("decreasing_cumulative", True, pd.concat(bad),
                           f"cumulative quantities ({', '.join(CUMULATIVE_COLUMNS)}) that decrease with cycle"))
    return results


def check_kk(features: pd.DataFrame) -> CheckResult:
    if features.empty:
        return CheckResult("kk_inconsistent", True, 0, [], "")
    bad = features[features["kk_residual"] > KK_THRESHOLD]
    return _result("kk_inconsistent", True, bad, f"sweeps with lin-KK residual > {KK_THRESHOLD}", "sweep_id")


def check_circuit_fit(features: pd.DataFrame) -> CheckResult:
    """Informational: sweeps whose chosen circuit fit misses the spectrum by more than
    FIT_RESIDUAL_WARN; their r0/r_ct/f_peak fit values describe the circuit, not the cell."""
    if features.empty or "fit_residual" not in features:
        return CheckResult("circuit_fit_poor", False, 0, [], "")
    bad = features[features["fit_residual"] > FIT_RESIDUAL_WARN]
    return _result("circuit_fit_poor", False, bad,
                   f"sweeps whose circuit fit residual > {FIT_RESIDUAL_WARN} (fit values not trusted)", "sweep_id")


def _not_finite_rows(manifest: pd.DataFrame) -> np.ndarray:
    """Rows with an infinite number anywhere, or a missing one where every sample needs a
    value. A protocol factor is empty (NaN) for samples whose protocol has no such factor
    (a calendar sample has no charge rate), so only there a NaN is expected."""
    numeric = manifest.select_dtypes("number")
    if not numeric.shape[1]:
        return np.zeros(len(manifest), dtype=bool)
    values = numeric.to_numpy(dtype=float)
    optional = [c in condition_columns(manifest) and c != "ambient_temperature_k" for c in numeric.columns]
    missing = np.isnan(values) & ~np.array(optional)
    return np.isinf(values).any(axis=1) | missing.any(axis=1)


def check_solver(solver_log: pd.DataFrame, manifest: pd.DataFrame) -> list[CheckResult]:
    failed = solver_log[solver_log["status"] != "ok"]
    unsolved = sorted(set(manifest["sample_id"]) - set(solver_log["sample_id"]))
    # a dataset with no ok sample holds nothing to train on: every sample failing is a
    # design problem (a cut-off no cell can reach, a value out of range), not a warning
    none_ok = manifest["sample_id"].tolist() if len(manifest) and not _ok_samples(solver_log) else []
    non_finite = manifest[_not_finite_rows(manifest)]
    return [
        _result("solver_failures", False, failed, "samples not ok (kept, flagged, excluded from splits)"),
        _result("unsolved_samples", True, unsolved, "manifest samples without a solver_log row"),
        _result("no_usable_samples", True, none_ok, "no sample of the run solved ok"),
        _result("manifest_not_finite", True, non_finite, "samples whose drawn parameters are not finite (NaN or inf)"),
    ]


def merge_results(parts: list[list[CheckResult]]) -> list[CheckResult]:
    """Add up the same checks run on slices of a table (counts summed, first examples kept)."""
    merged: dict[str, CheckResult] = {}
    for results in parts:
        for r in results:
            if r.name not in merged:
                merged[r.name] = CheckResult(r.name, r.blocking, 0, [], r.description)
            m = merged[r.name]
            m.count += r.count
            m.examples = (m.examples + [e for e in r.examples if e not in m.examples])[:5]
            m.description = m.description or r.description
    return list(merged.values())


def check_spectra_slices(slices: Iterable[pd.DataFrame]) -> tuple[list[CheckResult], pd.DataFrame]:
    """Spectrum checks over slices of whole sweeps; also returns the (sweep_id, sample_id) pairs."""
    parts, sweeps = [], []
    for spectra in slices:
        parts.append(check_spectra(spectra))
        if len(spectra):
            sweeps.append(spectra[["sweep_id", "sample_id"]].drop_duplicates())
    results = merge_results(parts) if parts else check_spectra(pd.DataFrame())
    return results, (pd.concat(sweeps, ignore_index=True) if sweeps else pd.DataFrame(columns=["sweep_id", "sample_id"]))


def check_leakage(splits: pd.DataFrame, spectra: pd.DataFrame) -> list[CheckResult]:
    """Leakage across splits; ``spectra`` needs only its sweep_id and sample_id columns."""
    used = splits[splits["split"] != "excluded"]
    design_splits = used.groupby("cell_design_id")["split"].nunique()
    leaked_designs = design_splits[design_splits > 1].index.tolist()
    dup_samples = splits.loc[splits["sample_id"].duplicated(), "sample_id"].tolist()
    straddle = []
    if not spectra.empty:
        split_of = dict(zip(splits["sample_id"], splits["split"]))
        per_sweep = spectra[["sweep_id", "sample_id"]].drop_duplicates()
        per_sweep = per_sweep.assign(split=per_sweep["sample_id"].map(split_of))
        n = per_sweep.groupby("sweep_id")["split"].nunique()
        straddle = n[n > 1].index.tolist()
    return [
        _result("cell_design_in_two_splits", True, leaked_designs, "cell_design_ids present in more than one split"),
        _result("sample_in_two_splits", True, dup_samples, "sample_ids listed more than once in splits"),
        _result("sweep_straddles_splits", True, straddle, "impedance sweeps whose rows fall in different splits"),
    ]


def run_checks(tables: dict[str, pd.DataFrame], spectra_slices: Iterable[pd.DataFrame] | None = None) -> list[CheckResult]:
    """All checks over a dict of tables (manifest, solver_log, labels, spectra, ...).

    A large spectra table can come as ``spectra_slices`` (whole sweeps per slice, e.g.
    the row groups of spectra.parquet) instead of ``tables["spectra"]``.
    """
    empty = pd.DataFrame()
    results = [check_duplicates(tables["manifest"]), check_near_duplicates(tables.get("labels", empty))]
    results += check_solver(tables["solver_log"], tables["manifest"])
    results += check_labels(tables.get("labels", empty), tables["solver_log"])
    spectrum_results, sweeps = check_spectra_slices(spectra_slices if spectra_slices is not None
                                                    else [tables.get("spectra", empty)])
    results += spectrum_results
    results.append(check_kk(tables.get("impedance_features", empty)))
    results.append(check_circuit_fit(tables.get("impedance_features", empty)))
    if "splits" in tables:
        results += check_leakage(tables["splits"], sweeps)
    return results


def report(results: list[CheckResult]) -> dict:
    blocking = [r.name for r in results if r.blocking and not r.passed]
    return {
        "passed": not blocking,
        "failed_blocking_checks": blocking,
        "warnings": [r.name for r in results if not r.blocking and not r.passed],
        "thresholds": {"soh_max": SOH_MAX, "kk_residual_max": KK_THRESHOLD, "fit_residual_warn": FIT_RESIDUAL_WARN,
                       "negative_tolerance_pct": NEGATIVE_TOLERANCE,
                       "cumulative_relative_tolerance": CUMULATIVE_TOLERANCE},
        "checks": [r.as_dict() for r in results],
    }
