"""The Python API behind the CLI: design -> manifest -> physics -> tables -> gate -> card."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import yaml

from .dataset import card as card_mod
from .dataset import figures as figures_mod
from .dataset import rundir, store
from .dataset.tables import LARGE_TABLES, SAMPLE_TABLES, TIMINGS, TIMINGS_FILE
from .design import Design, build_manifest, load_design
from .memory import configure_allocator
from .quality import make_splits, report, run_checks
from .simulate.runner import run_samples

# an output directory this run must not write into, and a full disk (printed in one line by the CLI)
RunConflictError = rundir.RunConflictError
DiskFullError = rundir.DiskFullError


def default_out_dir(design: Design, samples: int, seed: int) -> Path:
    """``datasets/<design>-n<samples>-seed<seed>``; refused unless it resolves inside ``datasets/``."""
    out = Path("datasets") / f"{design.name}-n{samples}-seed{seed}"
    rundir.check_inside(out, Path("datasets"))
    return out


def write_manifest(design: Design | str | Path | None, samples: int, seed: int, out: Path) -> Path:
    """Write only the manifest (``pybamm-factory design``)."""
    design = design if isinstance(design, Design) else load_design(design)
    path = Path(out)
    if path.suffix != ".parquet":
        path = path / "manifest.parquet"
    store.atomic_write_parquet(build_manifest(design, samples, seed), path, "manifest")
    return path


def _prepare(design: Design, samples: int, seed: int, out: Path) -> tuple[pd.DataFrame, rundir.RunLock, bool]:
    """Check the output directory (refusing one that is not new, empty or a run of this
    design, seed and size), create and lock it, remove what a killed run left half
    written, and write run.json, the manifest and the design. Returns the manifest, the
    held lock (the caller releases it) and whether the directory already holds the
    finished dataset (then nothing is written)."""
    info = {"design_name": design.name, "design_sha256": design.content_hash, "seed": seed, "samples": samples}
    manifest = build_manifest(design, samples, seed)
    lock = rundir.open_run_dir(out, info)
    try:
        store.clear_removed_parts(out)
        if is_finished(out):
            return manifest, lock, True
        store.atomic_write_text(out / "run.json", json.dumps(info, indent=2))  # first: marks the folder as this run's
        store.atomic_write_parquet(manifest, out / store.PARTS_MANIFEST, "manifest")
        store.atomic_write_text(out / "design.yaml", yaml.safe_dump(design.raw, sort_keys=False))
    except BaseException:
        lock.release()
        raise
    return manifest, lock, False


def is_finished(out: Path) -> bool:
    """A finished dataset: its checksums are written and its resume state removed."""
    return (Path(out) / card_mod.LISTING).exists() and not (Path(out) / store.PARTS).exists()


def _progress(total: int, initial: int, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=quiet, file=sys.stderr, unit="sample",
                desc="simulating", dynamic_ncols=True)


def simulate_missing(design: Design, manifest: pd.DataFrame, out: Path, workers: int, backend: str,
                     scheduler: str | None, quiet: bool) -> int:
    """Solve the manifest's samples that have no finished part yet; returns how many ran."""
    done = store.finished_samples(out)
    todo = manifest[~manifest["sample_id"].isin(done)].to_dict("records")
    failed = 0
    with _progress(len(manifest), len(manifest) - len(todo), quiet) as bar:
        def on_result(tables):
            nonlocal failed
            log = tables["solver_log"].iloc[0]
            store.write_sample_parts(out, log["sample_id"], tables)
            failed += log["status"] != "ok"
            bar.set_postfix(failed=failed, refresh=False)
            bar.update(1)

        return run_samples(design, todo, workers=workers, backend=backend, scheduler=scheduler, on_result=on_result)


def finalise(out: Path, design: Design, seed: int, samples: int, command: str) -> dict:
    """Compact parts into tables laid out by split, gate, draw, write the card and
    checksums, then remove the resume state (``.parts/``).

    Wall and solver times go to ``timings.parquet`` alone, outside the byte-identity
    promise (see :mod:`pybamm_factory.dataset.card`); every other file comes out the same
    whatever the workers, backend or interruptions."""
    out = Path(out)
    manifest = pd.read_parquet(out / store.PARTS_MANIFEST)
    tables = {"manifest": manifest}
    for name in SAMPLE_TABLES:
        if name not in LARGE_TABLES:  # curves and spectra: written in slices below, never whole in memory
            tables[name] = store.compact_table(out, name, manifest)
    store.atomic_write_parquet(store.compact_table(out, TIMINGS, manifest), out / TIMINGS_FILE, TIMINGS)
    tables["splits"] = make_splits(manifest, tables["solver_log"], design.splits, seed)
    split_of = dict(zip(tables["splits"]["sample_id"], tables["splits"]["split"]))
    for name, frame in tables.items():
        store.write_table(out, name, frame, split_of)
    for name in LARGE_TABLES:
        store.write_compacted(out, name, manifest, split_of)
    quality = report(run_checks(tables, spectra_slices=store.iter_table(out, "spectra")))
    store.atomic_write_text(out / "quality_report.json", json.dumps(quality, indent=2, default=str))
    meta = card_mod.build_metadata(design, seed, samples, command)
    store.atomic_write_text(out / "metadata.json", json.dumps(meta, indent=2, default=str))
    figures = figures_mod.all_figures(out, tables)
    write_card(out, design, meta, tables, quality, figures)
    store.remove_parts(out)  # the dataset is whole and listed: resume state is no longer needed
    return quality


