"""The command line on its own: help, usage errors and the commands that only need a file
(`read`, `eis-features`, `calibrate-eis` and `predict` refusals, `run --out` refused before
anything is written), through click's CliRunner or a fresh `python -m pybamm_factory.cli`.
Commands that need a dataset are tested beside it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from pybamm_factory.cli import main
from pybamm_factory.dataset import rundir
from pybamm_factory.design import MAX_SAMPLES
from pybamm_factory.learn import load_model
from pybamm_factory.readers import COLUMNS
from tests.cli_helpers import one_line_refusal, run_cli

REPO = Path(__file__).resolve().parents[1]


# --- help, and what the light commands import -----------------------------------------

def test_cli_help_explains_every_option():
    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    for option in ("--design", "--samples", "--workers", "--seed", "--out", "--backend", "--scheduler", "--quiet"):
        assert option in result.output
    assert "default: 200" in result.output


def test_help_and_read_do_not_import_pybamm(realdata):
    """`pybamm-factory --help`, `read` and `eis-features` run without loading PyBaMM or
    matplotlib (a fresh interpreter, the real CLI), and so does `import pybamm_factory.readers`."""

    code = ("import sys\nfrom pybamm_factory.cli import main\n"
            "for args in (['--help'], ['read', sys.argv[1]], ['eis-features', sys.argv[2]]):\n"
            "    try:\n        main(args)\n    except SystemExit as exc:\n        assert exc.code in (0, None), (args, exc.code)\n"
            "print(sorted(m for m in ('pybamm', 'matplotlib', 'torch', 'sklearn') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code, str(realdata / "arbin" / "arbin_example.csv"),
                          str(realdata / "eis_example" / "impedance_example.csv")],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
    # the readers package alone, as `learn.measured` and a notebook import it
    subprocess.run([sys.executable, "-c", "import pybamm_factory.readers, sys; "
                    "assert 'pybamm' not in sys.modules and 'matplotlib' not in sys.modules"], check=True)


# --- design ---------------------------------------------------------------------------

def test_cli_bad_design_prints_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: p2d\n")
    out = subprocess.run([sys.executable, "-m", "pybamm_factory.cli", "design", "--design", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    assert str(bad) in out.stderr


def test_cli_refuses_ten_million_samples_before_building_anything(tmp_path):
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["design", "--design", "smoke", "-n", "10000000", "-o", str(tmp_path / "out")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and "Traceback" not in result.output
    # the option's range or the manifest builder refuses it: either way one line naming -n and the cap
    assert len(lines) == 1 and lines[0].startswith("error: ") and "-n" in lines[0], result.output
    assert str(MAX_SAMPLES) in lines[0].replace(",", "")
    assert time.perf_counter() - started < 30
    assert not (tmp_path / "out").exists()


# --- run: where it may not write (tests/test_crash.py holds the runs that do) ----------

@pytest.mark.parametrize("where", ["/", "home", "repository"])
def test_root_home_and_repository_root_are_refused(where):
    out = {"/": Path("/"), "home": Path.home(), "repository": REPO}[where]
    one_line_refusal(run_cli("--out", str(out)), str(out), "refusing to write a dataset into")
    assert not (out / rundir.LOCK_NAME).exists() and not (out / "run.json").exists()


def test_non_empty_directory_that_is_not_a_run_is_refused_untouched(tmp_path):
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "README.md").write_text("my notes\n")
    (foreign / "data.csv").write_text("a,b\n1,2\n")
    stamp = (foreign / "README.md").stat().st_mtime_ns
    one_line_refusal(run_cli("--out", str(foreign)), str(foreign), "not a pybamm-factory run")
    assert sorted(p.name for p in foreign.iterdir()) == ["README.md", "data.csv"]
    assert (foreign / "README.md").read_text() == "my notes\n"
    assert (foreign / "README.md").stat().st_mtime_ns == stamp
    # a file that only looks like a leftover of ours is someone else's too
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "backup.tmp-1").write_text("keep")
    one_line_refusal(run_cli("--out", str(odd)), "backup.tmp-1")
    assert (odd / "backup.tmp-1").read_text() == "keep"


def test_read_only_parent_is_refused_in_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], capture_output=True).returncode:
        os.chmod(ro, 0o555)  # not root: an unwritable folder does the same
        if os.access(ro, os.W_OK):
            pytest.skip("cannot make a read-only folder here (root without mount)")
    try:
        one_line_refusal(run_cli("--out", str(ro / "run")), str(ro / "run"), "cannot create the output directory")
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)
        os.chmod(ro, 0o755)


# --- read -----------------------------------------------------------------------------

def test_read_cli_writes_normalised_parquet(realdata, tmp_path):
    out = tmp_path / "maccor.parquet"
    result = CliRunner().invoke(main, ["read", str(realdata / "maccor" / "xTESLADIAG_000038.078"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    import re

    first, last = map(float, re.search(r"discharge capacity ([\d.]+) -> ([\d.]+) A\.h", result.output).groups())
    assert first == pytest.approx(3.99, abs=0.01) and last < first  # the file's first full discharge, then fade
    frame = pd.read_parquet(out)
    assert list(frame.columns) == COLUMNS and len(frame) > 10000
    bad = CliRunner().invoke(main, ["read", str(realdata / "eis_example" / "impedance_example.csv"), "-o", str(out)])
    assert bad.exit_code == 2 and "unrecognised export" in bad.output


def test_read_cli_column_mapping_for_unrecognised_headers(realdata, tmp_path):
    import re

    raw = pd.read_csv(realdata / "lgm50_wmg" / "LGM50_25C_0.5C.csv")
    path = tmp_path / "rig.csv"
    pd.DataFrame({"Elapsed": raw["time_s"], "Load": -1000 * raw["current_a"], "Cell": raw["voltage_v"]}).to_csv(path, index=False)
    out = tmp_path / "rig.parquet"
    unmapped = CliRunner().invoke(main, ["read", str(path), "-o", str(out)])
    assert unmapped.exit_code == 2 and "unrecognised export" in unmapped.output
    args = ["read", str(path), "-o", str(out), "--column", "time_s=Elapsed", "--column", "current_a=Load",
            "--column", "voltage_v=Cell", "--current-sign", "discharge-positive", "--current-unit", "mA"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "stated: discharge-positive" in result.output
    first = float(re.search(r"discharge capacity ([\d.]+)", result.output).group(1))
    assert first == pytest.approx(4.84, abs=0.03)
    bad = CliRunner().invoke(main, args[:4] + ["--column", "time_s"])
    assert bad.exit_code == 2 and "NAME=HEADER" in bad.output


# --- eis-features and calibrate-eis ---------------------------------------------------

def test_eis_features_cli_reads_both_real_files(realdata, tmp_path):
    out = tmp_path / "feats.csv"
    result = CliRunner().invoke(main, ["eis-features", str(realdata / "lgm50lt_eis" / "LGM50LT_eis_25C.csv"),
                                       str(realdata / "eis_example" / "impedance_example.csv"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    feats = pd.read_csv(out)
    assert len(feats) == 10 and feats["r_ohm_ohm"].gt(0).all()
    printed = CliRunner().invoke(main, ["eis-features", str(realdata / "eis_example" / "impedance_example.csv")])
    assert "r_ct_ohm" in printed.output


def test_calibrate_eis_needs_a_temperature_and_an_soc(realdata, tmp_path):
    spectrum = realdata / "lgm50lt_eis" / "LGM50LT_eis_25C.csv"
    result = CliRunner().invoke(main, ["calibrate-eis", str(spectrum), "--out", str(tmp_path / "x.yaml")])
    assert result.exit_code == 2 and "--temperature-c" in result.output
    no_soc = realdata / "eis_example" / "impedance_example.csv"
    result = CliRunner().invoke(main, ["calibrate-eis", str(no_soc), "--temperature-c", "25", "--out", str(tmp_path / "x.yaml")])
    assert result.exit_code == 2 and "soc" in result.output, result.output


# --- predict --------------------------------------------------------------------------

def test_predict_refuses_a_directory_without_a_model(tmp_path):
    result = CliRunner().invoke(main, ["predict", str(tmp_path), __file__])
    assert result.exit_code == 2 and "not a model directory" in result.output
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path)
