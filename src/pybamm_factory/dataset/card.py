"""The data card (README.md of a run directory), metadata, checksums and verify.

What a finished run directory holds, and what is promised about it:

- ``checksums.sha256`` lists the tables' files (``data/<table>/<split>-*.parquet``, named
  from the registry in :mod:`.tables`), ``design.yaml``,
  ``run.json``, ``metadata.json``, ``quality_report.json``, the card's figures, anything
  ``augment`` wrote under ``augment/``, and ``README.md`` (the card). The card lists the
  same digests except its own (a file cannot hold its own checksum): it is written
  first, then the listing.
- Not listed there: ``checksums.sha256`` itself, and ``timings.parquet`` (wall and
  solver time per sample), which has its own one-line listing, ``timings.sha256``.
  ``.parts/`` is resume state (one file per sample and table), not part of the dataset.
- Byte identity: every file in ``checksums.sha256``, and ``checksums.sha256`` itself,
  comes out byte for byte the same from runs of the same design, seed, sample count and
  command on the same day (or with ``SOURCE_DATE_EPOCH`` set, as reproducible builds
  do), whatever the worker count or backend and whether the run was killed and resumed
  (with ``solver.compile``: on one CPU type). The tables are the same even when the
  command or the day differs; ``metadata.json`` and the card record the command and the
  creation date. Timings vary
  from run to run (machine load), so they live in ``timings.parquet``, outside this
  promise; ``augment/`` outputs are listed but record their training time.
- ``verify`` fails on a changed, missing, unlisted (stray) or unreadable file, a listing
  line that is blank, malformed or names a path outside the dataset or a non-regular
  file, and a card whose digests differ from the listing; one line per problem.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import stat
import string
from collections.abc import Iterable
from importlib import metadata as importlib_metadata
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ..design.spec import Design
from ..protocols import get_kind
from .schemas import validate_frame
from .store import PARTS, atomic_write_text, table_files, table_rows
from .tables import DATA, DATA_TABLES, DEFAULT_CONFIG, SPLIT_ORDER, TABLES, TIMINGS, TIMINGS_FILE, split_of_file

# analyses written into a dataset after the run (`pybamm-factory sensitivity`, `observe`):
# derived from its tables, outside checksums.sha256 and the identity promise; verify leaves them alone
DERIVED = "sensitivity"
DERIVED_FOLDERS = (DERIVED, "observed")

RECORD_FILES = ("design.yaml", "run.json", "metadata.json", "quality_report.json")
CARD = "README.md"
LISTING = "checksums.sha256"
TIMINGS_LISTING = f"{TIMINGS}.sha256"
# every file the dataset must list (figures and augment outputs vary with the run)
REQUIRED_FILES = RECORD_FILES + (CARD,)
# tables with a row for every sample, so at least one file each (the others may hold no rows)
REQUIRED_TABLES = ("manifest", "solver_log", "splits")
TASK_CATEGORIES = ("tabular-regression", "time-series-forecasting")
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


def _file_kind(path: Path) -> str | None:
    """None for a regular file; else why it cannot be read as one (never opens it)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if stat.S_ISLNK(mode):
        return "a symbolic link, not a regular file"
    return None if stat.S_ISREG(mode) else "not a regular file"


def _walk_files(folder: Path) -> list[Path]:
    """Regular files under ``folder`` (symbolic links not followed, hidden names skipped), sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".")]
    return [f for f in out if _file_kind(f) is None]


def listed_figures(root: Path) -> list[str]:
    """The card's figures: those ``checksums.sha256`` lists, else the PNGs in ``figures/``."""
    root = Path(root)
    listing = root / LISTING
    if _file_kind(listing) is None:
        names = [line.split("  ", 1)[1] for line in listing.read_text(errors="replace").splitlines() if "  " in line]
        return [n.removeprefix("figures/") for n in names if n.startswith("figures/") and n.count("/") == 1]
    return sorted(p.name for p in (root / "figures").glob("*.png") if _file_kind(p) is None)


