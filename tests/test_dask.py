"""Scale-out on a real Dask LocalCluster (2 workers, loopback): same tables as local."""

from __future__ import annotations

import os
import signal
import threading
import time

import pandas as pd
import pytest
from dask import distributed  # noqa: E402  (the dask extra is part of the test install)

from pybamm_factory import api
from pybamm_factory.dataset.card import DATA_TABLES
from pybamm_factory.dataset.store import read_table
from tests.dataset_files import table_digests


def _same_tables(a, b):
    assert table_digests(a, "manifest") == table_digests(b, "manifest")
    for table in DATA_TABLES:
        x, y = read_table(a, table), read_table(b, table)
        pd.testing.assert_frame_equal(x, y, check_exact=True)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as c:
        yield c


@pytest.mark.slow
def test_dask_backend_gives_identical_tables(cluster, smoke_dataset, tmp_path):
    out = api.run("smoke", samples=4, seed=7, out=tmp_path / "dask", backend="dask", scheduler=cluster.scheduler_address,
                  quiet=True)
    _same_tables(out, smoke_dataset)
    # data labels are byte-identical, not only equal
    assert table_digests(out) == table_digests(smoke_dataset)


@pytest.mark.slow
def test_worker_killed_mid_run_loses_and_duplicates_nothing(cluster, smoke_dataset, tmp_path):
    out = tmp_path / "killed"
    client = distributed.Client(cluster.scheduler_address)
    pids = list(client.run(os.getpid).values())
    errors = []
    thread = threading.Thread(target=lambda: _run_catching(out, cluster.scheduler_address, errors))
    thread.start()
    parts = out / ".parts" / "solver_log"
    deadline = time.time() + 300
    while time.time() < deadline and not list(parts.glob("*.parquet")):
        time.sleep(0.2)
    os.kill(pids[0], signal.SIGKILL)  # a worker dies mid-run; the nanny restarts it
    thread.join(600)
    client.close()
    assert not errors, errors
    log = read_table(out, "solver_log")
    assert log["sample_id"].is_unique and len(log) == 4
    _same_tables(out, smoke_dataset)


def _run_catching(out, address, errors):
    try:
        api.run("smoke", samples=4, seed=7, out=out, backend="dask", scheduler=address, quiet=True)
    except Exception as exc:  # surfaced by the assertion in the test
        errors.append(repr(exc))
