"""Where a run writes and what it survives: unsafe --out refused, one writer at a time,
leftovers of a killed run cleaned, worker processes killed, a full disk. Real runs, real
files, real signals; the comparisons are against the session's clean smoke run."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from pybamm_factory import api
from pybamm_factory.dataset import rundir, store
from pybamm_factory.dataset.card import DATA_TABLES
from pybamm_factory.dataset.store import read_table
from tests.cli_helpers import RUN, one_line_refusal, run_cli
from tests.dataset_files import rebuild_parts, table_digests

TIMING_COLUMNS = ["wall_time_s", "solve_time_s", "eis_time_s", "solver_time_s", "eis_solver_time_s"]


def _same_tables(a: Path, b: Path) -> None:
    assert table_digests(a, "manifest") == table_digests(b, "manifest")
    for table in DATA_TABLES:
        x, y = read_table(a, table), read_table(b, table)
        if table == "solver_log":
            x, y = x.drop(columns=TIMING_COLUMNS, errors="ignore"), y.drop(columns=TIMING_COLUMNS, errors="ignore")
        pd.testing.assert_frame_equal(x, y, check_exact=True, obj=table)


def _leftovers(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if rundir.TEMPORARY.match(p.name) or p.name == rundir.LOCK_NAME]


def _partial_copy(done: Path, out: Path, drop: int = 1) -> list[str]:
    """A run directory as a run killed mid-way leaves it (see tests/dataset_files.py)."""
    return rebuild_parts(done, out, drop)


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


# -- where it writes ---------------------------------------------------------------------

def test_out_that_is_a_file_or_cannot_be_created_is_refused(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    result = run_cli("--out", str(afile))  # click's own check of the option answers first
    assert result.exit_code == 2 and "Traceback" not in result.output and "afile" in result.output
    with pytest.raises(api.RunConflictError, match="exists and is not a directory"):
        api.run("smoke", samples=4, seed=7, out=afile, quiet=True)
    assert afile.read_text() == "x"
    one_line_refusal(run_cli("--out", str(afile / "sub")), str(afile / "sub"), "cannot create the output directory")


def test_default_out_dir_must_stay_inside_datasets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert api.default_out_dir(SimpleNamespace(name="smoke"), 4, 7) == Path("datasets/smoke-n4-seed7")
    for name in ("../../escape", "/etc/x", "a/../../b"):
        with pytest.raises(api.RunConflictError, match="must lie inside datasets"):
            api.default_out_dir(SimpleNamespace(name=name), 4, 7)
    assert not (tmp_path / "escape-n4-seed7").exists()


def test_second_run_into_a_locked_directory_is_refused(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    lock = out / rundir.LOCK_NAME
    # a live process holds it (this test's own process: the CLI runs in it, and is refused all the same)
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}))
    held = lock.read_text()
    one_line_refusal(run_cli("--out", str(out)), str(out), f"another run is writing here (pid {os.getpid()}")
    assert lock.read_text() == held and sorted(p.name for p in out.iterdir()) == [rundir.LOCK_NAME]
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))  # no start time: still live
    one_line_refusal(run_cli("--out", str(out)), "another run is writing here")
    # another host's lock cannot be checked: refused, never taken over
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": "elsewhere.example", "started": time.time()}))
    one_line_refusal(run_cli("--out", str(out)), "on elsewhere.example", "delete")
    # a dead PID on this host is stale: taken over (and released again)
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "started": time.time()}))
    with rundir.RunLock(out) as taken:
        assert json.loads(lock.read_text())["pid"] == os.getpid() and taken.held
        with pytest.raises(api.RunConflictError, match="another run is writing here"):
            rundir.RunLock(out).acquire()
    assert not lock.exists()


def test_stale_lock_and_half_written_files_are_cleaned_on_resume(smoke_dataset, tmp_path):
    out = tmp_path / "resumed"
    _partial_copy(smoke_dataset, out)
    planted = [out / ".README.md.tmp-999999", out / store.PARTS / "labels" / "x.tmp-999999",
               out / store.PARTS / "solver_log" / ".s-0.parquet.tmp-999999"]
    for path in planted:
        path.write_bytes(b"half a file")
    (out / rundir.LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "started": 0}))
    result = run_cli("--out", str(out), "--workers", "1")
    assert result.exit_code == 0, result.output
    assert not _leftovers(out), _leftovers(out)
    _same_tables(out, smoke_dataset)


# -- faults ------------------------------------------------------------------------------

def _loky_workers(proc: subprocess.Popen):
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        return []
    found = []
    for child in children:
        try:
            if "popen_loky_posix" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


def _start(out: Path, samples: int, workers: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pybamm_factory.cli", "run", "--design", "smoke", "--samples", str(samples),
                             "--seed", "7", "--workers", str(workers), "--out", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_sample_whose_worker_always_dies_is_a_failed_row(tmp_path):
    """Every worker is killed as soon as it appears: retries are bounded, the run ends,
    and each sample is a failed row saying its worker died (no solve ever finishes)."""
    out = tmp_path / "doomed"
    proc = _start(out, 2, 2)
    kills = 0
    while proc.poll() is None:
        for worker in _loky_workers(proc):
            try:
                worker.send_signal(signal.SIGKILL)
                kills += 1
            except Exception:
                pass
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and kills >= 3
    log = read_table(out, "solver_log")
    assert len(log) == 2 and set(log["status"]) == {"failed"}
    for reason in log["failure_reason"]:
        assert re.search(r"worker process died while solving this sample .*2 times, the last time alone", reason), reason
    assert read_table(out, "labels").empty
    assert not _leftovers(out)


@pytest.mark.slow
def test_worker_killed_mid_run_loses_nothing(smoke_dataset, tmp_path):
    out = tmp_path / "killed"
    proc = _start(out, 4, 2)
    parts = out / store.PARTS / "solver_log"
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline and not list(parts.glob("*.parquet")):
        time.sleep(0.1)
    workers = _loky_workers(proc)
    assert proc.poll() is None and workers, "the run was still solving"
    workers[-1].send_signal(signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=400)
    assert proc.returncode == 0, stderr
    assert "a worker process died" in stderr and "Traceback" not in stderr, stderr
    log = read_table(out, "solver_log")
    assert log["sample_id"].is_unique and len(log) == 4
    _same_tables(out, smoke_dataset)
    assert not _leftovers(out)


def test_disk_full_is_one_line_and_a_resume_finishes(smoke_dataset, tmp_path):
    """A small tmpfs filled to 24 KB free (ENOSPC) where mounting is allowed, else a file
    size limit of 12 KB (EFBIG): the last sample's parts (16 KB each for labels and curves)
    do not fit, while the run record and manifest (7 KB) do."""
    fs = tmp_path / "fs"
    fs.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(fs)], capture_output=True).returncode == 0
    try:
        out = fs / "run"
        _partial_copy(smoke_dataset, out)
        cmd = [sys.executable, "-c", "import resource, sys; from pybamm_factory.cli import main; "
               "limit = int(sys.argv.pop(1)); limit and resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)); "
               "main(prog_name='pybamm-factory')",
               "0" if mounted else "12000", *RUN, "--workers", "1", "--out", str(out)]
        if mounted:
            stat = os.statvfs(fs)
            (fs / "filler").write_bytes(b"\0" * ((stat.f_bavail - 6) * stat.f_frsize))  # 6 pages (24 KB) left
        full = subprocess.run(cmd, capture_output=True, text=True)
        text = full.stderr.strip()
        assert full.returncode == 2 and len(text.splitlines()) == 1 and "Traceback" not in text, text
        assert re.fullmatch(rf"error: {re.escape(str(out))}/\.parts/\w+: disk full writing s-\w+\.parquet "
                            r"\(needs about \d+ MB free\)", text), text
        assert not _leftovers(out), _leftovers(out)
        assert len(store.finished_samples(out)) == 3
        if mounted:
            (fs / "filler").unlink()
        cmd[3] = "0"  # no size limit now
        again = subprocess.run(cmd, capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
        _same_tables(out, smoke_dataset)
        assert not _leftovers(out)
    finally:
        if mounted:
            subprocess.run(["umount", str(fs)], capture_output=True)