def data_files(root: Path, figures: Iterable[str] | None = None) -> list[Path]:
    """Files the card lists with their checksums (``checksums.sha256`` lists them and the
    card): the tables, the run's records, its figures and what ``augment`` wrote. Named
    from the table registry, not found by globbing, so a stray file is never adopted."""
    root = Path(root)
    figures = listed_figures(root) if figures is None else figures
    files = [root / TABLES[t].file(split) for t in DATA_TABLES for split in SPLIT_ORDER]
    files += [root / name for name in RECORD_FILES]
    files += [root / "figures" / name for name in figures]
    files += _walk_files(root / "augment") if (root / "augment").is_dir() else []
    return [f for f in files if _file_kind(f) is None]


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
        "varied_parameters": list(design.varied),  # the manifest's varied-parameter columns
        "solver": {"name": design.solver.name, "rtol": design.solver.rtol, "atol": design.solver.atol,
                   "compile": design.solver.compile},
        "mesh": design.mesh,
        "versions": versions(),
        "command": command,
        "created": creation_date(),
    }


def _eis_porosity(options: dict) -> str:
    """What the spectra say about porosity, from the ageing model's options."""
    on = [k for k in ("SEI porosity change", "lithium plating porosity change") if str(options.get(k)).lower() == "true"]
    if on:
        return (f"and the negative electrode's porosity loss ({' and '.join(on)} on: the high-frequency intercept, "
                "`r_ohm_ohm`, grows with it).")
    return ("but no porosity change (off in this design's ageing model, so the high-frequency intercept, "
            "`r_ohm_ohm`, does not move with age).")


def _lam_terms(design: Design) -> str:
    """The factory's own terms on PyBaMM's LAM rates (parameters.LAM_ACTIVATION, LAM_BREAK_IN)
    that this design sets or varies."""
    from ..parameters import FACTORY_PARAMETERS, LAM_ACTIVATION, LAM_BREAK_IN, LAM_BREAK_IN_TIME

    def shown(name):
        return "varied" if name in design.varied else f"{design.fixed.get(name, FACTORY_PARAMETERS[name]):g}"

    terms = []
    energies = [n for n in LAM_ACTIVATION if design.sets(n)]
    if energies:
        terms.append("an Arrhenius factor exp(Ea / R (1/298.15 K - 1/T)) on each LAM rate ("
                     + ", ".join(f"`{n}` {shown(n)}" for n in energies) + ")")
    breaks = [n for n in LAM_BREAK_IN if design.sets(n)]
    if breaks:
        terms.append("a break-in: the LAM rate times 1 + A exp(-t / tau), t the cell's age, so a fresh cell loses "
                     "active material faster and the excess decays (" + ", ".join(f"`{n}` A {shown(n)}" for n in breaks)
                     + f"; `{LAM_BREAK_IN_TIME}` {shown(LAM_BREAK_IN_TIME)})")
    return "; ".join(terms) + "." if terms else "none (PyBaMM's model as built)."


def _rpt_window(aging) -> str:
    """The RPT's voltage window, where the design sets one apart from the protocols'."""
    upper, lower = aging.rpt_upper_voltage_v, aging.rpt_lower_voltage_v
    if upper is None and lower is None:
        return "between each protocol's voltage limits"
    return (f"between {'the protocol upper voltage' if upper is None else f'{upper:g} V'} and "
            f"{'the protocol lower voltage' if lower is None else f'{lower:g} V'}")


def _fmt(x, digits=3):
    return "n/a" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}g}"


def _row_count(root: Path, tables: dict[str, pd.DataFrame], table: str) -> int:
    """Rows of a table in memory, else from its Parquet footers (large tables stay on disk)."""
    if table in tables:
        return len(tables[table])
    return table_rows(root, table)


def creation_date() -> str:
    """Today (UTC) as YYYY-MM-DD, or the day of ``SOURCE_DATE_EPOCH`` when it is set (the
    reproducible-builds convention), so a rebuilt dataset can carry the same date."""
    import datetime

    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    when = (datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch.isdigit()
            else datetime.datetime.now(datetime.timezone.utc))
    return when.date().isoformat()


# the Hub's size categories, by the number of rows (summed over every config and split)
_SIZE_BOUNDS = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))


def size_category(rows: int) -> str:
    return next((name for bound, name in _SIZE_BOUNDS if rows < bound), "n>1B")


