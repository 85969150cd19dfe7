"""The data card (README.md of a run directory), metadata, checksums and verify."""

from __future__ import annotations

import hashlib
import json
import platform
import string
from importlib import metadata as importlib_metadata
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ..design.spec import Design
from ..protocols import get_kind
from .schemas import validate_frame
from .store import atomic_write_text, table_rows

DATA_TABLES = ("manifest", "solver_log", "labels", "curves", "spectra", "impedance_features", "pulses", "splits")
ROW_MEANING = {
    "manifest": "a sample: ids, varied parameters, conditions",
    "solver_log": "a sample: solver status, reason, tolerances, wall time",
    "labels": "a reference test of a sample",
    "curves": "a grid point of an RPT discharge curve",
    "spectra": "a frequency of an impedance sweep",
    "impedance_features": "an impedance sweep",
    "pulses": "a resistance pulse of an RPT (designs with aging.rpt_pulse)",
    "splits": "a sample and its split",
}
PACKAGES = ("pybamm-factory", "pybamm", "casadi", "pybammsolvers", "numpy", "scipy", "pandas", "pyarrow",
            "SALib", "joblib", "impedance", "dask", "distributed", "torch", "pybop")


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_files(root: Path) -> list[Path]:
    """Files covered by checksums: tables, generated tables, reports, metadata, figures."""
    root = Path(root)
    files = sorted(root.glob("*.parquet")) + sorted(root.glob("*.json")) + sorted((root / "figures").glob("*.png"))
    files += sorted((root / "augment").rglob("*")) if (root / "augment").exists() else []
    return [f for f in files if f.is_file()]


def parameter_values_record(design: Design) -> dict:
    """Every scalar parameter value after the design's fixed overrides; varied ones marked."""
    from ..simulate.aging import base_parameter_values

    pv = base_parameter_values(design)
    out = {}
    for key in sorted(pv.keys()):
        value = pv[key]
        if key in design.varied:
            out[key] = "varied (see manifest)"
        elif isinstance(value, (int, float, np.floating)):
            out[key] = float(value)
        else:
            out[key] = getattr(value, "__name__", type(value).__name__)
    return out


def build_metadata(design: Design, seed: int, samples: int, command: str) -> dict:
    return {
        "design": design.raw,
        "design_sha256": design.content_hash,
        "seed": seed,
        "samples_requested": samples,
        "model": design.model,
        "model_options": design.model_options,
        "parameter_set": design.parameter_set,
        "parameter_values": parameter_values_record(design),
        "solver": {"name": design.solver.name, "rtol": design.solver.rtol, "atol": design.solver.atol,
                   "compile": design.solver.compile},
        "mesh": design.mesh,
        "versions": versions(),
        "command": command,
    }


def _fmt(x, digits=3):
    return "n/a" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}g}"


def _row_count(root: Path, tables: dict[str, pd.DataFrame], table: str) -> int:
    """Rows of a table in memory, else from its Parquet footer (large tables stay on disk)."""
    if table in tables:
        return len(tables[table])
    return table_rows(Path(root) / f"{table}.parquet")


def correlation_text(design: Design) -> str:
    """One line on how the varied parameters depend on each other."""
    block = design.correlations
    if block is None:
        return "The varied parameters are sampled independently (Latin hypercube or Saltelli)."
    n = len(block.names)
    pairs = "; ".join(f"`{block.names[i]}` with `{block.names[j]}` {block.matrix[i][j]:+.3f}"
                      for i in range(n) for j in range(i + 1, n))
    return (f"Correlated through a Gaussian copula (correlation of normal scores; normal parameters form a "
            f"multivariate normal truncated to their low/high, the others keep their distribution above): {pairs}. "
            f"Source: {block.source or '-'}.")


def cycle_jump_text(design: Design) -> str:
    jump = design.aging.cycle_jump
    if jump is None:
        return "Every aging cycle is solved (no cycle jumps)."
    return (f"Cycle jumps: {jump.exact_cycles} cycles solved exactly between jumps, the cycle-end state extrapolated "
            f"over dN cycles with dN = {jump.tolerance:g} x |rate| / |change of rate| (smallest over LLI, LAM and SEI "
            f"loss), {jump.min_cycles} <= dN <= {jump.max_cycles}; RPTs and EIS always solved exactly; "
            "`solver_log` counts the cycles solved and jumped per sample. Degradation rates are not scaled.")


