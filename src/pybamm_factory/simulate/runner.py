"""Run samples in parallel: a joblib process pool locally, or a Dask cluster.

Both backends call the same :func:`simulate_sample` and hand each finished sample
back to the calling process, which writes it (so only the client needs to see the
output directory). Results arrive in completion order; the tables are put in
manifest order at compaction, so the backend and worker count do not change them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import pandas as pd

from ..design.spec import Design
from .sample import engine_keys, simulate_sample, warm_engine

BACKENDS = ("local", "dask")


def _local(design: Design, rows: list[dict], workers: int) -> Iterator[dict[str, pd.DataFrame]]:
    if workers <= 1:
        for row in rows:  # in-process, for debugging
            yield simulate_sample(design, row)
        return
    from joblib import Parallel, delayed

    if design.solver.compile:  # compile each model once, spread over the workers
        Parallel(n_jobs=workers, backend="loky", batch_size=1)(
            delayed(warm_engine)(design, pid, t) for pid, t in engine_keys(design))
    parallel = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered",
                        batch_size=1, pre_dispatch="2*n_jobs")
    yield from parallel(delayed(simulate_sample)(design, row) for row in rows)


def _dask(design: Design, rows: list[dict], workers: int, scheduler: str | None):
    from dask.distributed import Client, LocalCluster, as_completed

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
        futures = [client.submit(simulate_sample, design_future, row, key=f"sample-{row['sample_id']}", pure=False)
                   for row in rows]
        for future in as_completed(futures):
            yield future.result()
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
    for tables in results:
        if on_result is not None:
            on_result(tables)
        count += 1
    return count
