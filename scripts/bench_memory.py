"""Peak RSS of the parent and of each worker for a cheap design at two sizes.

    python scripts/bench_memory.py --sizes 200 1000 --workers 2

The dataset is written as samples finish, so peak memory should not grow with the
number of samples: the script prints both peaks and their ratio (goal: within 10 %,
under 1 GiB per worker). Each size runs in a fresh process, so one run's imports and
caches do not count against the next.
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

from pybamm_factory.design import parse_design
from pybamm_factory.design.spec import resolve_design_path


def cheap_design():
    raw = yaml.safe_load(resolve_design_path("smoke").read_text())
    raw = copy.deepcopy(raw)
    raw["name"] = "memory-bench"
    raw["aging"].update({"max_cycles": 2, "rpt_interval_cycles": 2})
    return parse_design(raw, "memory-bench")


RUN = """
import sys
from pathlib import Path
sys.path.insert(0, {script_dir!r})
from bench_memory import cheap_design
import pybamm_factory.api as api
api.run(cheap_design(), samples={samples}, workers={workers}, seed=1, out=Path({out!r}), quiet=True)
"""


def measure(samples: int, workers: int) -> tuple[float, float]:
    """Each size runs in a fresh Python process (the run's parent), watched from here."""
    peaks = {"parent": 0.0, "worker": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        code = RUN.format(script_dir=str(Path(__file__).resolve().parent), samples=samples, workers=workers,
                          out=str(Path(tmp) / "run"))
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code])
        parent = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                peaks["parent"] = max(peaks["parent"], parent.memory_info().rss)
                for child in parent.children(recursive=True):
                    peaks["worker"] = max(peaks["worker"], child.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.2)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"run of {samples} samples failed with exit code {proc.returncode}")
    mib = 2 ** 20
    print(f"{samples:>6} samples: {wall:7.1f} s, {60 * samples / wall:6.1f} samples/min, "
          f"peak parent {peaks['parent'] / mib:6.0f} MiB, peak worker {peaks['worker'] / mib:6.0f} MiB")
    return peaks["parent"], peaks["worker"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    results = [measure(n, args.workers) for n in args.sizes]
    (p0, w0), (p1, w1) = results[0], results[-1]
    print(f"growth {args.sizes[0]} -> {args.sizes[-1]} samples: parent x{p1 / p0:.3f}, worker x{w1 / w0:.3f} (goal <= 1.10)")


if __name__ == "__main__":
    main()
