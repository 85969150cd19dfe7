"""Run samples in parallel: a joblib process pool locally, or a Dask cluster.

Both backends call the same :func:`simulate_sample` and hand each finished sample
back to the calling process, which writes it (so only the client needs to see the
output directory). Results arrive in completion order; the tables are put in
manifest order at compaction, so the backend and worker count do not change them.

A worker process that dies (killed, out of memory, a crash in native code) does not
end the run. Locally, joblib's pool breaks as a whole when one of its workers dies;
the samples that had not come back are run again on fresh workers, at most
``workers`` at a time so that it is known which samples were in flight at a death.
A sample in flight at a death is run again alone (so a death then is its own), and if
its worker dies then too, the second death, it becomes a ``failed`` solver_log row
saying so; the samples that merely shared the pool with it finish alone (Dask retries a task on
another worker itself, and a task that killed its workers too often is recorded the
same way).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

import pandas as pd

from ..design.spec import Design
from .sample import TABLES, engine_keys, simulate_sample, warm_engine

BACKENDS = ("local", "dask")
# a sample in flight during this many worker deaths is run alone; if its worker dies then, it fails
# (1: a sample that kills its worker twice is a failed row, as the issue asked; a neighbour
# of the culprit is rerun alone once and finishes)
DEATHS_BEFORE_ALONE = 1
# worker deaths in a row with no sample in flight (killed from outside while idle) before giving up
IDLE_DEATHS = 5

log = logging.getLogger("pybamm_factory")


def _exit_codes(exc: BaseException) -> str:
    found = re.search(r"exit codes of the workers are (\{.*?\})", str(exc))
    return f"exit code {found.group(1)}" if found else type(exc).__name__


def _worker_died_tables(design: Design, row: dict, reason: str,
                        template: dict[str, pd.DataFrame] | None) -> dict[str, pd.DataFrame]:
    """The tables of a sample that no worker could finish: no data rows, a ``failed``
    solver_log row with ``reason``. Columns follow a result already seen (so the parts
    concatenate with the others), else the solver_log schema."""
    if template is not None:
        names, columns = list(template), list(template["solver_log"].columns)
        kinds = {c: dtype.kind for c, dtype in template["solver_log"].dtypes.items()}
    else:
        from ..dataset.schemas import load_schema

        props = load_schema("solver_log")["properties"]
        names, columns = list(TABLES), list(props)
        def kind(prop):  # "type" is a name or a list of names ("string" or "null")
            types = prop.get("type", "number")
            first = next((t for t in ([types] if isinstance(types, str) else types) if t != "null"), "string")
            return {"integer": "i", "number": "f", "boolean": "b"}.get(first, "O")

        kinds = {c: kind(props[c]) for c in columns}
    known = {"sample_id": row["sample_id"], "cell_design_id": row["cell_design_id"], "status": "failed",
             "failure_reason": reason, "solver": design.solver.name, "rtol": design.solver.rtol,
             "atol": design.solver.atol}
    record = {}
    for column in columns:
        if column in known:
            record[column] = known[column]
        else:
            kind = kinds.get(column, "O")
            record[column] = 0 if kind in "iu" else 0.0 if kind == "f" else False if kind == "b" else ""
    tables = {name: pd.DataFrame() for name in names}
    tables["solver_log"] = pd.DataFrame([record], columns=columns)
    return tables


def _parallel_rows(design: Design, rows: list[dict], workers: int, pre_dispatch: str,
                   dispatched: list[str]) -> Iterator[dict[str, pd.DataFrame]]:
    """One joblib loky pool over ``rows``, results unordered; ``dispatched`` collects the
    sample ids as joblib takes them (handed to the pool, finished or not)."""
    from joblib import Parallel, delayed

    def tasks():
        for row in rows:
            dispatched.append(row["sample_id"])
            yield delayed(simulate_sample)(design, row)

    parallel = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered",
                        batch_size=1, pre_dispatch=pre_dispatch)
    yield from parallel(tasks())


def _local(design: Design, rows: list[dict], workers: int) -> Iterator[dict[str, pd.DataFrame]]:
    if workers <= 1:
        for row in rows:  # in-process, for debugging
            yield simulate_sample(design, row)
        return
    from joblib import Parallel, delayed
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    if design.solver.compile:  # compile each model once, spread over the workers
        try:
            Parallel(n_jobs=workers, backend="loky", batch_size=1)(
                delayed(warm_engine)(design, pid, t) for pid, t in engine_keys(design))
        except TerminatedWorkerError as exc:  # only a speed-up: the samples build their own engines
            log.warning("a worker process died while compiling the models (%s); the samples build them", _exit_codes(exc))
    done: set[str] = set()
    template = None
    dispatched: list[str] = []
    try:  # the common path: one pool over every sample
        for tables in _parallel_rows(design, rows, workers, "2*n_jobs", dispatched):
            done.add(tables["solver_log"]["sample_id"].iloc[0])
            template = template or tables
            yield tables
        return
    except TerminatedWorkerError as exc:
        death = exc
    yield from _recover(design, rows, workers, done, dispatched, death, template)


def _recover(design: Design, rows: list[dict], workers: int, done: set[str], dispatched: list[str],
             death: BaseException, template) -> Iterator[dict[str, pd.DataFrame]]:
    """Run the samples a broken pool lost, counting the deaths each was in flight for."""
    from joblib import Parallel, delayed
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    deaths: Counter[str] = Counter()
    idle_deaths = 0

    def count(exc: BaseException, in_flight: set[str]) -> None:
        nonlocal idle_deaths
        for sample_id in in_flight:
            deaths[sample_id] += 1
        idle_deaths = 0 if in_flight else idle_deaths + 1
        pending = sum(r["sample_id"] not in done for r in rows)
        log.warning("a worker process died (%s) with %d sample(s) in flight; running the %d unfinished sample(s) "
                    "on fresh workers", _exit_codes(exc), len(in_flight), pending)
        if idle_deaths >= IDLE_DEATHS:
            raise exc

    count(death, set(dispatched) - done)
    while True:
        pending = [r for r in rows if r["sample_id"] not in done]
        if not pending:
            return
        alone = [r for r in pending if deaths[r["sample_id"]] >= DEATHS_BEFORE_ALONE]
        for row in alone:  # nothing else in flight: a death now is this sample's
            sample_id = row["sample_id"]
            try:
                tables = Parallel(n_jobs=workers, backend="loky", batch_size=1)([delayed(simulate_sample)(design, row)])[0]
            except TerminatedWorkerError as exc:
                deaths[sample_id] += 1
                reason = (f"worker process died while solving this sample ({_exit_codes(exc)}), "
                          f"{deaths[sample_id]} times, the last time alone in its worker")
                log.warning("sample %s: %s; recorded as failed", sample_id, reason)
                tables = _worker_died_tables(design, row, reason, template)
            done.add(sample_id)
            template = template or tables
            yield tables
        rest = [r for r in pending if deaths[r["sample_id"]] < DEATHS_BEFORE_ALONE]
        if not rest:
            continue
        dispatched = []
        try:  # at most ``workers`` handed to the pool: those are the ones in flight at a death
            for tables in _parallel_rows(design, rest, workers, "n_jobs", dispatched):
                done.add(tables["solver_log"]["sample_id"].iloc[0])
                template = template or tables
                yield tables
        except TerminatedWorkerError as exc:
            count(exc, set(dispatched) - done)


def _dask(design: Design, rows: list[dict], workers: int, scheduler: str | None):
    from dask.distributed import Client, KilledWorker, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        client = Client(cluster)
    try:
        design_future = client.scatter(design, broadcast=True)
        if design.solver.compile:  # compile each model once per machine before the samples
            client.gather(client.map(warm_engine, [design_future] * len(engine_keys(design)),
                                     *zip(*engine_keys(design)), pure=False))
        by_key = {f"sample-{row['sample_id']}": row for row in rows}
        futures = [client.submit(simulate_sample, design_future, row, key=key, pure=False)
                   for key, row in by_key.items()]
        template = None
        for future in as_completed(futures):
            try:
                tables = future.result()
                template = template or tables
            except KilledWorker as exc:  # the scheduler retried it on other workers, which died too
                row = by_key[future.key]
                reason = f"worker process died while solving this sample, on every retry (dask KilledWorker: {exc})"
                log.warning("sample %s: %s; recorded as failed", row["sample_id"], reason)
                tables = _worker_died_tables(design, row, reason[:500], template)
            yield tables
            future.release()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_samples(design: Design, rows: Iterable[dict], workers: int = 1, backend: str = "local",
                scheduler: str | None = None,
                on_result: Callable[[dict[str, pd.DataFrame]], None] | None = None) -> int:
    """Solve ``rows`` and pass each sample's tables to ``on_result``; returns the count."""
    rows = list(rows)
    if not rows:
        return 0
    if backend == "local":
        results = _local(design, rows, workers)
    elif backend == "dask":
        results = _dask(design, rows, workers, scheduler)
    else:
        raise ValueError(f"backend '{backend}' is not allowed; allowed: {', '.join(BACKENDS)}")
    count = 0
    try:
        for tables in results:
            if on_result is not None:
                on_result(tables)
            count += 1
    finally:  # an error in on_result (a full disk, say) stops the workers now, not at exit
        results.close()
    return count