def hub_configs(root: Path) -> list[dict]:
    """One Hub config per table with rows, a split per file; ``labels`` is the default."""
    splits = {t: [split_of_file(p) for p in table_files(root, t)] for t in DATA_TABLES}
    present = [t for t in DATA_TABLES if splits[t]]
    default = DEFAULT_CONFIG if DEFAULT_CONFIG in present else next(iter(present), None)
    return [{"config_name": t, **({"default": True} if t == default else {}),
             "data_files": [{"split": split, "path": f"{TABLES[t].folder()}/{split}-*.parquet"} for split in splits[t]]}
            for t in present]


def front_matter(root: Path, design: Design, meta: dict) -> str:
    """The card's YAML, built and checked by huggingface_hub's ``DatasetCardData``."""
    from huggingface_hub import DatasetCardData

    rows = sum(table_rows(root, t) for t in DATA_TABLES)
    data = DatasetCardData(
        license=design.license.lower(), pretty_name=f"pybamm-factory: {design.name}",
        tags=["battery", "lithium-ion", "degradation", "electrochemical-impedance-spectroscopy", "synthetic", "pybamm"],
        task_categories=list(TASK_CATEGORIES), size_categories=[size_category(rows)],
        configs=hub_configs(root), creation_date=meta.get("created") or creation_date())
    return data.to_yaml()


def _field_rows(root: Path, table: str) -> list[tuple[str, str, str]]:
    """(column, unit, description) of a table's first file, from its Parquet field metadata."""
    files = table_files(root, table)
    if not files:
        return []
    out = []
    for field in pq.read_schema(files[0]):
        md = field.metadata or {}
        out.append((field.name, md.get(b"unit", b"").decode(), md.get(b"description", b"").decode()))
    return out


def column_dictionary(root: Path) -> str:
    """Per table, its columns with unit and description (from the files themselves)."""
    parts = []
    for t in DATA_TABLES:
        rows = _field_rows(root, t)
        if not rows:
            continue
        body = "\n".join(f"| `{c}` | {u or '-'} | {d.replace('|', '/') or '-'} |" for c, u, d in rows)
        parts.append(f"<details><summary><code>{t}</code> ({len(rows)} columns)</summary>\n\n"
                     f"| column | unit | description |\n|---|---|---|\n{body}\n\n</details>")
    return "\n\n".join(parts) or "(no tables)"


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
            f"loss), {jump.min_cycles} <= dN <= {jump.max_cycles}, halved until no amount that cannot be negative "
            "(SEI, plated lithium, active material) would fall below half of itself; RPTs and EIS always solved exactly; "
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


def failures_text(design: Design, tables: dict[str, pd.DataFrame]) -> str:
    """The rare-failure section: per class the share asked, the cell designs and samples
    that carry it, and how many of its ok cells the labels find a knee in (and where)."""
    if not design.failures:
        return ""
    from ..design.failures import SCENARIOS, prevalence

    manifest, labels, log = tables["manifest"], tables.get("labels", pd.DataFrame()), tables["solver_log"]
    ok = set(log.loc[log["status"] == "ok", "sample_id"])
    onset = (labels.groupby("sample_id")["knee_onset_cycle"].first() if len(labels) and "knee_onset_cycle" in labels
             else pd.Series(dtype=float))
    lines = ["## Rare failures", "",
             "A stated share of cell designs carries a named failure scenario (`manifest.failure_class`, "
             "`manifest.failure_severity`: the factor on the scenario's rate); `labels.knee_onset_cycle` is where the "
             "simulated SOH bends, found on the trajectory, not assumed. Splits are stratified by class.", "",
             "| class | share asked | cell designs | samples | ok samples with a knee | median knee onset (cycle) | severity |",
             "|---|---|---|---|---|---|---|"]
    asked = {r.scenario: r for r in design.failures}
    for row in prevalence(manifest, design.failures).itertuples(index=False):
        ids = set(manifest.loc[manifest["failure_class"] == row.failure_class, "sample_id"]) & ok
        knees = onset.reindex(sorted(ids)).dropna()
        request = asked.get(row.failure_class)
        severity = f"{request.severity_low:g}-{request.severity_high:g}x" if request else "-"
        lines.append(f"| `{row.failure_class}` | {row.share_asked:.3g} | {row.cell_designs} | {row.samples} | "
                     f"{len(knees)} of {len(ids)} | {_fmt(float(knees.median()) if len(knees) else None)} | {severity} |")
    lines += [""] + [f"- `{name}`: {SCENARIOS[name].description} (`{SCENARIOS[name].parameter}`; {SCENARIOS[name].source})"
                     for name in asked]
    return "\n".join(lines) + "\n"


