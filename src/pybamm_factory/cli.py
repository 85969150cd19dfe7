"""The ``pybamm-factory`` command: a thin layer over :mod:`pybamm_factory.api`."""

from __future__ import annotations

import functools
import json
import shlex
import sys
from pathlib import Path

import click

from .calibrate.options import CAPACITY_SCALING, INITIAL_STATES, OPTIMISERS, THERMAL_MODES
from .design.spec import MAX_SAMPLES
from .errors import FactoryError
from .readers import FORMATS


def _user_errors(func):
    """Print the errors a user can fix (a :class:`FactoryError`: bad design, file, flag or
    output directory, a full disk) and a missing file as one line, exit 2; anything else is
    a bug and keeps its traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (FactoryError, FileNotFoundError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper


# options of `run` that change how it runs, not what it makes (True: the option takes a value)
RUN_ONLY_OPTIONS = {"--workers": True, "-w": True, "--backend": True, "--scheduler": True, "--quiet": False, "-q": False}


def _command_line() -> str:
    """The command as typed, less the options that only change how it runs, so the card and
    metadata of a dataset are the same bytes whatever the worker count or backend."""
    kept, args = [], iter(sys.argv[1:])
    for arg in args:
        name = arg.split("=", 1)[0]
        if name in RUN_ONLY_OPTIONS:
            if RUN_ONLY_OPTIONS[name] and "=" not in arg:
                next(args, None)
            continue
        if arg.startswith("-w") and not arg.startswith("--") and arg[2:].isdigit():  # -w4
            continue
        kept.append(arg)
    return "pybamm-factory " + " ".join(shlex.quote(a) for a in kept)


DESIGN_HELP = "Design YAML file, or the name of a packaged design (see `pybamm-factory designs`)."


class _OneLineGroup(click.Group):
    """Usage errors (a bad flag value, a missing argument) print as one line naming the flag
    and the command's --help, exit 2; Ctrl-C outside `run` prints one line, exit 130."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # a bare `pybamm-factory`: the help, as always
                click.echo(exc.ctx.get_help())
                sys.exit(0)
            where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            click.echo(f"error: {exc.format_message()}{where}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)


class _UserError(click.ClickException):
    """A bad setting found while running (an unreachable scheduler): one line, exit 2."""

    exit_code = 2


SEED_RANGE = click.IntRange(0, 2**32 - 1)  # NumPy's SeedSequence takes non-negative integers


def _design_value(ctx, param, value):
    """--design: a packaged design's name or a YAML file; a directory is refused here."""
    if value and Path(value).is_dir():
        raise click.BadParameter(f"{value} is a directory; give a design YAML file or a packaged design name "
                                 "(see `pybamm-factory designs`)")
    return value


@click.group(cls=_OneLineGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="pybamm-factory")
def main():
    """Physics-based synthetic lithium-ion battery datasets for machine learning.

    `pybamm-factory run` turns a design file into a Parquet dataset with labels,
    impedance spectra, a quality report, leakage-safe splits and a data card.

    \b
    Quick start:
      pybamm-factory designs                                 # the packaged designs
      pybamm-factory run --design smoke -n 4 --workers 2     # a first dataset, about a minute
      pybamm-factory verify datasets/smoke-n4-seed7          # checksums and schemas
      pybamm-factory read my_cycler_export.csv               # preview a measured file
    """


@main.command()
@click.option("--design", "-d", default="default", help=DESIGN_HELP, callback=_design_value)
@click.option("--samples", "-n", default=200, type=click.IntRange(1, MAX_SAMPLES), help="Number of samples to simulate.")
@click.option("--workers", "-w", default=4, type=click.IntRange(min=1),
              help="Parallel worker processes (1 runs in-process, for debugging); a local run uses at most one per "
                   "CPU and per sample.")
@click.option("--seed", default=7, type=SEED_RANGE, help="Seed of the sampler and the splits.")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="Output directory [default: datasets/<design>-n<samples>-seed<seed>]. "
                   "Re-running into it resumes and skips finished samples.")
@click.option("--backend", type=click.Choice(["local", "dask"]), default="local",
              help="local: joblib process pool; dask: a Dask cluster (see --scheduler).")
@click.option("--scheduler", default=None,
              help="Dask scheduler address (tcp://HOST:PORT). Without it, --backend dask starts a local cluster.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--strict", is_flag=True, help="Exit non-zero when a blocking quality check fails.")
@_user_errors
def run(design, samples, workers, seed, out, backend, scheduler, quiet, strict):
    """Simulate a design and write the dataset (manifest, tables, splits, card).

    Killed or interrupted, a run keeps every finished sample; the same command resumes it.

    \b
    Example:
      pybamm-factory run --design smoke -n 4 --workers 2      # a first run, about a minute
      pybamm-factory run --samples 200 --workers 4 --seed 7   # the default design
    """
    import os

    from . import api

    if scheduler is None:  # the local pool, or a local Dask cluster: one process per CPU at most
        workers = max(1, min(workers, os.cpu_count() or 1, samples))
    try:
        path = api.run(design, samples=samples, workers=workers, seed=seed, out=out, backend=backend,
                       scheduler=scheduler, quiet=quiet, command=_command_line())
    except KeyboardInterrupt:
        _interrupted(design, samples, seed, out)
    except (OSError, TimeoutError) as exc:
        if backend == "dask" and scheduler:
            raise _UserError(f"could not reach the Dask scheduler {scheduler}: "
                                       f"{(str(exc).strip().splitlines() or [type(exc).__name__])[0]}") from None
        raise
    quality = json.loads((path / "quality_report.json").read_text())
    from .dataset.store import read_table

    log = read_table(path, "solver_log")
    counts = log["status"].value_counts().to_dict()
    click.echo(f"dataset: {path}  samples: {len(log)}  status: {counts}  "
               f"quality: {'passed' if quality['passed'] else 'FAILED ' + ', '.join(quality['failed_blocking_checks'])}")
    if strict and not quality["passed"]:
        sys.exit(1)


def _interrupted(design, samples, seed, out):
    """Ctrl-C during `run`: say what is kept and how to go on, in one line."""
    from . import api
    from .dataset import store
    from .design import load_design

    target = Path(out) if out is not None else api.default_out_dir(load_design(design), samples, seed)
    saved = len(store.finished_samples(target)) if target.exists() else 0
    click.echo(f"interrupted: {saved} of {samples} samples saved in {target}; run the same command again to resume",
               err=True)
    sys.exit(130)


@main.command()
@click.option("--design", "-d", default="default", help=DESIGN_HELP, callback=_design_value)
@click.option("--samples", "-n", default=200, type=click.IntRange(1, MAX_SAMPLES), help="Number of samples.")
@click.option("--seed", default=7, type=SEED_RANGE, help="Seed of the sampler.")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("manifest.parquet"),
              help="Manifest file (.parquet) or a directory to hold manifest.parquet.")
