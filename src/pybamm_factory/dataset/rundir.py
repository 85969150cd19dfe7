"""Where a run writes: refusing unsafe output directories, one writer at a time, disk full.

A run writes only into an empty (or new) directory, or into a directory that already
holds a run of the same design, seed and size (``run.json`` matching: a finished
dataset, or a partly written run that it resumes). While it writes, it holds a lock
file naming its PID and host; a second run into the same directory is refused, and a
lock left by a run that died on this host is taken over. Temporary files of atomic
writes that a killed run left behind are removed before the run resumes.

This module imports nothing else from the package, so the store can use its errors.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import time
import uuid
from pathlib import Path

from ..errors import FactoryError

LOCK_NAME = ".pybamm-factory.lock"
RUN_INFO = "run.json"
# temporary files of atomic writes: ``.<name>.tmp-<pid>`` (and any ``*.tmp-<pid>``)
TEMPORARY = re.compile(r".*\.tmp-\d+$")
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
DISK_FULL_TEXT = ("No space left on device", "File too large", "Disk quota exceeded")


class RunConflictError(FactoryError, RuntimeError):
    """An output directory that this run must not write into (another design, seed or
    size; not a dataset; another run writing there); the CLI prints it in one line."""


class DiskFullError(RunConflictError):
    """The file system ran out of space (or of the allowed file size) during a write."""

    def __init__(self, path: str | Path, needed_bytes: int, what: str | None = None):
        self.path, self.needed_bytes = Path(path), int(needed_bytes)
        mb = max(1, -(-self.needed_bytes // 1_000_000))
        what = what or f"writing {self.path.name}"
        super().__init__(f"{self.path.parent}: disk full {what} (needs about {mb} MB free)")


def is_disk_full(exc: BaseException) -> bool:
    """An OSError that means no space (ENOSPC), file size limit (EFBIG) or quota (EDQUOT);
    pyarrow's errors carry the text only."""
    if isinstance(exc, DiskFullError):
        return True
    if not isinstance(exc, OSError):
        return False
    return exc.errno in DISK_FULL_ERRNOS or any(t in str(exc) for t in DISK_FULL_TEXT)