def render_card(root: Path, design: Design, meta: dict, tables: dict[str, pd.DataFrame], quality: dict,
                figures: list[str], checksums: dict[str, str], augmentation: str = "", sensitivity: str = "",
                observation: str = "") -> str:
    template = string.Template((resources.files("pybamm_factory") / "data_cards" / "dataset_card.md").read_text())
    log = tables["solver_log"]
    status = log["status"].value_counts()
    n = len(tables["manifest"])
    labels = tables.get("labels", pd.DataFrame())
    rul = labels.groupby("sample_id")["rul_source"].first().value_counts() if len(labels) else pd.Series(dtype=int)
    splits = tables.get("splits", pd.DataFrame({"split": []}))["split"].value_counts()
    varied_rows = "\n".join(
        f"| `{name}` | {d.kind} | {d.low:g} | {d.high:g} | {d.source or '-'} |" for name, d in design.varied.items())
    protocols = "; ".join(f"`{p.protocol_id}` ({p.kind}): {get_kind(p.kind).describe(p)}" for p in design.protocols)
    quality_rows = "\n".join(
        f"| {c['name']} | {'yes' if c['blocking'] else 'no'} | {c['count']} | {', '.join(c['examples'][:3])} |"
        for c in quality["checks"])
    blocking = [c for c in quality["checks"] if c["blocking"] and not c["passed"]]
    reasons = "; ".join(f"{c['name']}: {c['description'] or 'see below'} ({c['count']}"
                        + (f", e.g. {', '.join(map(str, c['examples'][:2]))})" if c["examples"] else ")")
                        for c in blocking) or ", ".join(quality["failed_blocking_checks"])
    values = {
        "design_name": design.name,
        "description": design.description or "",
        "pybamm_version": meta["versions"].get("pybamm", "?"),
        "factory_version": meta["versions"].get("pybamm-factory", "?"),
        "model_name": design.model.upper(),
        "parameter_set": design.parameter_set,
        "parameter_set_source": design.parameter_set_source or "as shipped with PyBaMM",
        "table_rows": "\n".join(
            f"| `{t}` | `{TABLES[t].folder()}/` {', '.join(split_of_file(p) for p in table_files(root, t)) or '(no rows)'} | "
            f"{_row_count(root, tables, t)} | {TABLES[t].row.removeprefix('One row per ')} | "
            f"{', '.join(TABLES[t].keys)} | {TABLES[t].joins} |" for t in DATA_TABLES),
        "split_names": ", ".join(split_of_file(p) for p in table_files(root, DEFAULT_CONFIG)) or "-",
        "column_dictionary": column_dictionary(root),
        "model_options": json.dumps(design.model_options),
        "mesh": json.dumps(design.mesh),
        "solver": design.solver.name + (", model compiled to C (gcc -O3 -march=native: tables identical across "
                                         "workers and backends on one CPU type, not across CPU types)"
                                         if design.solver.compile else ""),
        "rtol": design.solver.rtol, "atol": design.solver.atol,
        "sampler": design.sampler, "seed": meta["seed"], "n_samples": n,
        "n_designs": tables["manifest"]["cell_design_id"].nunique(),
        "protocols": protocols,
        "temperatures": ", ".join(f"{t:g} K ({t - 273.15:g} °C)" for t in design.ambient_temperatures_k),
        "max_cycles": design.aging.max_cycles, "rpt_interval": design.aging.rpt_interval_cycles,
        "rpt_fade": (f" and whenever the RPT capacity is expected to have lost another {design.aging.rpt_fade_step:.0%} "
                     "of its first value (judged from the aging cycles' capacity, scaled by the RPT-to-aging fade ratio "
                     "of the stretch before)" if design.aging.rpt_fade_step else ""),
        "cpu_limit": (f" A sample that uses more than {design.aging.sample_cpu_limit_s:g} CPU seconds is stopped and "
                      "recorded as failed with that reason." if design.aging.sample_cpu_limit_s else ""),
        "cycle_jump": cycle_jump_text(design),
        "fade_shape": fade_text(tables),
        "failures": failures_text(design, tables),
        "stop_soh": design.aging.stop_soh, "rpt_charge": _fmt(design.aging.rpt_charge_c_rate),
        "rpt_discharge": _fmt(design.aging.rpt_discharge_c_rate),
        "rpt_window": _rpt_window(design.aging),
        "lam_terms": _lam_terms(design),
        "eis_porosity": _eis_porosity(design.model_options),
        "eis_socs": ", ".join(f"{s:g}" for s in design.eis.socs) if design.eis.enabled else "(disabled)",
        "eis_points": len(design.eis.frequencies_hz()), "f_min": f"{design.eis.f_min_hz:g}", "f_max": f"{design.eis.f_max_hz:g}",
        "command": meta["command"],
        "varied_rows": varied_rows or "| (none) | | | | |",
        "correlations": correlation_text(design),
        "n_ok": int(status.get("ok", 0)), "n_infeasible": int(status.get("infeasible", 0)),
        "n_failed": int(status.get("failed", 0)),
        "failure_rate": f"{1 - status.get('ok', 0) / max(n, 1):.1%}",
        "rul_sources": ", ".join(f"{k} {v}" for k, v in rul.items()) or "n/a",
        "quality_banner": "" if quality["passed"] else (
            f"> **QUALITY GATE FAILED: {reasons}.** Read Quality gate below before using this dataset.\n\n"),
        "quality_passed": "yes" if quality["passed"] else "no",
        "quality_failed": ", ".join(quality["failed_blocking_checks"]) or "none",
        "quality_warnings": ", ".join(quality["warnings"]) or "none",
        "quality_rows": quality_rows,
        "split_counts": ", ".join(f"{k} {v}" for k, v in splits.items()) or "n/a",
        "figures": "\n\n".join(f"![{Path(f).stem}](figures/{f})" for f in figures) or "(none)",
        "augmentation": augmentation or "No generated samples. `pybamm-factory augment DIR` adds them.",
        "sensitivity": sensitivity or ("## Global sensitivity\n\nNot computed. `pybamm-factory sensitivity DIR` writes "
                                       "Sobol' or RBD-FAST indices of every label and adds them here."),
        "observation": observation or ("## Observed data (measurement layer)\n\nNone. `pybamm-factory observe DIR --profile NAME` writes "
                                       "noisy copies of the curves, spectra and features as a cycler or a BMS would "
                                       "measure them (docs/observe.md)."),
        "versions": "\n".join(f"- {k}: {v}" for k, v in meta["versions"].items()),
        "checksum_rows": "\n".join(f"| `{name}` | `{digest}` |" for name, digest in checksums.items()),
    }
    return _checked_card(front_matter(root, design, meta), template.substitute(values))