@_user_errors
def design(design, samples, seed, out):
    """Write the manifest only (no physics)."""
    from . import api

    path = api.write_manifest(design, samples, seed, out)
    click.echo(f"manifest: {path}")


@main.command()
def designs():
    """List the packaged designs."""
    from .design import packaged_designs, read_design_file

    designs = sorted(packaged_designs().items())
    width = max(len(name) for name, _ in designs)
    for name, path in designs:
        text = " ".join(str(read_design_file(path).get("description", "")).split())
        first = text.split("; ")[0]  # the first clause: one line per design
        click.echo(f"{name:<{width}}  {first if len(first) <= 100 else first[:99] + '…'}")


@main.command()
def protocols():
    """List the protocol kinds a design's `protocols[i].kind` can name.

    \b
    Example:
      pybamm-factory protocols
    """
    from .protocols import kinds

    for name, kind in sorted(kinds().items()):
        keys = ", ".join(kind.required)
        click.echo(f"{name:<17} {kind.summary} (needs: {keys})")


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_user_errors
def verify(directory):
    """Re-check every file of a dataset: checksums, no missing or stray file, the card's
    checksum table, every table's schema. One FAIL line per problem, exit 1 on any.

    A dataset that is intact but failed its quality gate is reported so (exit 0).
    """
    from .dataset import verify as verify_dataset

    try:
        problems = verify_dataset(directory)
    except Exception as exc:  # noqa: BLE001 - verify must answer in one line, never a traceback
        problems = [f"{directory}: verify could not finish ({type(exc).__name__}: {' '.join(str(exc).splitlines())[:200]})"]
    for p in problems:
        click.echo(f"FAIL {p}")
    if problems:
        sys.exit(1)
    quality = json.loads((directory / "quality_report.json").read_text())  # listed and matching: safe to read
    if quality.get("passed"):
        click.echo(f"ok: {directory} (every file listed and matching its checksum; tables match their schemas)")
    else:
        click.echo(f"intact, but QUALITY GATE FAILED: {directory} ({', '.join(quality.get('failed_blocking_checks', []))}; "
                   "see README.md); files match their checksums and schemas")


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("sample_id")
@_user_errors
def replay(directory, sample_id):
    """Solve one sample again from the dataset's own records and compare its rows.

    The design is taken from DIRECTORY/metadata.json and the sample's inputs from its
    manifest row (no design file, no cache). Each table is reported identical, within
    1e-6 relative, or different (exit 1), with the software versions that differ from the
    recorded ones.

    \b
    Example:
      pybamm-factory replay datasets/smoke-n4-seed7 s-3f2a9c0d1e
    """
    from .dataset.replay import replay_sample

    result = replay_sample(directory, sample_id)
    for line in result.lines():
        click.echo(line)
    click.echo(f"{sample_id}: {'reproduced' if result.reproduced else 'NOT reproduced'}")
    if not result.reproduced:
        sys.exit(1)


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--strict", is_flag=True, help="Exit 1 when a blocking check fails.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the report as JSON to this file.")
@_user_errors
def check(directory, strict, report):
    """Run the quality gate on a dataset directory and print its checks."""
    from . import api

    try:
        quality = api.check(directory, report)
    except (OSError, ValueError) as exc:  # a missing or unreadable table: one line, not a traceback
        click.echo(f"error: {directory}: {type(exc).__name__}: {' '.join(str(exc).splitlines())[:200]}", err=True)
        sys.exit(2)
    for c in quality["checks"]:
        mark = "ok  " if c["passed"] else ("FAIL" if c["blocking"] else "warn")
        examples = f"  e.g. {', '.join(c['examples'][:3])}" if c["examples"] else ""
        click.echo(f"{mark} {c['name']:<30} {c['count']:>6}{examples}")
    if strict and not quality["passed"]:
        failed = [c for c in quality["checks"] if c["blocking"] and not c["passed"]]
        click.echo("blocking: " + "; ".join(f"{c['name']} ({c['count']} rows)" for c in failed), err=True)
        sys.exit(1)


@main.command("eis-features")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the features as CSV or Parquet (by suffix) instead of printing them.")
@click.option("--column", "columns", multiple=True, metavar="NAME=HEADER",
              help="The file's column for frequency_hz, z_real_ohm, z_imag_ohm, z_modulus_ohm, phase_deg or soc, "
                   "e.g. --column \"z_imag_ohm=Z''(b)\". Repeatable.")
@click.option("--imag-sign", type=click.Choice(["auto", "z-imag", "minus-z-imag"]), default="auto",
              help="What the imaginary column holds: auto decides from the data (a cell is capacitive below 100 Hz), "
                   "z-imag: Z'' (capacitive negative), minus-z-imag: -Z''.")
@click.option("--impedance-unit", type=click.Choice(["auto", "ohm", "mOhm", "kOhm", "uOhm"]), default="auto",
              help="Unit of the impedance columns where the header names none.")
@click.option("--frequency-unit", type=click.Choice(["auto", "Hz", "kHz", "mHz"]), default="auto",
              help="Unit of the frequency column where the header names none.")
@_user_errors
def eis_features(files, out, columns, imag_sign, impedance_unit, frequency_unit):
    """Impedance features of measured spectra, one row per sweep.

    FILES: spectrum tables (frequency, Z', Z'' or |Z| and phase [, soc]; EC-Lab, Gamry and
    Maccor FRA text exports), headerless three-column files (f, Z', Z''), or tables of one
    spectrum per row (ZReal_<f>Hz, ZImag_<f>Hz columns). The lines printed say how the
    imaginary sign was decided; sweeps whose circuit fit misses by more than 2 % RMS are
    flagged. Features are defined in `pybamm_factory.labels.impedance`.

    \b
    Example:
      pybamm-factory eis-features cell01_eis.csv
      pybamm-factory eis-features fra.txt --column "z_imag_ohm=Z''(b)" --imag-sign minus-z-imag -o features.csv
    """
    import pandas as pd

    from .labels import FIT_RESIDUAL_WARN, fit_is_poor, spectrum_features
    from .readers import read_spectrum

    mapping = dict(c.split("=", 1) for c in columns if "=" in c)
    if len(mapping) != len(columns):
        raise click.UsageError(f"--column takes NAME=HEADER; got {[c for c in columns if '=' not in c]}")
    rows = []
    for path in files:
        spectra = read_spectrum(path, columns=mapping or None, imag_sign=imag_sign, impedance_unit=impedance_unit,
                                frequency_unit=frequency_unit)
        click.echo(f"{path}: {spectra['sweep_id'].nunique()} sweep(s); {spectra.attrs['convention']}", err=out is None)
        for note in spectra.attrs.get("notes", []):
            click.echo(f"note: {note}", err=out is None)
        extra = [c for c in spectra.columns if c not in ("sweep_id", "soc", "frequency_hz", "z_real_ohm", "z_imag_ohm")]
        for sweep_id, g in spectra.groupby("sweep_id", sort=False):
            rows.append({"file": path.name, "sweep_id": sweep_id, "soc": g["soc"].iloc[0],
                         **{c: g[c].iloc[0] for c in extra},
                         **spectrum_features(g["frequency_hz"], g["z_real_ohm"], g["z_imag_ohm"])})
    frame = pd.DataFrame(rows)
    poor = frame[[fit_is_poor(row) for row in rows]]
    if len(poor):
        listed = ", ".join(f"{r.sweep_id} ({r.fit_residual:.1%})" for r in poor.head(5).itertuples())
        click.echo(f"warning: {len(poor)} of {len(frame)} sweep(s) fit the equivalent circuit worse than "
                   f"{FIT_RESIDUAL_WARN:.0%} RMS (fit features less reliable): {listed}"
                   + (" ..." if len(poor) > 5 else ""), err=True)
    if out is None:
        with pd.option_context("display.width", 200, "display.max_columns", 24):
            click.echo(frame.drop(columns=["file"]).to_string(index=False))
    elif out.suffix == ".parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False)