def fade_text(tables: dict[str, pd.DataFrame]) -> str:
    from ..labels import fade

    labels, log = tables.get("labels", pd.DataFrame()), tables["solver_log"]
    if labels.empty or "equivalent_full_cycles" not in labels:
        return "n/a"
    ok = set(log.loc[log["status"] == "ok", "sample_id"])
    stats = fade.summary(fade.per_cell(labels, tables["manifest"], ok))
    if not stats:
        return "n/a"
    p = lambda key, d=0: " / ".join(f"{v:.{d}f}" for v in stats[key])  # noqa: E731
    if not np.isfinite(stats["eol_cycle_p10_p50_p90"]).any():
        return f"no cell reached SOH 0.8 ({stats['cells']} cells); knees {stats['knees']}"
    return (f"cycles to SOH 0.8 (p10 / p50 / p90) {p('eol_cycle_p10_p50_p90')}, equivalent full cycles "
            f"{p('eol_efc_p10_p50_p90')}; exponent b of SOH = 1 - a N^b {p('b_p10_p50_p90', 2)}; knees "
            f"{stats['knees']} of {stats['cells']}; at end of life median LLI {stats['lli_pct_median']:.1f} %, "
            f"LAM_ne {stats['lam_ne_pct_median']:.1f} %, LAM_pe {stats['lam_pe_pct_median']:.1f} %, plating "
            f"{stats['plating_share_median']:.1%} of the capacity lost")