def _checked_card(yaml_text: str, body: str) -> str:
    """Front matter and body as huggingface_hub's ``DatasetCard`` writes them (it parses the
    YAML into ``DatasetCardData``: a card the Hub could not read fails here, not on upload)."""
    from huggingface_hub import DatasetCard

    return str(DatasetCard(f"---\n{yaml_text}\n---\n\n{body}"))


def file_checksums(root: Path, figures: Iterable[str] | None = None) -> dict[str, str]:
    """sha256 of every file of ``data_files`` by its path relative to ``root`` (the card's list)."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): sha256(p) for p in data_files(root, figures)}


def write_checksums(root: Path, sums: dict[str, str] | None = None) -> dict[str, str]:
    """Write ``checksums.sha256``: ``sums`` (default: ``file_checksums``) plus the card,
    ``README.md``, which must be written before; and ``timings.sha256`` for the timings.
    Returns what ``checksums.sha256`` lists."""
    root = Path(root)
    sums = dict(file_checksums(root) if sums is None else sums)
    if _file_kind(root / CARD) is None:
        sums[CARD] = sha256(root / CARD)
    atomic_write_text(root / LISTING, "".join(f"{d}  {n}\n" for n, d in sums.items()))
    if _file_kind(root / TIMINGS_FILE) is None:
        atomic_write_text(root / TIMINGS_LISTING, f"{sha256(root / TIMINGS_FILE)}  {TIMINGS_FILE}\n")
    return sums


_LISTING_LINE = re.compile(r"([0-9a-f]{64})  (.+)")
_CARD_ROW = re.compile(r"^\| `([^`]+)` \| `([0-9a-f]{64})` \|$", re.MULTILINE)


def _show(name: str) -> str:
    """A name fit for one line of output (control characters escaped)."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in name)