def _stated_current(current_a, c_rate, capacity_ah) -> float | None:
    """The constant current stated for a time-and-voltage file (positive = discharge)."""
    if c_rate is not None and current_a is not None:
        raise click.UsageError("give --current-a or --c-rate with --capacity-ah, not both")
    if c_rate is not None:
        if capacity_ah is None or capacity_ah <= 0:
            raise click.UsageError("--c-rate needs --capacity-ah (the cell's nominal capacity, A.h, > 0)")
        return c_rate * capacity_ah
    if capacity_ah is not None and current_a is None:
        raise click.UsageError("--capacity-ah goes with --c-rate")
    return current_a


def _table_options(fmt, columns, current_sign, current_unit, constant_current_a):
    """(format, keyword options of read_cycler) from the table options of `read` and `calibrate`."""
    if not columns and current_sign == "auto" and current_unit == "auto" and constant_current_a is None:
        return fmt, {}
    if fmt not in ("auto", "csv", "matlab", "parquet"):
        raise click.UsageError("--column, --current-sign, --current-unit and a stated current apply to "
                               "--format csv, matlab or parquet only")
    mapping = dict(c.split("=", 1) for c in columns if "=" in c)
    if len(mapping) != len(columns):
        raise click.UsageError(f"--column takes NAME=HEADER; got {[c for c in columns if '=' not in c]}")
    return fmt, {"columns": mapping, "current_sign": current_sign, "current_unit": current_unit,
                 "constant_current_a": constant_current_a}


def table_options(func):
    """The options of a cycler file that is a plain table (shared by `read` and `calibrate`)."""
    options = [
        click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto",
                     help="Export format; auto detects it from the file's first bytes and header."),
        click.option("--column", "columns", multiple=True, metavar="NAME=HEADER",
                     help="Tables: the file's column (or MATLAB vector) for a normalised one (time_s, current_a, "
                          "voltage_v, temperature_c, cycle_index, step_index), e.g. --column 'time_s=Elapsed'. "
                          "Repeatable."),
        click.option("--current-sign", type=click.Choice(["auto", "discharge-positive", "discharge-negative"]),
                     default="auto", help="Tables: the file's current sign; auto uses a state column, else infers "
                                          "it (voltage falls on discharge)."),
        click.option("--current-unit", type=click.Choice(["auto", "A", "mA", "uA"]), default="auto",
                     help="Tables: the current's unit; auto reads it from the header ('Current (mA)', 'I/mA')."),
        click.option("--current-a", type=float, default=None,
                     help="Files of time and voltage only (digitised or published curves): the constant current "
                          "they were measured at, A, positive = discharge. Recorded as an assumption."),
        click.option("--c-rate", type=float, default=None,
                     help="Instead of --current-a: the C-rate (negative = charge), with --capacity-ah."),
        click.option("--capacity-ah", type=float, default=None, help="Nominal capacity for --c-rate, A.h."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Normalised Parquet file to write; without it the file is previewed and nothing is written.")
@table_options
@_user_errors
def read(file, out, fmt, columns, current_sign, current_unit, current_a, c_rate, capacity_ah):
    """Read a cycler export into the normalised frame (current positive = discharge).

    FILE: a Maccor, Neware, Arbin or BioLogic text export, any delimited table with time,
    current and voltage columns, an Excel workbook (.xlsx / .xls) or a MATLAB file (.mat,
    v5-v7.3) holding one. The lines printed name the format, the sign convention it mapped
    from, what was derived or assumed, and the per-cycle capacities.

    \b
    Example:
      pybamm-factory read cell01.csv                       # preview, writes nothing
      pybamm-factory read cell01.csv -o cell01.parquet
      pybamm-factory read curve.csv --c-rate 0.5 --capacity-ah 5 -o curve.parquet
    """
    from .calibrate import cycle_capacities, read_cycler
    from .readers import last_cycle_is_partial

    fmt, options = _table_options(fmt, columns, current_sign, current_unit, _stated_current(current_a, c_rate, capacity_ah))
    frame = read_cycler(file, format=fmt, **options)
    convention = f"{frame.attrs['format']}, current: {frame.attrs['current_convention']}"
    if "sheets" in frame.attrs:
        convention += f"; {'' if frame.attrs['format'] == 'matlab' else 'sheets: '}{frame.attrs['sheets']}"
    notes = list(frame.attrs.get("notes", []))
    caps = cycle_capacities(frame)
    partial = last_cycle_is_partial(frame, caps)
    if partial:
        notes.append(f"cycle {caps['cycle_index'].iloc[-1]} is partial (the file ends inside it): left out of the fade")
    complete = caps.iloc[:-1] if partial else caps
    discharged = complete.loc[complete["discharge_capacity_ah"] > 0, "discharge_capacity_ah"]  # a charge-only first cycle has none
    fade = f"{discharged.iloc[0]:.4g} -> {discharged.iloc[-1]:.4g} A.h" if len(discharged) else "none (no discharge)"
    click.echo(f"{file}: {len(frame)} records, {caps['cycle_index'].nunique()} cycles, "
               f"discharge capacity {fade} ({convention})" + (f" -> {out}" if out else ""))
    for note in notes:
        click.echo(f"note: {note}")
    if out is None:
        return
    frame.attrs = {}
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), b"pybamm_factory.read": json.dumps(
        {"source": str(file), "convention": convention, "notes": notes}).encode()}
    pq.write_table(table.replace_schema_metadata(metadata), out)


def _stated_temperatures(items) -> dict | None:
    """--temperature-c values ([FILE=]DEGC) as {file name or stem, or "*": degC}; None when none given."""
    stated = {}
    for item in items:
        name, _, value = item.rpartition("=")
        try:
            stated[name or "*"] = float(value)
        except ValueError:
            raise click.BadParameter(f"{item!r}: expected DEGC or FILE=DEGC", param_hint="--temperature-c") from None
    return stated or None