def render_card(root: Path, design: Design, meta: dict, tables: dict[str, pd.DataFrame], quality: dict,
                figures: list[str], checksums: dict[str, str], augmentation: str = "") -> str:
    template = string.Template((resources.files("pybamm_factory") / "data_cards" / "dataset_card.md").read_text())
    log = tables["solver_log"]
    status = log["status"].value_counts()
    n = len(tables["manifest"])
    labels = tables.get("labels", pd.DataFrame())
    rul = labels.groupby("sample_id")["rul_source"].first().value_counts() if len(labels) else pd.Series(dtype=int)
    configs = "\n".join(f"- config_name: {t}\n  data_files: {t}.parquet" for t in DATA_TABLES if (Path(root) / f"{t}.parquet").exists())
    splits = tables.get("splits", pd.DataFrame({"split": []}))["split"].value_counts()
    varied_rows = "\n".join(
        f"| `{name}` | {d.kind} | {d.low:g} | {d.high:g} | {d.source or '-'} |" for name, d in design.varied.items())
    protocols = "; ".join(f"`{p.protocol_id}` ({p.kind}): {get_kind(p.kind).describe(p)}" for p in design.protocols)
    quality_rows = "\n".join(
        f"| {c['name']} | {'yes' if c['blocking'] else 'no'} | {c['count']} | {', '.join(c['examples'][:3])} |"
        for c in quality["checks"])
    values = {
        "license": design.license.lower(),
        "design_name": design.name,
        "size_category": "n<1K" if n < 1000 else "1K<n<10K",
        "configs": configs,
        "description": design.description or "",
        "pybamm_version": meta["versions"].get("pybamm", "?"),
        "factory_version": meta["versions"].get("pybamm-factory", "?"),
        "model_name": design.model.upper(),
        "parameter_set": design.parameter_set,
        "parameter_set_source": design.parameter_set_source or "as shipped with PyBaMM",
        "table_rows": "\n".join(f"| `{t}.parquet` | {_row_count(root, tables, t)} | {ROW_MEANING[t]} |"
                                for t in DATA_TABLES if t in tables or (Path(root) / f"{t}.parquet").exists()),
        "model_options": json.dumps(design.model_options),
        "mesh": json.dumps(design.mesh),
        "solver": design.solver.name + (", model compiled to C (gcc -O3 -march=native: tables identical across "
                                         "workers and backends on one CPU type, not across CPU types)"
                                         if design.solver.compile else ""),
        "rtol": design.solver.rtol, "atol": design.solver.atol,
        "sampler": design.sampler, "seed": meta["seed"], "n_samples": n,
        "n_designs": tables["manifest"]["cell_design_id"].nunique(),
        "protocols": protocols,
        "temperatures": ", ".join(f"{t - 273.15:g} °C" for t in design.ambient_temperatures_k),
        "max_cycles": design.aging.max_cycles, "rpt_interval": design.aging.rpt_interval_cycles,
        "rpt_fade": (f" and whenever the RPT capacity is expected to have lost another {design.aging.rpt_fade_step:.0%} "
                     "of its first value (judged from the aging cycles' capacity, scaled by the RPT-to-aging fade ratio "
                     "of the stretch before)" if design.aging.rpt_fade_step else ""),
        "cpu_limit": (f" A sample that uses more than {design.aging.sample_cpu_limit_s:g} CPU seconds is stopped and "
                      "recorded as failed with that reason." if design.aging.sample_cpu_limit_s else ""),
        "cycle_jump": cycle_jump_text(design),
        "fade_shape": fade_text(tables),
        "stop_soh": design.aging.stop_soh, "rpt_charge": _fmt(design.aging.rpt_charge_c_rate),
        "rpt_discharge": _fmt(design.aging.rpt_discharge_c_rate),
        "eis_socs": ", ".join(f"{s:.0%}" for s in design.eis.socs) if design.eis.enabled else "(disabled)",
        "eis_points": len(design.eis.frequencies_hz()), "f_min": f"{design.eis.f_min_hz:g}", "f_max": f"{design.eis.f_max_hz:g}",
        "command": meta["command"],
        "varied_rows": varied_rows or "| (none) | | | | |",
        "correlations": correlation_text(design),
        "n_ok": int(status.get("ok", 0)), "n_infeasible": int(status.get("infeasible", 0)),
        "n_failed": int(status.get("failed", 0)),
        "failure_rate": f"{1 - status.get('ok', 0) / max(n, 1):.1%}",
        "rul_sources": ", ".join(f"{k} {v}" for k, v in rul.items()) or "n/a",
        "wall_median": _fmt(float(log["wall_time_s"].median()) if len(log) else None),
        "wall_p90": _fmt(float(log["wall_time_s"].quantile(0.9)) if len(log) else None),
        "quality_banner": "" if quality["passed"] else (
            "> **This dataset failed its quality gate** (" + ", ".join(quality["failed_blocking_checks"])
            + "): read Quality gate below before using it.\n"),
        "quality_passed": "yes" if quality["passed"] else "no",
        "quality_failed": ", ".join(quality["failed_blocking_checks"]) or "none",
        "quality_warnings": ", ".join(quality["warnings"]) or "none",
        "quality_rows": quality_rows,
        "split_counts": ", ".join(f"{k} {v}" for k, v in splits.items()) or "n/a",
        "figures": "\n\n".join(f"![{Path(f).stem}](figures/{f})" for f in figures) or "(none)",
        "augmentation": augmentation or "No generated samples. `pybamm-factory augment DIR` adds them.",
        "versions": "\n".join(f"- {k}: {v}" for k, v in meta["versions"].items()),
        "checksum_rows": "\n".join(f"| `{name}` | `{digest}` |" for name, digest in checksums.items()),
    }
    return template.substitute(values)


def write_checksums(root: Path) -> dict[str, str]:
    root = Path(root)
    sums = {str(p.relative_to(root)): sha256(p) for p in data_files(root)}
    atomic_write_text(root / "checksums.sha256", "".join(f"{d}  {n}\n" for n, d in sums.items()))
    return sums


def verify(root: Path) -> list[str]:
    """Problems found: checksum mismatches, missing files, schema violations."""
    root = Path(root)
    problems = []
    listing = root / "checksums.sha256"
    if not listing.exists():
        return [f"{root}: no checksums.sha256 (not a pybamm-factory dataset?)"]
    card = (root / "README.md").read_text() if (root / "README.md").exists() else ""
    for line in listing.read_text().splitlines():
        digest, name = line.split("  ", 1)
        path = root / name
        if not path.exists():
            problems.append(f"{name}: listed in checksums.sha256 but missing")
            continue
        if sha256(path) != digest:
            problems.append(f"{name}: sha256 mismatch (file changed since the run)")
        if card and f"`{digest}`" not in card:
            problems.append(f"{name}: checksum not listed in README.md")
    for table in DATA_TABLES:
        path = root / f"{table}.parquet"
        if path.exists():
            problems += validate_frame(pd.read_parquet(path), table)
    return problems
