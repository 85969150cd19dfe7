"""Solve one manifest row and return all of its table rows (runs inside a worker)."""

from __future__ import annotations

import time

import pandas as pd

from ..dataset.tables import SAMPLE_TABLES as TABLES
from ..dataset.tables import TIMINGS
from ..design.spec import Design
from ..labels import curve_table, label_rows, spectrum_features
from ..labels.limits import physics_problems
from ..memory import configure_allocator, release_memory
from .aging import get_aging_engine
from .eis import get_eis_engine

# TABLES: the per-sample tables of the registry (dataset/tables.py). Wall and solver times
# differ from run to run (machine load, worker count), so they are kept out of solver_log
# and every other table: simulate_sample returns them as its own table, TIMINGS, written
# to timings.parquet, outside the dataset's byte-identity promise.
TIMING_COLUMNS = ("wall_time_s", "solve_time_s", "eis_time_s", "solver_time_s", "eis_solver_time_s")


def _ids(row: dict) -> dict:
    return {"sample_id": row["sample_id"], "cell_design_id": row["cell_design_id"]}


def _curves(ids, snapshots) -> pd.DataFrame:
    frames = []
    for snap in snapshots:
        table = curve_table(snap.discharged_ah, snap.voltage_v)
        frame = pd.DataFrame(table)
        frame.insert(0, "cycle", int(snap.cycle))
        frames.append(frame)
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    for key, value in reversed(list(ids.items())):
        out.insert(0, key, value)
    return out


def _pulses(ids, snapshots) -> pd.DataFrame:
    """One row per pulse of an RPT (designs with ``aging.rpt_pulse``)."""
    rows = [{**ids, "cycle": int(snap.cycle), "soc": float(soc), "resistance_0p1s_ohm": r01, "resistance_10s_ohm": r10}
            for snap in snapshots for soc, r01, r10 in snap.pulses]
    return pd.DataFrame(rows)


def _eis(design: Design, row: dict, snapshots):
    """Spectra and impedance features at every RPT and state of charge."""
    if not design.eis.enabled or not snapshots:
        return pd.DataFrame(), pd.DataFrame(), 0.0, 0.0
    engine = get_eis_engine(design)
    t0 = time.perf_counter()
    solver = 0.0
    spectra, features = [], []
    ids = _ids(row)
    f = engine.frequencies_hz
    for snap in snapshots:
        for soc in design.eis.socs:
            z, solve_s = engine.impedance(engine.aged_inputs(row, snap, soc))
            solver += solve_s
            sweep_id = f"{row['sample_id']}-c{snap.cycle:05d}-soc{round(soc * 100):03d}"
            base = {**ids, "sweep_id": sweep_id, "cycle": int(snap.cycle), "soc": float(soc)}
            spectra.append(pd.DataFrame({**base, "frequency_hz": f, "z_real_ohm": z.real, "z_imag_ohm": z.imag}))
            features.append({**base, **spectrum_features(f, z.real, z.imag)})
    return pd.concat(spectra, ignore_index=True), pd.DataFrame(features), time.perf_counter() - t0, solver


_WARM: set[str] = set()


def _midpoint_row(design: Design, protocol) -> dict:
    row = {name: float(dist.ppf(0.5)) for name, dist in design.varied.items()}
    row.update({name: float(dist.ppf(0.5)) for name, dist in protocol.factors.items()})
    return row


def engine_keys(design: Design) -> list[tuple[str, float]]:
    """(protocol id, ambient temperature in K) of every aging engine the design needs."""
    return [(p.protocol_id, t) for p in design.protocols for t in design.ambient_temperatures_k]


def warm_engine(design: Design, protocol_id: str, temperature_k: float) -> float:
    """Build (and, with ``solver.compile``, compile) one aging engine in this process;
    returns its build time in seconds. The runner calls it once per engine before the
    samples, spread over the workers, so that the compiler runs once per model and
    machine instead of once per worker (the compiled code is cached on disk)."""
    protocol = next(p for p in design.protocols if p.protocol_id == protocol_id)
    engine = get_aging_engine(design, protocol_id, temperature_k)
    engine.ensure_built(_midpoint_row(design, protocol))
    return engine.build_time_s


def warm_worker(design: Design) -> None:
    """Build every engine this design can need, once per process.

    Doing it on the first task keeps later tasks free of builds, and lets joblib's
    loky pool take its memory reference after the builds (otherwise the growth from
    later builds reads as a leak and the worker is restarted, losing its models).
    """
    if design.content_hash in _WARM:
        return
    configure_allocator()
    for protocol_id, temperature_k in engine_keys(design):
        warm_engine(design, protocol_id, temperature_k)
    if design.eis.enabled:
        midpoint = {name: float(dist.ppf(0.5)) for name, dist in design.varied.items()}
        eis = get_eis_engine(design)
        eis.ensure_built({**eis.default_inputs(), **{k: v for k, v in midpoint.items() if k in eis.default_inputs()}})
    _WARM.add(design.content_hash)


def simulate_sample(design: Design, row: dict) -> dict[str, pd.DataFrame]:
    """Aging run, EIS and labels for one sample. Failures become solver_log rows.

    Returns the rows of every table in ``TABLES`` plus ``TIMINGS`` (its wall and solver
    times): only the timings depend on the machine and its load."""
    warm_worker(design)
    t0 = time.perf_counter()
    ids = _ids(row)
    engine = get_aging_engine(design, row["protocol_id"], row["ambient_temperature_k"])
    run = engine.run(row)
    tables = {name: pd.DataFrame() for name in TABLES}
    eis_time = eis_solver_time = 0.0
    try:
        tables["labels"] = pd.DataFrame(label_rows(ids, run.snapshots, engine.nominal_capacity_ah, run.status))
        tables["curves"] = _curves(ids, run.snapshots)
        tables["pulses"] = _pulses(ids, run.snapshots)
        tables["spectra"], tables["impedance_features"], eis_time, eis_solver_time = _eis(design, row, run.snapshots)
        problems = physics_problems(tables["labels"])
        if problems and run.status == "ok":
            run.status, run.failure_reason = "failed", "non-physical result: " + "; ".join(problems)
            tables["labels"]["solver_status"] = "failed"
    except Exception as exc:  # post-processing failure is recorded, not raised
        run.status = "failed"
        run.failure_reason = f"post-processing {type(exc).__name__}: {str(exc)[:200]}"
        for name in ("labels", "curves", "spectra", "impedance_features", "pulses"):
            tables[name] = pd.DataFrame()
    tables["solver_log"] = pd.DataFrame([{
        **ids,
        "status": run.status,
        "failure_reason": run.failure_reason or None,  # null on ok rows, not an empty string
        "solver": design.solver.name,
        "rtol": design.solver.rtol,
        "atol": design.solver.atol,
        "cycles_completed": int(run.cycles_completed),
        "cycles_solved": int(run.cycles_solved),
        "jumps": int(run.jumps),
        "largest_jump_cycles": int(run.largest_jump_cycles),
        "rpts_completed": len(run.snapshots),
    }])
    tables[TIMINGS] = pd.DataFrame([{
        "sample_id": row["sample_id"],
        "wall_time_s": time.perf_counter() - t0,
        "solve_time_s": run.solve_time_s,
        "eis_time_s": eis_time,
        "solver_time_s": run.solver_time_s,
        "eis_solver_time_s": eis_solver_time,
    }])
    release_memory()
    return tables