def _refused(root: Path, name: str) -> str | None:
    """Why a listed name cannot be a file of the dataset at ``root`` (None when it can)."""
    if not name.isprintable() or "\\" in name:
        return "refused: control character or backslash in the name"
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        return "refused: absolute path (names are relative to the dataset)"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return "refused: empty, '.' or '..' part in the path (names stay inside the dataset)"
    if name.split("/")[0] == PARTS:
        return f"refused: {PARTS}/ is resume state, not part of the dataset"
    try:
        inside = (root / name).resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError) as exc:
        return f"refused: cannot resolve the path ({exc})"
    return None if inside else "refused: the path leads outside the dataset (through a symbolic link)"


def _read_listing(root: Path, listing: str, problems: list[str]) -> dict[str, str]:
    """``{name: digest}`` of a sha256sum-style listing; bad lines become problems."""
    try:
        lines = (root / listing).read_bytes().decode().split("\n")
    except UnicodeDecodeError:
        problems.append(f"{listing}: not UTF-8 text")
        return {}
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    listed: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        match = _LISTING_LINE.fullmatch(line)
        if not line.strip():
            problems.append(f"{listing} line {number}: blank line")
        elif match is None:
            problems.append(f"{listing} line {number}: not '<sha256>  <file>': {_show(line[:80])}")
        elif match.group(2) in listed:
            problems.append(f"{_show(match.group(2))}: listed twice in {listing}")
        else:
            why = _refused(root, match.group(2))
            if why:
                problems.append(f"{_show(match.group(2))}: {why} ({listing} line {number})")
            else:
                listed[match.group(2)] = match.group(1)
    return listed


def _check_file(root: Path, name: str, digest: str, listing: str) -> str | None:
    kind = _file_kind(root / name)
    if kind == "missing":
        return f"{name}: listed in {listing} but missing"
    if kind:
        return f"{name}: {kind}; refused"
    if sha256(root / name) != digest:
        return f"{name}: sha256 mismatch (file changed since the run)"
    return None


def _check_parquet(path: Path, table: str, shown: str) -> list[str]:
    """Schema problems of a table's file (named ``shown``), read a row group at a time; an
    unreadable file is one line."""
    problems: list[str] = []
    try:
        parquet = pq.ParquetFile(path)
        for i in range(max(parquet.num_row_groups, 1)):
            frame = parquet.read_row_group(i).to_pandas() if parquet.num_row_groups else parquet.read().to_pandas()
            for p in validate_frame(frame, table):
                p = f"{shown}: {p.removeprefix(table + ': ')}"
                if p not in problems:
                    problems.append(p)
    except Exception as exc:  # noqa: BLE001 - any reader error is this file's problem, reported in one line
        message = (str(exc).strip().splitlines() or [""])[0][:160]
        problems.append(f"{shown}: not a readable Parquet file ({type(exc).__name__}: {message})")
    return problems


def _split_problems(root: Path, listed: dict[str, str], table_of: dict[str, str]) -> list[str]:
    """Rows in a split's file whose sample the ``splits`` table puts in another split."""
    names = [n for n in listed if table_of.get(n) == "splits" and _file_kind(root / n) is None]
    try:
        split_of = dict(zip(*(pd.concat([pd.read_parquet(root / n, columns=["sample_id", "split"]) for n in names])[c].astype(str)
                              for c in ("sample_id", "split")))) if names else {}
    except Exception:  # noqa: BLE001 - an unreadable splits file is reported by the schema check
        return []
    problems = []
    for name in listed:
        table = table_of.get(name)
        if table is None or _file_kind(root / name) is not None:
            continue
        split = split_of_file(name)
        try:
            ids = pq.read_table(root / name, columns=["sample_id"]).column("sample_id").to_pylist()
        except Exception:  # noqa: BLE001 - reported by the schema check
            continue
        wrong = sorted({i for i in ids if split_of.get(i) != split})
        if wrong:
            problems.append(f"{name}: {len(wrong)} samples not in the '{split}' split of the splits table "
                            f"(e.g. {', '.join(map(str, wrong[:2]))})")
    return problems