@main.command("score-curves")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--design", default="default", show_default=True, help="Design (packaged name or YAML path) whose cell is scored.")
@click.option("--model", type=click.Choice(["spme", "dfn"]), default=None, help="Model [default: the design's].")
@click.option("--thermal", type=click.Choice(THERMAL_MODES), default="ambient", show_default=True,
              help="Cell temperature during each discharge, as for calibrate.")
@click.option("--discharge", default="largest", show_default=True,
              help="Which CC discharge(s) of each file, as for calibrate: largest, first, a number, a comma list or all.")
@click.option("--temperature-c", "temperatures", multiple=True, metavar="[FILE=]DEGC",
              help="The test temperature of files that record none, degC (FILE=DEGC or DEGC); never assumed.")
@click.option("--initial-state", type=click.Choice(INITIAL_STATES), default="set", show_default=True,
              help="Where each discharge starts, as for calibrate.")
@click.option("--out", "-o", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the scores as JSON here.")
@click.option("--figure", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw measured against simulated voltage here (PNG), one panel per curve.")
@table_options
@_user_errors
def score_curves(files, design, model, thermal, discharge, temperatures, initial_state, out, figure, fmt, columns,
                 current_sign, current_unit, current_a, c_rate, capacity_ah):
    """Score a design's cell on measured CC discharges, fitting nothing.

    \b
    Example (a calibrated design on a cell of the same model from another lab):
      pybamm-factory score-curves ../shared/realdata/lgm50t_rpt/expt2_2_cellC_25degC_BoL_RPT0_short.parquet \\
        --design lgm50-calibrated-temperature --model dfn

    The design's central cell (fixed values, each varied parameter's mean if normal, else median; its
    fresh-cell model options) and its parameter set's own cell are simulated on each
    discharge; prints the RMSE of each and the capacities. A calibrated design scores its
    fitted curves as its fit did with the fit's --model, --thermal and --initial-state (its
    calibration_report.json names them; a DFN fit runs as an SPMe design).
    """
    from .calibrate import score_curves as run_scores

    fmt, options = _table_options(fmt, columns, current_sign, current_unit, _stated_current(current_a, c_rate, capacity_ah))
    report = run_scores(design, list(files), model=model, thermal=thermal, discharge=discharge,
                        read_options={"format": fmt, **options}, temperature_c=_stated_temperatures(temperatures),
                        initial_state=initial_state, figure=figure)
    click.echo(f"design {report['design']} ({report['parameter_set']}, {report['model']}, thermal {thermal}, "
               f"initial state {initial_state})")
    click.echo(f"{'curve':<40} {'design [mV]':>11} {'set [mV]':>9} {'measured [A.h]':>15} {'design [A.h]':>13}")
    for name, row in report["curves"].items():
        capacity = "failed" if row["design_capacity_ah"] is None else f"{row['design_capacity_ah']:.4g}"
        click.echo(f"{name:<40} {row['design_rmse_mv']:11.1f} {row['parameter_set_rmse_mv']:9.1f} "
                   f"{row['measured_capacity_ah']:15.4g} {capacity:>13}")
    if report["failed_solves"]:
        click.echo(f"note: {report['failed_solves']} solves failed; their RMSE holds the cut-off voltage")
    if out:
        Path(out).write_text(json.dumps(report, indent=2))
        click.echo(f"scores: {out}")
    if figure:
        click.echo(f"figure: {report['figure']}")


@main.command()
@click.option("--data", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False),
              help="Cycler export(s) whose CC discharge (see --discharge) is fitted. Repeat for several curves.")
@click.option("--held-out", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Cycler export(s) only scored, never fitted.")
@click.option("--fit", "fit_names", multiple=True, required=True,
              help="PyBaMM parameter to fit (repeat), e.g. 'Positive electrode active material volume fraction'; "
                   "a function of state as '<name> (factor)', e.g. 'Negative particle diffusivity [m2.s-1] (factor)'.")
@click.option("--parameter-set", default=None,
              help="PyBaMM parameter set to fit with [default: the base design's, so fit and runs share one model].")
@click.option("--base-design", default="default", help="Design whose structure the calibrated design keeps.")
@click.option("--model", type=click.Choice(["spme", "dfn"]), default=None,
              help="Model used for the fit [default: the base design's].")
@click.option("--thermal", type=click.Choice(THERMAL_MODES), default="ambient", show_default=True,
              help="Cell temperature during each fitted discharge. ambient: held at the file's first reading; mean: held "
                   "at its mean reading; measured: follows the file's logged temperature; lumped: PyBaMM's lumped "
                   "thermal model from the first reading. Files without temperature need --temperature-c.")
@click.option("--optimiser", type=click.Choice(OPTIMISERS), default="least-squares",
              show_default=True, help="least-squares: scipy trust-region on the voltage residuals; pybop-minimize: PyBOP's "
                                      "SciPyMinimize on the summed RMSE; pybop-xnes: PyBOP's XNES, global, needs hundreds "
                                      "of evaluations.")
@click.option("--max-evaluations", default=200, type=click.IntRange(min=5), help="Optimiser budget.")
@click.option("--discharge", default="largest", show_default=True,
              help="Which constant-current discharge(s) of each file to use: largest (the first within 2 % of the "
                   "largest capacity, so full discharges win over pulses), first, a 1-based number, a comma list "
                   "('1,3') or all; several from one file are named <file>:<index>.")
@click.option("--temperature-c", "temperatures", multiple=True, metavar="[FILE=]DEGC",
              help="The test temperature of files that record none, degC: FILE=DEGC for one file (name or stem), "
                   "DEGC for every such file. Never assumed: a file without it is refused. Repeatable.")
@click.option("--leave-one-out/--no-leave-one-out", default=True, show_default=True,
              help="With three or more --data curves, refit once without each and report how well each refit predicts "
                   "the curve left out (the highest-current one is the rate-extrapolation check); the design's spread "
                   "becomes the larger of the covariance and jackknife std. Costs one fit per curve.")
@click.option("--check-cells", default=20, show_default=True, type=click.IntRange(min=0),
              help="Draw this many cell designs from the written design with its own sampler (seed 0) and score them on the "
                   "fitted curves: how close the synthetic cells stay to the measured ones. 0 skips it.")
@click.option("--capacity-scaling", "capacity_scaling_mode", type=click.Choice(list(CAPACITY_SCALING)), default="auto",
              show_default=True,
              help="A cell of another size: scale the set's electrode width, nominal capacity, cell volume and cooling "
                   "area by measured / model capacity (lowest-rate fitted curve) before fitting; the design fixes the "
                   "scaled values. auto: when the cell is more than 1.5x larger or smaller (beyond what fitted "
                   "fractions can absorb); on: always; off: never.")
@click.option("--initial-state", type=click.Choice(INITIAL_STATES), default="set", show_default=True,
              help="Where each discharge starts. set: the parameter set's (or fitted) initial concentrations; "
                   "rest-voltage: where the set's open-circuit voltage equals the file's last reading at rest before "
                   "the load, at the fitted lithium inventory.")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Calibrated design YAML to write (report and figures go to <out stem>_calibration/ beside it).")
@table_options
@_user_errors
def calibrate(data, held_out, fit_names, parameter_set, base_design, model, thermal, optimiser, max_evaluations,
              discharge, temperatures, leave_one_out, check_cells, capacity_scaling_mode, initial_state, out, fmt, columns,
              current_sign, current_unit, current_a, c_rate, capacity_ah):
    """Fit PyBaMM parameters to measured CC discharges and write a calibrated design.

    \b
    Example:
      pybamm-factory calibrate --data 25C_0.5C.csv --data 25C_1C.csv --held-out 25C_2C.csv \\
        --fit "Negative electrode active material volume fraction" --out designs/my-cell.yaml

    The fitted parameters become normals centred on the fit, with the larger of the
    covariance and jackknife spreads and the fit's correlations; `run --design` takes the
    file as it is. The report gives per-curve RMSE before and after, on fitted and held-out
    curves, and how close cells drawn from the design stay to the data.
    """
    from .calibrate import calibrate as run_calibration

    fmt, options = _table_options(fmt, columns, current_sign, current_unit, _stated_current(current_a, c_rate, capacity_ah))
    stated = _stated_temperatures(temperatures)
    report = run_calibration(list(data), list(fit_names), out, parameter_set=parameter_set, held_out=list(held_out),
                             base_design=base_design, model=model, thermal=thermal, max_evaluations=max_evaluations,
                             optimiser=optimiser, leave_one_out=leave_one_out, discharge=discharge,
                             check_cells=check_cells, capacity_scaling_mode=capacity_scaling_mode,
                             read_options={"format": fmt, **options}, temperature_c=stated,
                             initial_state=initial_state)
    for name, source in report["discharge_used"].items():
        click.echo(f"{name}: {source}")
    scaling = report.get("capacity_scaling")
    if scaling:
        scaled = f" x{scaling['ratio']:.4g} ({', '.join(scaling['fixed'])})" if scaling["applied"] else ""
        click.echo(f"cell size: {scaling['reason']}{scaled}")
    click.echo(f"{'curve':<34} {'before [mV]':>12} {'after [mV]':>11}")
    for name, before in report["rmse_before_mv"].items():
        click.echo(f"{name:<34} {before:12.1f} {report['rmse_after_mv'][name]:11.1f}")
    for name, p in report["parameters"].items():
        edge = p["bounds"][0 if p.get("at_bound") == "lower" else 1] if p.get("at_bound") else None
        bound = f" (stopped at its {p['at_bound']} bound {edge:.3g}; the std is not meaningful)" if edge is not None else ""
        jack = f" (design std {p['design_std']:.2g})" if p["design_std"] > p["std"] else ""
        click.echo(f"{name}: {p['initial']:.5g} -> {p['fitted']:.5g} +/- {p['std']:.2g}{jack}{bound}")
    for name, why in report.get("unidentified", {}).items():
        click.echo(f"UNIDENTIFIED: {name}: {why}; the design states it so and samples the spread as found")
    loo = report.get("leave_one_curve_out")
    if loo:
        for name, left_out in loo["rmse_mv_left_out"].items():
            tag = " (highest current: rate extrapolation)" if name == loo["highest_current_curve"] else ""
            click.echo(f"left out of the fit: {name:<20} {left_out:7.1f} mV ({report['rmse_after_mv'][name]:.1f} mV "
                       f"fitted with it){tag}")
        wider = [n for n, p in report["parameters"].items() if p["design_std"] > p["std"]]
        if wider:
            click.echo(f"design spread widened to the jackknife std (curves disagree beyond the covariance) for: {', '.join(wider)}")
    check = report.get("sampled_cells")
    if check:
        medians = " / ".join(f"{v:.1f}" if v is not None else "-" for v in check["rmse_mv_median"].values())
        p90 = " / ".join(f"{v:.1f}" if v is not None else "-" for v in check["rmse_mv_p90"].values())
        click.echo(f"{check['cells']} cells drawn from the design, RMSE on the fitted curves: median {medians} mV, "
                   f"p90 {p90} mV ({check['failed']} failed to solve)")
    for note in report.get("notes", []):
        click.echo(f"note: {note}")
    click.echo(f"design: {report['design']}  report: {Path(report['figure']).parent}")


@main.command("calibrate-aging")
@click.option("--data", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Cycler export with repeated cycles (its discharge capacity per cycle is the fade curve).")
@click.option("--trajectories", default=None, type=click.Path(exists=True),
              help="Measured SOH (and LLI / LAM) per reference test of one or more cells: a table with cell_id, "
                   "temperature_c, cycle, soh[, lam_ne_pct, lam_pe_pct, and lli_capacity_pct (% of the fresh capacity) or "
                   "lli_pct (% of all lithium in the electrodes); with lli_capacity_pct optionally pe_lithiation_top and "
                   "pe_lithiation_bottom, the analysis's fresh positive window, to count LLI as it does], or a folder in "
                   "Kirkaldy et al.'s layout. All cells are fitted at once.")
@click.option("--fit", "parameters", multiple=True,
              help="Aging parameter to fit (repeat). Default: SEI solvent diffusivity; with --trajectories also its "
                   "activation energy, both electrodes' LAM rates, activation energies and break-in factors, the "
                   "break-in time constant and the plating rate.")
@click.option("--usage-design", default="kirkaldy-expt2", show_default=True,
              help="With --trajectories: the design holding the cells' usage (one protocol) between reference tests.")
@click.option("--base-design", default="default", help="Design whose model and options simulate the fade (--data) "
              "or that the fitted distributions are written into (--trajectories).")
@click.option("--rpt-interval", default=5, type=click.IntRange(min=1), help="With --data: cycles between simulated reference tests.")
@click.option("--max-evaluations", default=None, type=click.IntRange(min=3),
              help="Optimiser budget in simulations [default: 25 with --data; 15 per fitted value (a --per-cell "
                   "parameter has one per cell) and one more with --trajectories, a quarter of that for each "
                   "leave-one-out refit].")
@click.option("--workers", "-w", default=2, type=click.IntRange(min=1), help="With --trajectories: parallel cell simulations.")
@click.option("--leave-one-out/--no-leave-one-out", default=True, show_default=True,
              help="With --trajectories: refit without each cell and predict it.")
@click.option("--start-design", default=None,
              help="With --trajectories: start from this design's values of the fitted parameters (its fitted values "
                   "where its calibration report is beside it, else its medians), e.g. a previous calibration, "
                   "instead of the parameter set's; the start scan is skipped.")
@click.option("--per-cell", "per_cell", multiple=True,
              help="With --trajectories: a fitted parameter to fit once per cell instead of shared (repeat), for "
                   "what differs from cell to cell (e.g. 'Negative electrode LAM break-in factor'); the design "
                   "spreads it over the cells' values.")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Calibrated design YAML to write (a JSON report goes beside it).")
@_user_errors
def calibrate_aging(data, trajectories, parameters, usage_design, base_design, rpt_interval, max_evaluations, workers,
                    leave_one_out, start_design, per_cell, out):
    """Fit aging parameters to a measured fade curve (--data) or to measured degradation
    trajectories of several cells at several temperatures (--trajectories), and write a design.

    Example: pybamm-factory calibrate-aging --trajectories ../shared/realdata/kirkaldy_lgm50t
    --usage-design kirkaldy-expt2 --out designs/lgm50t-aging.yaml
    """
    from .calibrate import CalibrationError

    if (data is None) == (trajectories is None):
        raise CalibrationError("calibrate-aging: give exactly one of --data (a fade curve) or --trajectories")
    if data is not None:
        from .calibrate import calibrate_aging as run

        if len(parameters) > 1:
            raise CalibrationError("--fit: a fade curve from --data fits one parameter; use --trajectories for several")
        if per_cell:
            raise CalibrationError("--per-cell: needs --trajectories (a fade curve from --data is one cell)")
        parameter = parameters[0] if parameters else "SEI solvent diffusivity [m2.s-1]"
        r = run(data, parameter, out, base_design=base_design, rpt_interval=rpt_interval,
                max_evaluations=max_evaluations or 25)
        click.echo(f"{parameter}: {r['starting_value']:.4g} -> {r['fitted']:.4g} (log10 std {r['log10_std']:.3f}); "
                   f"fade RMSE {1000 * r['rmse_ah_before']:.1f} -> {1000 * r['rmse_ah_after']:.1f} mA.h over "
                   f"{len(r['measured_cycles'])} cycles; design: {r['design']}")
        return
    from .calibrate import calibrate_aging_trajectories
    from .calibrate.trajectories import TARGETS as TRAJECTORY_TARGETS

    names = list(parameters) or ["SEI solvent diffusivity [m2.s-1]", "SEI growth activation energy [J.mol-1]",
                                 "Negative electrode LAM constant proportional term [s-1]",
                                 "Positive electrode LAM constant proportional term [s-1]",
                                 "Negative electrode LAM activation energy [J.mol-1]",
                                 "Positive electrode LAM activation energy [J.mol-1]",
                                 "Lithium plating kinetic rate constant [m.s-1]",
                                 "Negative electrode LAM break-in factor", "Positive electrode LAM break-in factor",
                                 "LAM break-in time constant [h]"]
    r = calibrate_aging_trajectories(trajectories, names, out, usage_design=usage_design, base_design=base_design,
                                     max_evaluations=max_evaluations, workers=workers,
                                     leave_one_out=leave_one_out, start_design=start_design, per_cell=per_cell,
                                     progress=lambda m: click.echo(m, err=True))
    for name, note in r["parameters"].items():
        flag = "" if note["identified"] else "  << UNIDENTIFIED: spread stated as such in the design"
        if "per_cell" in note:
            fitted = ", ".join(f"cell {c} {r['starting_values'][f'{name} | cell {c}']:.4g} -> {v:.4g}"
                               for c, v in note["per_cell"].items())
        else:
            fitted = f"{r['starting_values'][name]:.4g} -> {note['fitted']:.4g}"
        click.echo(f"{name}: {fitted} (design {note['low']:.3g} .. {note['high']:.3g}, "
                   f"from the {note['spread_from']}){flag}")
    for cell, f in r["positive_frames"].items():
        if f is None:
            click.echo(f"cell {cell}: LLI counts all lithium (no pe_lithiation_top / pe_lithiation_bottom given)")
        elif f["model_top"] is None:
            click.echo(f"cell {cell}: LLI counted in the DMA's positive frame ({f['dma_top']:.3f} / "
                       f"{f['dma_bottom']:.3f}); the cell was not simulated")
        else:
            click.echo(f"cell {cell}: LLI counted in the DMA's positive frame (positive lithiation at the top / bottom "
                       f"of the fresh discharge {f['dma_top']:.3f} / {f['dma_bottom']:.3f}; the model's "
                       f"{f['model_top']:.3f} / {f['model_bottom']:.3f}, its lithium below "
                       f"{f['model_lithiation_at_dma_zero']:.3f} unseen)")
    # the columns the table measured (one LLI convention of the two)
    cols = [c for c in TRAJECTORY_TARGETS if all(c + "_max_pp" in e for e in r["errors_after"])]
    for when in ("before", "after"):
        for e in r[f"errors_{when}"]:
            click.echo(f"{when:6s} cell {e['cell_id']} ({e['temperature_c']:g} degC) max |error| %-points: "
                       + ", ".join(f"{c} {e[c + '_max_pp']:.2f}" for c in cols))
    for e in r["leave_one_temperature_out"] or []:
        click.echo(f"held out cell {e['held_out_cell']} ({e['temperature_c']:.1f} degC), fitted on the others: "
                   + ", ".join(f"{c} {e[c + '_max_pp']:.2f}" for c in cols))
    click.echo(f"design: {r['design']}; report and figure: {Path(r['figure']).parent}")


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--model", type=click.Choice(["cvae", "wgan"]), default="cvae",
              help="cvae: conditional VAE; wgan: conditional WGAN-GP.")
@click.option("--samples", "-n", default=200, type=click.IntRange(min=1), help="Generated cells to write.")
@click.option("--seed", default=0, type=int, help="Seed of training and generation.")
@click.option("--epochs", default=None, type=click.IntRange(min=1),
              help="Training epochs (cvae) or generator steps (wgan) [default: 1500].")
@click.option("--conditions", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="CSV or Parquet of conditions to generate at (manifest columns); default: drawn from the design.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@_user_errors
def augment(directory, model, samples, seed, epochs, conditions, quiet):
    """Train a generator on the train split and write generated cells with fidelity metrics."""
    import pandas as pd

    from .api import augment as run_augment

    frame = None
    if conditions is not None:
        frame = pd.read_parquet(conditions) if conditions.suffix == ".parquet" else pd.read_csv(conditions)
    report = run_augment(directory, model=model, samples=samples, seed=seed, epochs=epochs, conditions=frame, quiet=quiet)
    m = report["metrics"]["model"]
    click.echo(f"{report['generator_id']}: {report['generated_cells']} cells, trained in {report['train_wall_time_s']:.0f} s; "
               f"AUC {m['classifier_auc']:.3f}, MMD {m['mmd_rbf']:.4f}, TSTR/TRTR SOH {m['tstr_soh_ratio']:.2f}, "
               f"memorisation {m['memorisation_ratio']:.2f}")


@main.command("calibrate-eis")
@click.argument("spectrum", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--base-design", default="default", show_default=True, help=DESIGN_HELP)
@click.option("--fit", "fit_names", multiple=True,
              help="Parameter to fit (repeat): contact, j0_neg, j0_pos, cdl_neg, cdl_pos, sei_resistivity "
                   "[default: contact, j0_neg, j0_pos, cdl_neg, cdl_pos].")
@click.option("--band-hz", nargs=2, type=float, default=(0.1, 1000.0), show_default=True,
              help="Frequencies fitted (low high).")
@click.option("--temperature-c", type=float, required=True,
              help="Temperature of the measurement (degC); spectra files seldom record it, so it is never assumed.")
@click.option("--max-evaluations", default=80, type=click.IntRange(min=5), show_default=True)
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Design YAML to write; the report and figure go to <stem>_eis_calibration/ beside it.")
@_user_errors
def calibrate_eis(spectrum, base_design, fit_names, band_hz, temperature_c, max_evaluations, out):
    """Fit the EIS model (contact resistance, exchange currents, double-layer capacities) to a
    measured spectrum of a fresh cell with an SOC column, and write a design with them.

    Example: pybamm-factory calibrate-eis ../shared/realdata/lgm50lt_eis/LGM50LT_eis_25C.csv
    --temperature-c 25 --out designs/lgm50-eis.yaml
    """
    from .calibrate import calibrate_eis as run

    report = run(spectrum, out, base_design=base_design, fit=list(fit_names) or None, band_hz=tuple(band_hz),
                 temperature_c=temperature_c, max_evaluations=max_evaluations)
    click.echo(f"RMS relative residual {100 * report['rms_relative_residual_before']:.1f} % -> "
               f"{100 * report['rms_relative_residual_after']:.1f} % ({report['evaluations']} evaluations, "
               f"{report['wall_s']:.0f} s)")
    for name, value in report["fitted"].items():
        click.echo(f"  {name}: {value:.4g}")
    for name in report["at_bound_unidentified"]:
        click.echo(f"  UNIDENTIFIED: {name} ran to its bound; the data do not fix it", err=True)
    click.echo("SOC   R_ohm mOhm meas/before/after   R_ct mOhm meas/before/after   f_peak Hz meas/before/after")
    for r in report["features"]:
        click.echo(f"{100 * r['soc']:3.0f}%  {r['r_ohm_mohm_measured']:6.2f} {r['r_ohm_mohm_before']:6.2f} "
                   f"{r['r_ohm_mohm_after']:6.2f}         {r['r_ct_mohm_measured']:6.2f} {r['r_ct_mohm_before']:6.2f} "
                   f"{r['r_ct_mohm_after']:6.2f}        {r['f_peak_hz_measured']:7.1f} {r['f_peak_hz_before']:7.1f} "
                   f"{r['f_peak_hz_after']:7.1f}")
    click.echo(f"design: {report['design']}; report and figure: {Path(report['figure']).parent}")


@main.command("calibrate-ica")
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--temperature-c", type=float, required=True,
              help="Temperature of the measurement (degC); never assumed.")
@click.option("--base-design", default="default", show_default=True, help=DESIGN_HELP)
@click.option("--discharge", default="largest", show_default=True,
              help="Which constant-current discharge of the file: largest (capacity), first, or a number from 1. "
                   "It must run at C/4 or slower.")
@click.option("--electrode", "electrodes", multiple=True, type=click.Choice(["negative", "positive"]),
              help="Electrode whose OCP spread is fitted (repeat) [default: both].")
@click.option("--max-evaluations", default=40, type=click.IntRange(min=5), show_default=True)
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Design YAML to write; the report and figure go to <stem>_ica_calibration/ beside it.")
@table_options
@_user_errors
def calibrate_ica(data, temperature_c, base_design, discharge, electrodes, max_evaluations, out, fmt, columns,
                  current_sign, current_unit, current_a, c_rate, capacity_ah):
    """Fit each electrode's OCP voltage spread (particles that do not all switch at one
    potential) so the simulated incremental-capacity peaks of a slow discharge are as high as
    the measured ones, and write a design with the spreads fixed.

    Example: pybamm-factory calibrate-ica ../shared/realdata/lgm50t_rpt/expt2_2_cellC_25degC_BoL_RPT0_short.parquet
    --temperature-c 25 --out designs/lgm50t-ica.yaml
    """
    from .calibrate import calibrate_ica as run

    fmt, options = _table_options(fmt, columns, current_sign, current_unit,
                                  _stated_current(current_a, c_rate, capacity_ah))
    report = run(data, out, temperature_c, base_design=base_design, discharge=discharge,
                 electrodes=list(electrodes) or ["negative", "positive"], max_evaluations=max_evaluations,
                 read_options={"format": fmt, **options})
    click.echo(f"discharge at C/{1 / report['discharge_c_rate']:.1f}; cost {report['cost_before']:.4f} -> "
               f"{report['cost_after']:.4f} ({report['evaluations']} evaluations, {report['wall_s']:.0f} s)")
    for electrode, value in report["spreads_v"].items():
        click.echo(f"  {electrode} electrode OCP spread: {1000 * value:.2f} mV")
    for electrode in report["at_bound_unidentified"]:
        click.echo(f"  UNIDENTIFIED: the {electrode} spread ran to its bound; the peaks do not fix it", err=True)
    click.echo("peak V    dQ/dV per capacity [1/V]: measured / before / after")
    for p in report["peaks"]:
        click.echo(f"{p['voltage_v']:.3f}    {p['height_measured_per_v']:.3f} / {p['height_before_per_v']:.3f} / "
                   f"{p['height_after_per_v']:.3f}")
    click.echo(f"design: {report['design']}; report and figure: {Path(report['figure']).parent}")


TARGET_NAMES = ("soh", "rul_to_80_cycles", "lli_capacity_pct", "lli_pct", "lam_ne_pct", "lam_pe_pct")


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--target", type=click.Choice(TARGET_NAMES), default="soh", help="Label to predict.")
@click.option("--features", default="both",
              help="Feature groups: eis, curves, both (eis + curves), all, or a comma list of eis, curves, capacity, "
                   "resistance, usage (equivalent full cycles, days and temperature since the first measurement).")
@click.option("--normalise", type=click.Choice(["relative", "absolute", "both"]), default="relative",
              help="Features relative to each cell's first measurement (transfer between cell sizes), absolute, or both.")
@click.option("--soc", default=0.5, type=click.FloatRange(0, 1),
              help="State of charge of the spectra to learn from (the dataset's nearest EIS SOC is used).")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Model directory [default: beside the dataset, model-<dataset>-<target>-<features>].")
@click.option("--seed", default=0, type=int, help="Seed of the estimators and of the row-random split.")
@click.option("--shuffle-labels", is_flag=True, help="Control: permute the target across rows before fitting.")
@click.option("--lli-frame", default=None, metavar="TOP,BOTTOM",
              help="With --target lli_capacity_pct: count LLI as a degradation-mode analysis with this positive frame "
                   "does (the positive lithiation at the top and bottom of the fresh RPT discharge in the analysis's "
                   "own frame, e.g. 0.03,0.89), above its zero; default: all lithium.")
@_user_errors
def train(directory, target, features, normalise, soc, out, seed, shuffle_labels, lli_frame):
    """Fit baseline estimators (linear floor, random forest, gradient boosting) on a dataset.

    Scores them on the dataset's grouped splits, a row-random split (leaky, for comparison)
    and two extrapolation splits (the hottest temperature held out; the fastest-ageing
    cells held out), and writes a model directory: estimators (skops), metrics.csv,
    predictions.csv, feature_importance.csv, features.md, model.json, figure.png.

    Example: pybamm-factory train datasets/default-n200-seed7 --target soh --features eis
    """
    from .learn.features import parse_groups
    from .learn.train import summary_table
    from .learn.train import train as run_train

    try:
        parse_groups(features)
    except ValueError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[-1], param_hint="--features") from None
    frame = None
    if lli_frame is not None:
        try:
            frame = tuple(float(v) for v in lli_frame.split(","))
        except ValueError:
            frame = ()
        if len(frame) != 2:
            raise click.BadParameter(f"'{lli_frame}' is not two numbers TOP,BOTTOM (e.g. 0.03,0.89)",
                                     param_hint="--lli-frame")
    result = run_train(directory, target=target, features=features, normalise=normalise, soc=soc, out=out, seed=seed,
                       shuffle_labels=shuffle_labels, lli_frame=frame,
                       progress=lambda k, n, scheme, name: click.echo(f"  [{k}/{n}] {scheme}: {name}", err=True))
    click.echo(summary_table(result.metrics))
    click.echo(f"selected on the grouped validation split: {result.selected}")
    click.echo(f"model directory: {result.model_dir}")


@main.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--cell", "cell_id", default=None, help="One cell id for all the files (default: per file, or the file's cell column).")
@click.option("--estimator", type=click.Choice(["linear", "random_forest", "gradient_boosting"]), default=None,
              help="Estimator to use [default: the one train selected].")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the predictions as CSV or Parquet (by suffix) instead of printing them.")
@click.option("--rpt-design", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where a cycler file's reference discharge (C-rate, voltage window) differs from the dataset's, "
                   "write the dataset's design with the file's reference test here, to generate a matching dataset.")
@_user_errors
def predict(model_dir, files, cell_id, estimator, out, rpt_design):
    """Predict a trained target for measured cells: spectra, spectrum tables, RPT tables, cycler files.

    Each row is one measurement; relative features are taken against each cell's first
    measurement, so give a cell's files from its first on. Every row carries a 90 %
    interval and a domain check (in_domain, domain_note) instead of a silent extrapolation.
    Models load only scikit-learn and NumPy types (skops); others are refused.

    Example: pybamm-factory predict models/soh-eis ../shared/realdata/zhang2020_eis/data_eis_zhang2020.csv -o pred.csv
    """
    import pandas as pd

    from .learn.predict import predict as run_predict

    frame, notes = run_predict(model_dir, files, cell_id=cell_id, estimator=estimator, rpt_design_path=rpt_design)
    for note in notes:
        click.echo(note, err=True)
    target = [c for c in frame.columns if c.endswith("_predicted")][0].removesuffix("_predicted")
    outside = int((~frame["in_domain"]).sum())
    click.echo(f"{len(frame)} measurements, {frame['cell_id'].nunique()} cells; {outside} outside the training domain", err=True)
    if "soh_measured" in frame and target == "soh":
        err = (frame["soh_predicted"] - frame["soh_measured"]).abs()
        click.echo(f"SOH MAE against the files' own capacity: {err.mean():.4f} (all), "
                   f"{err[frame['in_domain']].mean():.4f} (in domain)", err=True)
    if out is None:
        with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
            click.echo(frame.drop(columns=["domain_note"]).to_string(index=False))
    elif out.suffix == ".parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False)


def _register_analysis_commands() -> None:
    from .analysis.sensitivity import sensitivity

    main.add_command(sensitivity)


_register_analysis_commands()


# `observe`: the measurement layer (issue #26); the package is imported inside the command
OBSERVE_PROFILES = sorted(p.stem for p in (Path(__file__).resolve().parent / "observe" / "profiles").glob("*.yaml"))


@main.command("observe")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--profile", "-p", "profile", required=True, metavar="NAME|FILE",
              help=f"Measurement profile: a packaged one ({', '.join(OBSERVE_PROFILES)}) or a profile YAML file.")
@click.option("--seed", default=0, type=SEED_RANGE, help="Seed of the noise; with each sample's id it seeds that sample.")
@click.option("--no-figure", is_flag=True, help="Do not draw clean_vs_observed.png.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@_user_errors
def observe_command(directory, profile, seed, no_figure, quiet):
    """Measured copies of a dataset: sensor noise, offset and gain errors, drift, ADC steps,
    temperature-sensor lag and EIS noise that grows at low frequency.

    Writes DIRECTORY/observed/<profile>/: curves, spectra, impedance_features, rpt_features
    (capacity, SOH, DC resistance, ICA/DVA of the logged discharges) and channel_errors as
    Parquet, every row labelled with observation_profile, plus observation.json and
    clean_vs_observed.png. Features are recomputed from the observed data with the factory's
    own code; the physics tables are only read. Same dataset, profile and seed: same bytes.

    \b
    Example:
      pybamm-factory observe datasets/smoke-n4-seed7 --profile bms-grade --seed 1
      pybamm-factory observe datasets/smoke-n4-seed7 --profile my-cycler.yaml --seed 1
    """
    from .observe import observe as run_observe

    result = run_observe(directory, profile, seed=seed, quiet=quiet, make_figure=not no_figure)
    if (directory / "checksums.sha256").exists():  # a finished dataset: its card gets the "Observed data" section
        from .api import refresh_card

        refresh_card(directory)
    for name, rows in result.rows.items():
        click.echo(f"  {name}: {rows} rows")
    kk = {side: result.quality.get(side, {}).get("kk_inconsistent", {}).get("count") for side in ("clean", "observed")}
    if result.rows.get("impedance_features"):
        click.echo(f"lin-KK gate: {kk['clean']} clean and {kk['observed']} observed sweeps fail, of "
                   f"{result.rows['impedance_features']}")
    click.echo(f"observed: {result.folder} (profile {result.profile.name}, seed {result.seed}; outside the dataset's "
               "checksums.sha256)")


if __name__ == "__main__":
    main()