def observe_requested(out: Path, design: Design, quiet: bool = True) -> None:
    """The measured copies the design asks for (``observe:``), then the card again."""
    if not design.observe:
        return
    from .observe import observe

    for request in design.observe:
        observe(out, request.profile, seed=request.seed, quiet=quiet)
    refresh_card(out)


def write_card(out: Path, design: Design, meta: dict, tables: dict, quality: dict, figures: list[str]) -> None:
    """The card lists every data file's sha256; then checksums.sha256 lists them and the card."""
    augmentation = ""
    if (Path(out) / "augment").is_dir():  # generators trained by `pybamm-factory augment`
        from .augment import card_section as augmentation_section

        augmentation = augmentation_section(out)
    sums = card_mod.file_checksums(out, figures)
    sensitivity = ""
    derived = Path(out) / card_mod.DERIVED / "sensitivity.parquet"
    if derived.exists():  # written by `pybamm-factory sensitivity` after the run
        from .analysis.sensitivity import card_section

        sensitivity = card_section(pd.read_parquet(derived))
    observation = ""
    if (Path(out) / "observed").is_dir():  # written by `pybamm-factory observe` (or the design's `observe:`)
        from .observe import card_section as observation_section

        observation = observation_section(out)
    text = card_mod.render_card(out, design, meta, tables, quality, figures, sums, augmentation, sensitivity, observation)
    store.atomic_write_text(Path(out) / card_mod.CARD, text)
    card_mod.write_checksums(out, sums)


def augment(root: str | Path, **options) -> dict:
    """Train a generator on a finished dataset (:func:`pybamm_factory.augment.augment`,
    same options), then re-render the card with its section; returns the report."""
    from .augment import augment as train_and_generate

    report = train_and_generate(root, **options)
    refresh_card(root)
    return report


def refresh_card(out: str | Path) -> None:
    """Re-render a finished dataset's card and checksums (after augmentation, say)."""
    out = Path(out)
    design = load_design(out / "design.yaml")
    tables = {name: store.read_table(out, name) for name in card_mod.DATA_TABLES if name not in LARGE_TABLES}
    quality = json.loads((out / "quality_report.json").read_text())
    meta = json.loads((out / "metadata.json").read_text())
    figures = card_mod.listed_figures(out)  # the run's own figures, not whatever else lies in figures/
    write_card(out, design, meta, tables, quality, figures)


def run(design: str | Path | Design | None = None, samples: int = 200, workers: int = 4, seed: int = 7,
        out: str | Path | None = None, backend: str = "local", scheduler: str | None = None,
        quiet: bool = False, command: str | None = None) -> Path:
    """Build the manifest, solve every sample (resuming), and write the dataset. Returns its path."""
    design = design if isinstance(design, Design) else load_design(design)
    configure_allocator()  # this process writes every sample's parts: keep its heap compact
    out = Path(out) if out is not None else default_out_dir(design, samples, seed)
    manifest, lock, finished = _prepare(design, samples, seed, out)
    with lock:  # one run writes here at a time
        if finished:  # the same run, already complete: left as it is (verify checks it)
            return out
        try:
            simulate_missing(design, manifest, out, workers, backend, scheduler, quiet)
            command = command or f"pybamm_factory.run(design={design.source!r}, samples={samples}, seed={seed})"
            finalise(out, design, seed, samples, command)
            observe_requested(out, design, quiet)
        except OSError as exc:  # a full disk anywhere (parts, tables, figures): one line, no partial files
            if not rundir.is_disk_full(exc):
                raise
            half_written = rundir.remove_temporaries(out)  # pyarrow's errors name no file: its temporary does
            done = len(store.finished_samples(out))
            needed = rundir.space_needed(out, store.PARTS, len(manifest) - done, done)
            path = Path(exc.filename) if exc.filename else rundir.written_by(half_written[0]) if half_written else None
            raise DiskFullError(path or out / "dataset", needed, f"writing {path.name if path else 'the tables'}") from None
        except DiskFullError as exc:
            rundir.remove_temporaries(out)
            done = len(store.finished_samples(out))
            needed = rundir.space_needed(out, store.PARTS, len(manifest) - done, done)
            raise DiskFullError(exc.path, max(exc.needed_bytes, needed)) from None
    return out


def check(root: str | Path, report_path: str | Path | None = None) -> dict:
    """Re-run the quality gate on a dataset directory; optionally write the report."""
    root = Path(root)
    tables = {name: store.read_table(root, name) for name in ("manifest", "solver_log", "labels", "impedance_features", "pulses", "splits")
              if store.has_table(root, name)}
    if "manifest" not in tables or "solver_log" not in tables:
        raise FileNotFoundError(f"{root}: not a dataset directory (needs data/manifest/ and data/solver_log/)")
    spectra = store.iter_table(root, "spectra") if store.has_table(root, "spectra") else None
    quality = report(run_checks(tables, spectra_slices=spectra))
    if report_path is not None:
        store.atomic_write_text(Path(report_path), json.dumps(quality, indent=2, default=str))
    return quality