def _project_root() -> Path | None:
    """The source checkout this package runs from (the first folder up with pyproject.toml)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").exists() or (parent / ".git").exists():
            return parent
    return None


def _protected(resolved: Path) -> str | None:
    """Why ``resolved`` must never be an output directory, or None."""
    if resolved == Path(resolved.anchor):
        return "the file system root"
    try:
        if resolved == Path.home().resolve():
            return "the home directory"
    except (RuntimeError, KeyError):  # no home directory known
        pass
    if resolved == _project_root():
        return "the repository root"
    if (resolved / ".git").exists():
        return "a repository root"
    return None


# what a run killed before writing run.json can leave in a folder: its lock and their temporaries
OWN_LEFTOVERS = re.compile(rf"^({re.escape(LOCK_NAME)}|{re.escape(LOCK_NAME)}\.\w+\.tmp-\d+|\.{re.escape(RUN_INFO)}\.tmp-\d+)$")


def _foreign_entries(path: Path) -> list[str]:
    """Entries of a folder without run.json other than what a run killed early leaves."""
    return sorted(e.name for e in os.scandir(path) if not OWN_LEFTOVERS.match(e.name))


def check_inside(path: Path, base: Path) -> Path:
    """``path`` resolved, refused unless it lies strictly inside ``base`` (the default
    output folder ``datasets/``: a second line of defence against a design name that
    is not a plain slug)."""
    resolved, root = Path(path).resolve(), Path(base).resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise RunConflictError(f"{path}: the default output directory must lie inside {base}/ "
                               f"(it resolves to {resolved}); give --out explicitly")
    return resolved


def read_info(out: Path) -> dict | None:
    path = Path(out) / RUN_INFO
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RunConflictError(f"{path}: unreadable ({exc}); not resuming into it") from None
    if not isinstance(info, dict):
        raise RunConflictError(f"{path}: not a pybamm-factory run record; not resuming into it")
    return info


def check_out_dir(out: Path, info: dict) -> None:
    """Refuse an output directory this run must not write into; nothing is written."""
    out = Path(out)
    resolved = out.resolve()
    why = _protected(resolved)
    if why:
        raise RunConflictError(f"{out}: refusing to write a dataset into {why}; choose a new or empty directory with --out")
    if out.exists() and not out.is_dir():
        raise RunConflictError(f"{out}: exists and is not a directory; choose a new or empty directory with --out")
    if not out.is_dir():
        return
    existing = read_info(out)
    if existing is None:
        try:
            foreign = _foreign_entries(out)
        except OSError as exc:
            raise RunConflictError(f"{out}: cannot read the output directory ({exc.strerror})") from None
        if foreign:
            listed = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise RunConflictError(f"{out}: not empty and not a pybamm-factory run (no {RUN_INFO}; holds {listed}); "
                                   "choose a new or empty directory with --out")
        return
    if existing != info:
        diff = ", ".join(f"{k}: {existing.get(k)} here, {v} asked" for k, v in info.items() if existing.get(k) != v)
        diff = diff or "other keys in run.json"
        raise RunConflictError(f"{out}: holds another run ({diff}); choose another --out or delete it")


def make_dir(out: Path) -> None:
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunConflictError(f"{out}: cannot create the output directory ({exc.strerror or exc})") from None


def remove_temporaries(out: Path) -> list[Path]:
    """Delete leftover ``*.tmp-<pid>`` files of atomic writes under ``out`` (call it
    holding the lock: no live writer owns them then). Returns what was removed."""
    removed = []
    for folder, dirs, files in os.walk(out):
        for name in files:
            if TEMPORARY.match(name):
                path = Path(folder) / name
                try:
                    path.unlink()
                    removed.append(path)
                except FileNotFoundError:
                    pass
    return removed


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def _started_after(pid: int, since: float) -> bool:
    """True when the process with ``pid`` started after ``since`` (the PID was reused)."""
    try:
        import psutil

        return psutil.Process(pid).create_time() > since + 1.0
    except Exception:  # psutil missing, or the process gone meanwhile
        return False


class RunLock:
    """An exclusive lock on a run directory: ``<out>/.pybamm-factory.lock`` holding the
    owner's PID, host and start time. Taken with an atomic hard link (never a half-written
    lock file); a lock whose PID is dead on this host (or was reused since) is stale and
    taken over; a lock from another host is never taken over (its PID cannot be checked).
    """

    def __init__(self, out: Path):
        self.out = Path(out)
        self.path = self.out / LOCK_NAME
        self.record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                       "token": uuid.uuid4().hex}
        self.held = False

    def _read(self) -> dict | None:
        try:
            record = json.loads(self.path.read_text())
            return record if isinstance(record, dict) else {}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}

    def _stale(self, record: dict) -> bool:
        if record.get("host") != socket.gethostname():
            return False
        pid, since = record.get("pid"), record.get("started")
        if not isinstance(pid, int):
            return False
        if not _pid_alive(pid):
            return True
        return isinstance(since, (int, float)) and since > 0 and _started_after(pid, float(since))

    def _link(self) -> bool:
        tmp = self.out / f"{LOCK_NAME}.{self.record['token']}.tmp-{os.getpid()}"
        try:
            tmp.write_text(json.dumps(self.record))
            try:
                os.link(tmp, self.path)
                return True
            except FileExistsError:
                return False
            except OSError as exc:  # file systems without hard links
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                    raise
                try:
                    fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    return False
                with os.fdopen(fd, "w") as fh:
                    fh.write(json.dumps(self.record))
                return True
        finally:
            tmp.unlink(missing_ok=True)

    def _refusal(self, record: dict) -> RunConflictError:
        if not record:
            return RunConflictError(f"{self.out}: locked by another run ({self.path} unreadable); "
                                    "delete it if no run is writing there")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(record.get("started", 0) or 0)))
        return RunConflictError(f"{self.out}: another run is writing here (pid {record.get('pid')} on "
                                f"{record.get('host')}, since {since}); wait for it to finish, or delete "
                                f"{self.path} if that run is gone")

    def acquire(self) -> RunLock:
        try:
            for _ in range(3):
                if self._link():
                    self.held = True
                    return self
                record = self._read()
                if record is None:  # released meanwhile: try again
                    continue
                if not self._stale(record):
                    raise self._refusal(record)
                self._take_over(record)
            raise self._refusal(self._read() or {})
        except OSError as exc:
            raise RunConflictError(f"{self.out}: cannot write in the output directory ({exc.strerror or exc})") from None

    def _take_over(self, stale: dict) -> None:
        """Remove a stale lock, serialised with other takers by a lock on the folder, and
        only if it is still the stale one (a taker before us may hold a fresh lock now)."""
        import fcntl

        fd = os.open(self.out, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if self._read() == stale:
                self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)  # releases the flock

    def release(self) -> None:
        if self.held:
            if (self._read() or {}).get("token") == self.record["token"]:
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        return self if self.held else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def open_run_dir(out: Path, info: dict) -> RunLock:
    """Check ``out``, create it, lock it, check it again under the lock, and remove the
    temporary files a killed run left there. Returns the held lock (release it, or use
    it as a context manager)."""
    out = Path(out)
    check_out_dir(out, info)
    make_dir(out)
    lock = RunLock(out).acquire()
    try:
        check_out_dir(out, info)  # another run may have started here before we locked
        remove_temporaries(out)
    except BaseException:
        lock.release()
        raise
    return lock


def space_needed(out: Path, parts: str, todo: int, done: int) -> int:
    """Bytes a run still needs, about: the finished samples' part files per sample times
    the samples to go, plus as much again for the compacted tables and 2 MB for figures."""
    total = 0
    for folder, _, files in os.walk(Path(out) / parts):
        for name in files:
            try:
                total += (Path(folder) / name).stat().st_size
            except OSError:
                pass
    per_sample = total / done if done else 0
    return int(per_sample * todo + total + per_sample * todo + 2_000_000)


def written_by(temporary: Path) -> Path:
    """The file a temporary ``.<name>.tmp-<pid>`` of an atomic write was to become."""
    temporary = Path(temporary)
    name = re.sub(r"\.tmp-\d+$", "", temporary.name)
    return temporary.with_name(name[1:] if name.startswith(".") else name)
