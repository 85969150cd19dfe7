"""Bad flags and malformed measured files: one line naming the problem, exit 2, never a
traceback; or read, with what was dropped or merged said on the console. Files are real
files of ../shared/realdata broken the ways real exports break (cut-off lines, text in
number cells, wrong units), by hand and by Hypothesis."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybamm_factory.cli import main
from tests.conftest import REPO


def _invoke(args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result, [line for line in result.output.splitlines() if line.strip()]


def _one_line_error(args, *words):
    result, lines = _invoke(args)
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output and (result.exception is None or isinstance(result.exception, SystemExit))
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("args, words", [
    (["train", str(REPO / "tests" / "data"), "--target", "lli_capacity_pct", "--lli-frame", "0.03"], ["--lli-frame", "TOP,BOTTOM"]),
    (["run", "--seed", "-1"], ["--seed", "0<=x"]),
    (["run", "-n", "10000000000"], ["--samples", "1000000"]),
    (["design", "-n", "0"], ["--samples"]),
    (["run", "--workers", "0"], ["--workers"]),
    (["run", "--backend", "spark"], ["--backend", "local"]),
    (["run", "--design", "."], ["--design", "is a directory"]),
    (["design", "--design", "."], ["--design", "is a directory"]),
    (["read"], ["Missing argument"]),
    (["no-such-command"], ["No such command"]),
])
def test_bad_flags_are_one_line(args, words):
    _one_line_error(args, *words)


def test_unreachable_dask_scheduler_is_one_line(tmp_path):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        line = _one_line_error(["run", "--design", "smoke", "-n", "1", "--backend", "dask", "--scheduler",
                                "tcp://127.0.0.1:9", "--out", tmp_path / "run", "-q"], "tcp://127.0.0.1:9")
    assert "Dask scheduler" in line


# --- spectra ---------------------------------------------------------------------------------

def _lgm_sweep_csv(realdata, tmp_path, name="sweep.csv", soc=50):
    table = pd.read_csv(realdata / "lgm50lt_eis" / "LGM50LT_eis_25C.csv")
    table = table[table["soc"] == soc][["frequency_hz", "z_real_ohm", "z_imag_ohm"]]
    path = tmp_path / name
    table.to_csv(path, index=False)
    return path, table


def test_spectrum_with_text_nan_inf_and_a_cut_off_line(realdata, tmp_path):
    path, table = _lgm_sweep_csv(realdata, tmp_path)
    lines = path.read_text().splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ",n/a"
    lines[9] = lines[9].rsplit(",", 1)[0] + ",inf"
    lines[12] = lines[12].replace(lines[12].split(",")[1], "nan")
    lines.append(lines[-1][: len(lines[-1]) // 2])  # the export stopped mid-line
    path.write_text("\n".join(lines) + "\n")
    result, out = _invoke(["eis-features", path])
    assert result.exit_code == 0, result.output
    assert any("4 of 68 points dropped" in line for line in out), result.output
    clean, _ = _lgm_sweep_csv(realdata, tmp_path, "clean.csv")
    r1 = CliRunner().invoke(main, ["eis-features", str(path), "-o", str(tmp_path / "a.csv")])
    r2 = CliRunner().invoke(main, ["eis-features", str(clean), "-o", str(tmp_path / "b.csv")])
    assert r1.exit_code == r2.exit_code == 0
    a, b = pd.read_csv(tmp_path / "a.csv").iloc[0], pd.read_csv(tmp_path / "b.csv").iloc[0]
    assert a["r_ohm_ohm"] == pytest.approx(b["r_ohm_ohm"], rel=0.02)  # three points fewer, the same cell
    assert a["r_ct_ohm"] == pytest.approx(b["r_ct_ohm"], rel=0.05)


def test_repeated_frequencies_are_averaged_not_fitted_as_a_second_arc(realdata, tmp_path):
    path, table = _lgm_sweep_csv(realdata, tmp_path)
    doubled = pd.concat([table, table.iloc[10:20]])  # a part of the sweep exported twice
    doubled.to_csv(path, index=False)
    clean, _ = _lgm_sweep_csv(realdata, tmp_path, "clean.csv")
    assert CliRunner().invoke(main, ["eis-features", str(path), "-o", str(tmp_path / "a.csv")]).exit_code == 0
    assert CliRunner().invoke(main, ["eis-features", str(clean), "-o", str(tmp_path / "b.csv")]).exit_code == 0
    a, b = pd.read_csv(tmp_path / "a.csv").iloc[0], pd.read_csv(tmp_path / "b.csv").iloc[0]
    for column in ("r_ohm_ohm", "r_ct_ohm", "r_ct_fit_ohm", "f_peak_hz"):
        assert a[column] == pytest.approx(b[column], rel=1e-6)
    result, out = _invoke(["eis-features", path])
    assert any("10 points at repeated frequencies" in line or "20 points at repeated frequencies" in line
               for line in out), result.output


@pytest.mark.parametrize("content, words", [
    ("", ["empty file"]),
    ("frequency_hz,z_real_ohm\n1000,0.01\n100,0.02\n10,0.03\n1,0.04\n0.1,0.05\n", ["lacks an imaginary part"]),
    ("frequency_hz,z_real_ohm,z_imag_ohm\n1000,0.01,-0.001\n100,0.02,-0.002\n", ["valid point", "at least 5"]),
    ("frequency_hz,z_real_ohm,z_imag_ohm\na1,b2,c3\nd4,e5,f6\n", ["no point with numeric"]),
    ("frequency_hz,z_real_ohm,z_imag_ohm\nabc,def,ghi\n", ["unit 'abc' not understood"]),
    ("frequency_hz,z_real_ohm,z_imag_ohm\n-5,0.01,-0.001\n1,1,1\n2,2,2\n3,3,3\n4,4,4\n", ["positive frequencies"]),
    ("\x00\x01\x02\x03binary\xff", ["spectrum"]),
])
def test_broken_spectrum_files_fail_in_one_line(tmp_path, content, words):
    path = tmp_path / "broken.csv"
    path.write_bytes(content.encode("latin-1"))
    _one_line_error(["eis-features", path], "broken.csv", *words)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 4000), junk=st.lists(st.tuples(st.integers(0, 4000), st.sampled_from(
    ["", "x", "nan", "-inf", ",", "\n", ";;", "1e999", "\x00", "Ω", '"'])), max_size=6))
def test_fuzzed_spectrum_files_never_give_a_traceback(realdata, tmp_path, cut, junk):
    text = (realdata / "lgm50lt_eis" / "LGM50LT_eis_25C.csv").read_text()[:4000]
    for position, piece in sorted(junk, reverse=True):
        text = text[:position] + piece + text[position:]
    path = tmp_path / "fuzz.csv"
    path.write_text(text[:cut], encoding="utf-8")
    result, lines = _invoke(["eis-features", path, "-o", tmp_path / "out.csv"])
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output and (result.exception is None or isinstance(result.exception, SystemExit))
    if result.exit_code == 2:
        errors = [line for line in lines if line.startswith("error:")]
        assert len(errors) == 1 and "fuzz.csv" in errors[0], result.output


# --- cycler files ----------------------------------------------------------------------------

def _wmg(realdata, rate="1C"):
    return pd.read_csv(realdata / "lgm50_wmg" / f"LGM50_25C_{rate}.csv")


@pytest.mark.parametrize("change, words", [
    (lambda t: t.assign(voltage_v=1000 * t["voltage_v"]), ["outside", "millivolts under a volt header"]),
    (lambda t: t.assign(voltage_v=-t["voltage_v"]), ["outside", "negative voltages"]),
    (lambda t: t.assign(current_a=1000 * t["current_a"]), ["beyond any single cell", "--current-unit mA"]),
])
def test_implausible_units_are_refused(realdata, tmp_path, change, words):
    path = tmp_path / "cell.csv"
    change(_wmg(realdata)).rename(columns={"time_s": "Time (s)", "current_a": "Current (A)",
                                           "voltage_v": "Voltage (V)"}).to_csv(path, index=False)
    _one_line_error(["read", path], "cell.csv", *words)
    calibrate = _invoke(["calibrate", "--data", path, "--fit", "Negative electrode active material volume fraction",
                         "--out", tmp_path / "x.yaml"])[0]
    assert calibrate.exit_code == 2 and not (tmp_path / "x.yaml").exists()  # no "calibrated" design from it


def test_rows_dropped_for_text_and_nan_are_counted(realdata, tmp_path):
    table = _wmg(realdata).astype({"voltage_v": object, "current_a": object})
    table.loc[[100, 200, 300], "voltage_v"] = "OVL"
    table.loc[[400, 500], "current_a"] = np.nan
    path = tmp_path / "cell.csv"
    table.to_csv(path, index=False)
    result, lines = _invoke(["read", path])
    assert result.exit_code == 0, result.output
    assert any(f"5 of {len(table)} rows dropped" in line for line in lines), result.output


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 6000), junk=st.lists(st.tuples(st.integers(0, 6000), st.sampled_from(
    ["", "x", "nan", "-inf", ",", "\n", "\t", "1e999", "\x00", "µ", "D"])), max_size=6))
def test_fuzzed_cycler_files_never_give_a_traceback(realdata, tmp_path, cut, junk):
    text = (realdata / "neware" / "nw_regular_export_ife_example.csv").read_text(encoding="latin-1")[:6000]
    for position, piece in sorted(junk, reverse=True):
        text = text[:position] + piece + text[position:]
    path = tmp_path / "fuzz.csv"
    path.write_text(text[:cut], encoding="utf-8")
    result, lines = _invoke(["read", path])
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output and (result.exception is None or isinstance(result.exception, SystemExit))
    if result.exit_code == 2:
        errors = [line for line in lines if line.startswith("error:")]
        assert len(errors) == 1 and "fuzz.csv" in errors[0], result.output


def test_huge_or_padded_files_are_refused_fast(tmp_path):
    import time

    import openpyxl

    sparse = tmp_path / "padded.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Time (s)", "Current (A)", "Voltage (V)"])
    for k in range(20):
        sheet.append([k, 1.0, 3.7 - 0.01 * k])
    sheet["Z1048576"] = 1  # one stray cell in Excel's last row: a 5 kB file of a million rows
    book.save(sparse)
    start = time.perf_counter()
    result, lines = _invoke(["read", sparse])
    assert time.perf_counter() - start < 30  # the padding is skipped, not turned into text
    assert result.exit_code in (0, 2) and "Traceback" not in result.output
    big = tmp_path / "huge_spectrum.csv"
    with open(big, "wb") as fh:  # a sparse file: 250 MB on paper, nothing on disk
        fh.write(b"frequency_hz,z_real_ohm,z_imag_ohm\n")
        fh.truncate(250_000_000)
    start = time.perf_counter()
    _one_line_error(["eis-features", big], "huge_spectrum.csv", "too large")
    assert time.perf_counter() - start < 5


def test_every_user_error_is_a_factory_error_and_keeps_its_builtin_base():
    """One base class: the CLI catches FactoryError (one line, exit 2) instead of matching
    class names, and code that caught ValueError / RuntimeError still does."""
    from pybamm_factory import FactoryError
    from pybamm_factory.analysis.sensitivity import SensitivityError
    from pybamm_factory.augment import AugmentError
    from pybamm_factory.calibrate.curve import CalibrationError
    from pybamm_factory.calibrate.eis_fit import EisFitError
    from pybamm_factory.dataset.replay import ReplayError
    from pybamm_factory.dataset.rundir import DiskFullError, RunConflictError
    from pybamm_factory.design import DesignError
    from pybamm_factory.learn.models import UntrustedModelError
    from pybamm_factory.readers import ReaderError

    for error in (DesignError, ReaderError, CalibrationError, EisFitError, AugmentError, UntrustedModelError,
                  ReplayError, SensitivityError):
        assert issubclass(error, FactoryError) and issubclass(error, ValueError), error
    for error in (RunConflictError, DiskFullError):
        assert issubclass(error, FactoryError) and issubclass(error, RuntimeError), error


def test_a_per_cell_parameter_the_fit_does_not_fit_is_refused_in_one_line(tmp_path):
    table = REPO / "tests" / "data" / "kirkaldy_trajectories.csv"
    _one_line_error(["calibrate-aging", "--trajectories", table, "--fit", "SEI solvent diffusivity [m2.s-1]",
                     "--per-cell", "Positive electrode LAM break-in factor", "--out", tmp_path / "x.yaml"],
                    "--per-cell", "'Positive electrode LAM break-in factor'", "SEI solvent diffusivity")
    _one_line_error(["calibrate-aging", "--data", table, "--per-cell", "Positive electrode LAM break-in factor",
                     "--out", tmp_path / "x.yaml"], "--per-cell", "--trajectories")
    assert not (tmp_path / "x.yaml").exists()