def verify(root: Path) -> list[str]:
    """Problems of a dataset directory, one line each (empty when it is intact).

    Checks every file listed in ``checksums.sha256`` (paths must stay inside the dataset
    and name regular files), that the listing holds every file the table registry
    requires, that ``README.md`` lists the same digests, that no other file lies in the
    directory (``.parts/`` aside), ``timings.parquet`` against ``timings.sha256``, and
    every table against its JSON schema. Never opens a non-regular file.
    """
    root = Path(root)
    kind = _file_kind(root / LISTING)
    if kind == "missing":
        return [f"{root}: no {LISTING} (not a pybamm-factory dataset?)"]
    if kind:
        return [f"{LISTING}: {kind}; refused"]
    problems: list[str] = []
    listed = _read_listing(root, LISTING, problems)
    for name, digest in listed.items():
        problem = _check_file(root, name, digest, LISTING)
        if problem:
            problems.append(_show(problem))
    for name in REQUIRED_FILES:
        if name not in listed:
            state = "missing, and" if _file_kind(root / name) == "missing" else "present but"
            problems.append(f"{name}: {state} not listed in {LISTING}")
    table_of = {TABLES[t].file(split).as_posix(): t for t in DATA_TABLES for split in SPLIT_ORDER}
    for name in listed:
        if name.startswith(f"{DATA}/") and name not in table_of:
            problems.append(f"{_show(name)}: not a table file ({DATA}/<table>/<split>-00000-of-00001.parquet, "
                            f"tables {', '.join(DATA_TABLES)}, splits {', '.join(SPLIT_ORDER)})")
    for t in REQUIRED_TABLES:
        if not any(table_of.get(name) == t for name in listed):
            problems.append(f"{TABLES[t].folder()}/: no file listed in {LISTING} (every sample has a row in {t})")

    if _file_kind(root / CARD) is None:  # the card's digest table must match the listing
        rows = dict(_CARD_ROW.findall((root / CARD).read_text(errors="replace")))
        for name, digest in listed.items():
            if name != CARD and rows.get(name) != digest:
                problems.append(f"{_show(name)}: {'another sha256 in' if name in rows else 'not listed in'} {CARD}")
        for name in sorted(rows.keys() - listed.keys() - {CARD}):
            problems.append(f"{_show(name)}: listed in {CARD} but not in {LISTING}")

    kinds = {name: _file_kind(root / name) for name in (TIMINGS_FILE, TIMINGS_LISTING)}
    for name, kind in kinds.items():
        if kind:
            problems.append(f"{name}: {kind}" + ("" if kind == "missing" else "; refused"))
    if not any(kinds.values()):
        timing_sums = _read_listing(root, TIMINGS_LISTING, problems)
        if set(timing_sums) != {TIMINGS_FILE}:
            problems.append(f"{TIMINGS_LISTING}: should list {TIMINGS_FILE} alone")
        elif problem := _check_file(root, TIMINGS_FILE, timing_sums[TIMINGS_FILE], TIMINGS_LISTING):
            problems.append(problem)

    expected = set(listed) | {LISTING, TIMINGS_FILE, TIMINGS_LISTING} | set(REQUIRED_FILES)  # those: reported above
    for dirpath, dirnames, filenames in os.walk(root):  # symbolic links are not followed
        here = Path(dirpath)
        if here == root:
            dirnames[:] = [d for d in dirnames if d not in (PARTS, *DERIVED_FOLDERS)]
        for name in sorted(filenames) + sorted(d for d in dirnames if (here / d).is_symlink()):
            rel = (here / name).relative_to(root).as_posix()
            if rel not in expected:
                problems.append(f"{_show(rel)}: stray file, not listed in {LISTING}")

    checked = [(name, table_of[name]) for name in listed if name in table_of and _file_kind(root / name) is None]
    if _file_kind(root / TIMINGS_FILE) is None:
        checked.append((TIMINGS_FILE, TIMINGS))
    for name, table in checked:
        problems += _check_parquet(root / name, table, name)
    problems += _split_problems(root, listed, table_of)
    return [" ".join(p.splitlines()) for p in problems]
