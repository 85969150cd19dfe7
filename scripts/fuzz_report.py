"""Malformed designs, flags and measured files through the real CLI: how many give one clean
error line, a traceback, are accepted, or hang. Prints the table docs/robustness.md holds.

    python scripts/fuzz_report.py [--random 200] [--seed 0] [--timeout 20]

Cases: the named bad designs of tests/test_design_input.py and the named bad flags and files
of tests/test_bad_input.py, plus seeded random mutations (a leaf value of the smoke design
replaced or a key deleted; text spliced into or cut from the real LG M50LT spectrum and the
Neware export of ../shared/realdata). "clean": exit 2 and one line starting `error:`;
"accepted": exit 0 (for a random mutation that is often right: it can still be a valid
design or file); "traceback": any other exception or exit; "hang": past --timeout seconds.
Random mutations of files are graded on whether the reader answered cleanly, not on whether
they should have been refused.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
from collections import Counter
from pathlib import Path

import yaml
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
REALDATA = REPO.parent / "shared" / "realdata"


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def outcome(args, timeout: int) -> str:
    from pybamm_factory.cli import main

    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
    except _Hang:
        return "hang"
    finally:
        signal.alarm(0)
    if isinstance(result.exception, _Hang):
        return "hang"
    lines = [line for line in result.output.splitlines() if line.strip()]
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return "traceback"
    if result.exit_code == 0:
        return "accepted"
    errors = [line for line in lines if line.startswith("error:")]
    return "clean" if result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output else "traceback"


def _mutations(raw, rng: random.Random, count: int):
    """Seeded mutations of a design: a leaf replaced by an odd value, or a key deleted."""
    odd = ["", "x", -1, 0, 1e30, -1e30, [], {}, None, True, "1e400", "nan", [1, 2], "../../x"]

    def leaves(node, path=()):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from leaves(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from leaves(v, path + (i,))
        yield path

    paths = [p for p in leaves(raw) if p]
    for _ in range(count):
        mutated = yaml.safe_load(yaml.safe_dump(raw))
        path = rng.choice(paths)
        parent = mutated
        for key in path[:-1]:
            parent = parent[key]
        if rng.random() < 0.2 and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = rng.choice(odd)
        yield yaml.safe_dump(mutated, sort_keys=False)


def _spliced(text: str, rng: random.Random, count: int):
    pieces = ["", "x", "nan", "-inf", ",", "\n", "\t", ";;", "1e999", "\x00", "µ", '"', "D"]
    for _ in range(count):
        out = text
        for _ in range(rng.randint(0, 6)):
            k = rng.randrange(len(out) + 1)
            out = out[:k] + rng.choice(pieces) + out[k:]
        yield out[: rng.randrange(len(out) + 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=200, help="random mutations per kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=int, default=20)
    args = parser.parse_args()
    from tests import test_bad_input as bad
    from tests.test_design_input import BAD_INPUT

    rng = random.Random(args.seed)

    flag_cases = next(m.args[1] for m in bad.test_bad_flags_are_one_line.pytestmark if m.name == "parametrize")
    file_cases = next(m.args[1] for m in bad.test_broken_spectrum_files_fail_in_one_line.pytestmark
                      if m.name == "parametrize")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def design_case(kind, content):
            path = tmp / "design.yaml"
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
            rows.append((kind, outcome(["design", "--design", path, "-n", "2", "-o", tmp / "m.parquet"], args.timeout)))

        for _, content, _, _ in BAD_INPUT:
            design_case("designs: named bad input", content)
        smoke = yaml.safe_load((REPO / "src" / "pybamm_factory" / "designs" / "smoke.yaml").read_text())
        for content in _mutations(smoke, rng, args.random):
            design_case("designs: random mutations", content)
        for flag_args, _ in flag_cases:
            rows.append(("flags: named bad flags", outcome(flag_args, args.timeout)))
        for content, _ in file_cases:
            path = tmp / "broken.csv"
            path.write_bytes(content.encode("latin-1"))
            rows.append(("spectra: named broken files", outcome(["eis-features", path], args.timeout)))
        spectrum = (REALDATA / "lgm50lt_eis" / "LGM50LT_eis_25C.csv").read_text()[:4000]
        for content in _spliced(spectrum, rng, args.random):
            path = tmp / "fuzz.csv"
            path.write_text(content, encoding="utf-8")
            rows.append(("spectra: random splices", outcome(["eis-features", path, "-o", tmp / "o.csv"], args.timeout)))
        cycler = (REALDATA / "neware" / "nw_regular_export_ife_example.csv").read_text(encoding="latin-1")[:6000]
        for content in _spliced(cycler, rng, args.random):
            path = tmp / "fuzz.csv"
            path.write_text(content, encoding="utf-8")
            rows.append(("cycler files: random splices", outcome(["read", path], args.timeout)))
    counts = Counter(rows)
    kinds = list(dict.fromkeys(kind for kind, _ in rows))
    print("| cases | n | clean | traceback | accepted | hang |\n|---|---:|---:|---:|---:|---:|")
    for kind in kinds:
        n = sum(v for (k, _), v in counts.items() if k == kind)
        print(f"| {kind} | {n} | " + " | ".join(str(counts[(kind, o)]) for o in ("clean", "traceback", "accepted", "hang")) + " |")


if __name__ == "__main__":
    main()
