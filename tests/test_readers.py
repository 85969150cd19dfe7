"""Readers on every real file in shared/realdata, asserting facts of the files."""

from __future__ import annotations

import numpy as np
import pytest

from pybamm_factory.readers import (
    COLUMNS,
    ReaderError,
    cycle_capacities,
    detect_format,
    discharge_segments,
    read_cycler,
    read_spectrum,
)


def test_maccor_export(realdata):
    path = realdata / "maccor" / "xTESLADIAG_000038.078"
    assert detect_format(path) == "maccor"
    frame = read_cycler(path)
    assert list(frame.columns) == COLUMNS
    dis = frame[frame["step_type"] == "discharge"]["current_a"]
    assert dis.min() > 4.6 and dis.max() < 4.8  # 4.70 A, positive = discharge
    assert (frame.loc[frame["step_type"] == "charge", "current_a"] < 0).all()
    caps = cycle_capacities(frame).set_index("cycle_index")["discharge_capacity_ah"]
    assert caps.iloc[0] == pytest.approx(3.99, abs=0.01)
    assert caps.loc[20] == pytest.approx(3.78, abs=0.01)  # fade 3.99 -> 3.78 Ah over 20 cycles
    assert np.all(np.diff(caps.loc[0:20].to_numpy()) < 0)
    assert np.all(np.diff(frame["time_s"]) >= 0)


def test_neware_three_level_export(realdata):
    path = realdata / "neware" / "nw_regular_export_ife_example.csv"
    assert detect_format(path) == "neware"
    frame = read_cycler(path)
    assert frame["temperature_c"].notna().all()
    assert 0.45 < frame.loc[frame["step_type"] == "discharge", "current_a"].median() <= 0.5
    caps = cycle_capacities(frame).set_index("cycle_index")["discharge_capacity_ah"]
    assert caps.iloc[0] == pytest.approx(0.331, abs=0.003)
    assert caps.iloc[-1] == pytest.approx(0.263, abs=0.003)
    assert frame["cycle_index"].nunique() == 20


def test_arbin_csv(realdata):
    path = realdata / "arbin" / "arbin_example.csv"
    assert detect_format(path) == "arbin"
    frame = read_cycler(path)
    dis = frame[frame["step_type"] == "discharge"]
    assert dis["current_a"].max() == pytest.approx(4.4, abs=0.1)  # 4C on a ~1.1 Ah cell, positive = discharge
    caps = cycle_capacities(frame)["discharge_capacity_ah"]
    assert caps.between(1.0, 1.15).all()
    assert frame["temperature_c"].between(25, 40).all()


def test_wmg_generic_csv_sign_is_inferred(realdata):
    path = realdata / "lgm50_wmg" / "LGM50_25C_0.5C.csv"
    frame = read_cycler(path)
    assert "negative = discharge" in frame.attrs["current_convention"]
    segments = discharge_segments(frame)
    assert len(segments) == 1
    seg = segments[0]
    assert seg["current_a"].mean() == pytest.approx(2.5, abs=0.02)
    assert seg["discharged_ah"].iloc[-1] == pytest.approx(4.84, abs=0.03)
    stated = read_cycler(path, format="csv", current_sign="discharge-negative")
    np.testing.assert_allclose(stated["current_a"], frame["current_a"])


@pytest.mark.parametrize("name", ["LGM50_0C_0.1C.csv", "LGM50_10C_1C.csv", "LGM50_45C_1.5C.csv", "LGM50_25C_2C.csv"])
def test_every_wmg_rate_gives_a_cc_discharge(realdata, name):
    frame = read_cycler(realdata / "lgm50_wmg" / name)
    seg = discharge_segments(frame)[0]
    assert 3.5 < seg["discharged_ah"].iloc[-1] < 5.2
    assert seg["voltage_v"].iloc[-1] < 2.7


def test_crlf_unsigned_current_and_preamble_variants(tmp_path):
    """A Maccor-like export with CRLF, two preamble lines and unsigned Amps + State."""
    lines = ["Today's Date 01/01/2025", "Procedure: x", "Rec#\tCyc#\tStep\tTest (Sec)\tAmps\tVolts\tState\tAmp-hr"]
    t = 0.0
    rec = 1
    for cyc in range(2):
        for state, amps, v0, dv in (("C", 1.0, 3.6, +0.05), ("D", 1.0, 4.1, -0.05)):
            for k in range(10):
                lines.append(f"{rec}\t{cyc}\t{1 if state == 'C' else 2}\t{t:.1f}\t{amps}\t{v0 + dv * k:.3f}\t{state}\t{k * 0.01}")
                t += 36.0
                rec += 1
    path = tmp_path / "x.txt"
    path.write_bytes("\r\n".join(lines).encode())
    frame = read_cycler(path)
    assert set(frame["step_type"]) == {"charge", "discharge"}
    assert (frame.loc[frame["step_type"] == "discharge", "current_a"] > 0).all()
    caps = cycle_capacities(frame)
    assert caps["discharge_capacity_ah"].iloc[0] == pytest.approx(0.09, abs=1e-6)


def test_biologic_text_export(tmp_path):
    body = ["EC-Lab ASCII FILE", "Nb header lines : 3", "", "time/s\tEcell/V\tI/mA\tcycle number\tNs"]
    for k in range(20):
        body.append(f"{k * 10}\t{4.0 - 0.01 * k}\t-1000\t1\t1")
    path = tmp_path / "b.mpt"
    path.write_text("\n".join(body))
    frame = read_cycler(path)
    assert frame.attrs["format"] == "biologic"
    assert frame["current_a"].iloc[0] == pytest.approx(1.0)  # -1000 mA reduction -> 1 A discharge


def test_bad_files_fail_with_one_line(tmp_path, realdata):
    junk = tmp_path / "junk.csv"
    junk.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ReaderError, match=r"junk.csv: unrecognised export; expected a Maccor"):
        read_cycler(junk)
    with pytest.raises(ReaderError, match="no such file"):
        read_cycler(tmp_path / "missing.csv")
    with pytest.raises(ReaderError, match="format 'xlsx' not allowed"):
        read_cycler(realdata / "arbin" / "arbin_example.csv", format="xlsx")
    with pytest.raises(ReaderError, match="Maccor export without a 'Rec#' header"):
        read_cycler(realdata / "arbin" / "arbin_example.csv", format="maccor")


def test_spectrum_readers(realdata):
    lt = read_spectrum(realdata / "lgm50lt_eis" / "LGM50LT_eis_25C.csv")
    assert lt["sweep_id"].nunique() == 9
    assert sorted(lt["soc"].unique()) == pytest.approx([0.1 * k for k in range(1, 10)])
    assert (lt.groupby("sweep_id").size() == 67).all()
    ex = read_spectrum(realdata / "eis_example" / "impedance_example.csv")
    assert ex["sweep_id"].nunique() == 1 and len(ex) > 50
    assert (ex["z_imag_ohm"] < 0).mean() > 0.8  # capacitive part negative, as stored


# Other labs' layouts of the same real data: each variant is the real file rewritten in another
# export layout (column names, units, separators, time format, sign convention), and must give
# the same facts as the original.

def _fade(frame):
    return cycle_capacities(frame).set_index("cycle_index")["discharge_capacity_ah"]


def test_arbin_mits_pro_layout_with_spaces_units_and_clock(realdata, tmp_path):
    import pandas as pd

    raw = pd.read_csv(realdata / "arbin" / "arbin_example.csv")
    variant = pd.DataFrame({
        "Data Point": raw["Data_Point"],
        "Date Time": pd.to_datetime(raw["DateTime"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S"),
        "Test Time (s)": raw["Test_Time"], "Step Index": raw["Step_Index"], "Cycle Index": raw["Cycle_Index"],
        "Current (A)": raw["Current"], "Voltage (V)": raw["Voltage"], "Aux_Temperature_1 (C)": raw["Temperature"]})
    path = tmp_path / "mits_pro.csv"
    variant.to_csv(path, index=False)
    assert detect_format(path) == "arbin"
    original, frame = read_cycler(realdata / "arbin" / "arbin_example.csv"), read_cycler(path)
    np.testing.assert_allclose(frame["current_a"], original["current_a"])
    np.testing.assert_allclose(_fade(frame), _fade(original))
    assert frame["temperature_c"].between(25, 40).all()


def test_maccor_csv_layout_with_mode_column_and_day_clock(realdata, tmp_path):
    """Comma-separated Maccor layout: 'Md' state, unsigned 'Current [A]', TestTime as 'Nd hh:mm:ss',
    no 'Rec#' line, CRLF line ends and a preamble."""
    import pandas as pd

    raw = pd.read_csv(realdata / "maccor" / "xTESLADIAG_000038.078", sep="\t", skiprows=1, low_memory=False)
    seconds = raw["Test (Sec)"].astype(float)
    clock = [f"{int(t // 86400)}d {int(t % 86400 // 3600):02d}:{int(t % 3600 // 60):02d}:{t % 60:05.2f}" for t in seconds]
    variant = pd.DataFrame({"Rec": raw["Rec#"], "Cycle C": raw["Cyc#"], "Step": raw["Step"], "TestTime": clock,
                            "Current [A]": raw["Amps"].abs(), "Voltage [V]": raw["Volts"], "Md": raw["State"]})
    path = tmp_path / "maccor.csv"
    path.write_bytes(("Maccor export\r\nProcedure: TESLADIAG\r\n" + variant.to_csv(index=False, lineterminator="\r\n")).encode())
    assert detect_format(path) == "csv"
    frame = read_cycler(path)
    assert "state column 'Md'" in frame.attrs["current_convention"]
    caps = _fade(frame)
    assert caps.iloc[0] == pytest.approx(3.99, abs=0.01)
    assert caps.loc[20] == pytest.approx(3.78, abs=0.01)


def test_maccor_rec_header_saved_as_comma_csv(realdata, tmp_path):
    """The Maccor export with its own column names ('Rec#', 'Amps', 'State') saved comma-separated
    with a preamble line: detected as Maccor and read by the Maccor reader."""
    import pandas as pd

    raw = pd.read_csv(realdata / "maccor" / "xTESLADIAG_000038.078", sep="\t", skiprows=1, low_memory=False)
    path = tmp_path / "maccor_rec.csv"
    path.write_text("Today's Date,01/01/2025\n" + raw.to_csv(index=False))
    assert detect_format(path) == "maccor"
    frame = read_cycler(path)
    assert frame.attrs["current_convention"] == "Maccor State column (D = discharge), |Amps|"
    caps = _fade(frame)
    assert caps.iloc[0] == pytest.approx(3.99, abs=0.01)
    assert caps.loc[20] == pytest.approx(3.78, abs=0.01)


def test_battery_archive_layout_takes_the_cell_temperature(realdata, tmp_path):
    """Battery Archive's column names, the chamber's temperature column before the cell's:
    the cell's is read."""
    import pandas as pd

    raw = pd.read_csv(realdata / "lgm50_wmg" / "LGM50_25C_1C.csv")
    variant = pd.DataFrame({"Date_Time": pd.Timestamp("2025-01-01") + pd.to_timedelta(raw["time_s"], unit="s"),
                            "Test_Time (s)": raw["time_s"], "Cycle_Index": 1, "Current (A)": raw["current_a"],
                            "Voltage (V)": raw["voltage_v"], "Environment_Temperature (C)": 25.0,
                            "Cell_Temperature (C)": raw["surface_temperature_c"]})
    path = tmp_path / "battery_archive.csv"
    variant.to_csv(path, index=False)
    frame = read_cycler(path)
    assert frame["temperature_c"].max() == pytest.approx(raw["surface_temperature_c"].max())
    dis = discharge_segments(frame)[0]
    assert dis["current_a"].median() == pytest.approx(5.0, abs=0.01)


def test_neware_flat_layout_in_milliamps(realdata, tmp_path):
    """Single-level Neware layout: 'Step Type' words, unsigned 'Current(mA)', 'Total Time' as hh:mm:ss
    beside a per-step 'Time' that resets."""
    import pandas as pd

    original = read_cycler(realdata / "neware" / "nw_regular_export_ife_example.csv")
    words = original["step_type"].map({"discharge": "CC_DChg", "charge": "CCCV_Chg", "rest": "Rest"})
    total = original["time_s"].round().astype(int)
    step_start = original.groupby("step_index")["time_s"].transform("min")

    def hms(t):
        return (t // 3600).astype(str).str.zfill(2) + ":" + (t % 3600 // 60).astype(str).str.zfill(2) + ":" + (t % 60).astype(str).str.zfill(2)

    variant = pd.DataFrame({"DataPoint": range(1, len(original) + 1), "Cycle Index": original["cycle_index"],
                            "Step Index": original["step_index"], "Step Type": words,
                            "Time": hms((original["time_s"] - step_start).round().astype(int)), "Total Time": hms(total),
                            "Current(mA)": 1000 * original["current_a"].abs(), "Voltage(V)": original["voltage_v"],
                            "T1(°C)": original["temperature_c"]})
    path = tmp_path / "neware_flat.csv"
    variant.to_csv(path, index=False)
    frame = read_cycler(path)
    assert 0.45 < frame.loc[frame["step_type"] == "discharge", "current_a"].median() <= 0.5  # mA -> A, discharge positive
    caps = _fade(frame)
    assert caps.iloc[0] == pytest.approx(0.331, abs=0.003)
    assert caps.iloc[-1] == pytest.approx(0.263, abs=0.003)


def test_biologic_without_header_block_and_decimal_commas(realdata, tmp_path):
    import pandas as pd

    raw = pd.read_csv(realdata / "lgm50_wmg" / "LGM50_25C_0.5C.csv")
    lines = ["mode\tox/red\ttime/s\tEwe/V\t<I>/mA\tcycle number"]
    for t, i, v in zip(raw["time_s"], raw["current_a"], raw["voltage_v"]):  # file: negative = discharge
        lines.append(f"1\t{int(i > 0)}\t{t:.3f}\t{v:.5f}\t{1000 * i:.3f}\t1".replace(".", ","))
    path = tmp_path / "eclab_no_header.txt"
    path.write_text("\n".join(lines))
    assert detect_format(path) == "biologic"
    seg = discharge_segments(read_cycler(path))[0]
    assert seg["current_a"].mean() == pytest.approx(2.5, abs=0.02)
    assert seg["discharged_ah"].iloc[-1] == pytest.approx(4.84, abs=0.03)


def test_semicolon_table_with_clock_millivolts_and_kelvin(realdata, tmp_path):
    """Only date-times for time, current in mA, voltage in mV, temperature in K, decimal commas."""
    import pandas as pd

    raw = pd.read_csv(realdata / "lgm50_wmg" / "LGM50_25C_0.5C.csv")
    stamps = (pd.Timestamp("2024-05-01 10:00:00") + pd.to_timedelta(raw["time_s"], unit="s")).dt.strftime("%Y-%m-%d %H:%M:%S.%f")

    def comma(x):
        return f"{x:.2f}".replace(".", ",")

    lines = ["Logger: bench 3", "Timestamp;Current [mA];Voltage [mV];Cell temperature [K]"]
    for s, i, v, c in zip(stamps, raw["current_a"], raw["voltage_v"], raw["surface_temperature_c"]):
        lines.append(f"{s};{comma(1000 * i)};{comma(1000 * v)};{comma(c + 273.15)}")
    path = tmp_path / "bench.csv"
    path.write_text("\n".join(lines))
    frame = read_cycler(path)
    seg = discharge_segments(frame)[0]
    assert seg["discharged_ah"].iloc[-1] == pytest.approx(4.84, abs=0.03)
    assert seg["voltage_v"].iloc[0] < 4.3 and seg["voltage_v"].iloc[-1] > 2.4  # mV -> V
    assert frame["temperature_c"].dropna().between(20, 35).all()  # K -> degC


def _sweep(realdata, soc=0.5):
    lt = read_spectrum(realdata / "lgm50lt_eis" / "LGM50LT_eis_25C.csv")
    return lt[np.isclose(lt["soc"], soc)].reset_index(drop=True)


def _same_spectrum(frame, original):
    np.testing.assert_allclose(frame["frequency_hz"], original["frequency_hz"], rtol=1e-6)
    np.testing.assert_allclose(frame["z_real_ohm"], original["z_real_ohm"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(frame["z_imag_ohm"], original["z_imag_ohm"], rtol=1e-6, atol=1e-9)


def test_spectrum_in_gamry_dta_layout(realdata, tmp_path):
    """Preamble, ZCURVE table, leading tabs and a units line under the header."""
    sweep = _sweep(realdata)
    lines = ["EXPLAIN", "TAG\tEISPOT", "TITLE\tLABEL\tPotentiostatic EIS\tTest &Identifier", "ZCURVE\tTABLE",
             "\tPt\tTime\tFreq\tZreal\tZimag\tZsig\tZmod\tZphz", "\t#\ts\tHz\tohm\tohm\tV\tohm\t°"]
    for k, r in sweep.iterrows():
        z = complex(r["z_real_ohm"], r["z_imag_ohm"])
        lines.append(f"\t{k}\t{2 * k}\t{r['frequency_hz']!r}\t{r['z_real_ohm']!r}\t{r['z_imag_ohm']!r}\t1\t{abs(z)!r}\t"
                     f"{np.degrees(np.angle(z))!r}")
    path = tmp_path / "eis.DTA"
    path.write_text("\n".join(lines))
    _same_spectrum(read_spectrum(path), sweep)


def test_spectrum_in_eclab_layout_milliohm_decimal_comma(realdata, tmp_path):
    sweep = _sweep(realdata)
    lines = ["EC-Lab ASCII FILE", "Nb header lines : 4", "Potentio Electrochemical Impedance Spectroscopy", "",
             "freq/Hz\tRe(Z)/mOhm\t-Im(Z)/mOhm\t|Z|/mOhm\tPhase(Z)/deg"]
    for _, r in sweep.iterrows():
        z = complex(r["z_real_ohm"], r["z_imag_ohm"])
        row = [r["frequency_hz"], 1000 * z.real, -1000 * z.imag, 1000 * abs(z), np.degrees(np.angle(z))]
        lines.append("\t".join(f"{v:.10e}".replace(".", ",") for v in row))
    path = tmp_path / "eis.mpt"
    path.write_text("\n".join(lines))
    _same_spectrum(read_spectrum(path), sweep)


def test_spectrum_as_modulus_and_phase_in_khz(realdata, tmp_path):
    sweep = _sweep(realdata)
    z = sweep["z_real_ohm"].to_numpy() + 1j * sweep["z_imag_ohm"].to_numpy()
    import pandas as pd

    pd.DataFrame({"Frequency [kHz]": sweep["frequency_hz"] / 1000, "|Z| [mOhm]": 1000 * np.abs(z),
                  "Phase [deg]": np.degrees(np.angle(z))}).to_csv(tmp_path / "polar.csv", index=False, float_format="%.12e")
    _same_spectrum(read_spectrum(tmp_path / "polar.csv"), sweep)
    (tmp_path / "ohms.csv").write_text("Frequency (Hz),Zreal (furlong),Zimag (furlong)\n1,2,3\n")
    with pytest.raises(ReaderError, match=r"ohms.csv: column 'Zreal \(furlong\)': unit 'furlong' not understood"):
        read_spectrum(tmp_path / "ohms.csv")


def test_cc_cv_discharge_gives_its_cc_part(realdata):
    """The Arbin file discharges at 4.4 A to 2.0 V, then holds 2.0 V while the current tapers."""
    frame = read_cycler(realdata / "arbin" / "arbin_example.csv")
    segments = discharge_segments(frame)
    assert len(segments) == frame["cycle_index"].nunique() == 2
    caps = cycle_capacities(frame)["discharge_capacity_ah"].to_numpy()
    for seg, whole_step in zip(segments, caps):
        assert seg["current_a"].iloc[1:].between(4.3, 4.5).all()
        assert seg["voltage_v"].iloc[-1] == pytest.approx(2.0, abs=0.01)
        assert 0.9 * whole_step < seg["discharged_ah"].iloc[-1] < whole_step  # the CV taper is left out


def test_which_discharge_is_fitted(realdata):
    import pandas as pd

    from pybamm_factory.calibrate import CalibrationError, Curve
    from pybamm_factory.calibrate.curve import pick_discharge

    maccor = realdata / "maccor" / "xTESLADIAG_000038.078"  # records no temperature: it is stated
    largest = Curve.from_file(maccor, temperature_c=25)
    assert largest.source.startswith("CC discharge 1 of 24") and largest.discharged_ah[-1] == pytest.approx(3.99, abs=0.01)
    third = Curve.from_file(maccor, discharge=3, temperature_c=25)
    assert third.source.startswith("CC discharge 3 of 24") and third.discharged_ah[-1] < largest.discharged_ah[-1]
    with pytest.raises(CalibrationError, match="discharge 99 asked for, the file has 24 CC discharges"):
        Curve.from_file(maccor, discharge=99, temperature_c=25)
    with pytest.raises(CalibrationError, match="'last' is not allowed; allowed: largest, first, all"):
        Curve.from_file(maccor, discharge="last", temperature_c=25)
    every = Curve.all_from_file(maccor, discharge="all", temperature_c=25)
    assert len(every) == 24 and every[2].name == "xTESLADIAG_000038:3"
    np.testing.assert_allclose(every[2].voltage_v, third.voltage_v)
    assert [c.name for c in Curve.all_from_file(maccor, discharge="1,3", temperature_c=25)] == [
        "xTESLADIAG_000038:1", "xTESLADIAG_000038:3"]
    segs = [pd.DataFrame({"discharged_ah": [0.0, q]}) for q in (0.5, 4.80, 4.84)]  # a partial discharge first
    assert pick_discharge(segs, "largest", "x") == 1 and pick_discharge(segs, "first", "x") == 0


@pytest.mark.parametrize("words, kinds", [
    (["C", "D", "R", "O"], ["charge", "discharge", "rest", "rest"]),                      # Maccor
    (["CCCV_Chg", "CC_DChg", "Rest", "CC_Chg"], ["charge", "discharge", "rest", "charge"]),  # Neware
    (["CHA", "DCH", "PAU", "STO"], ["charge", "discharge", "rest", "rest"]),               # Digatron
    (["C_CC", "D_CC", "R", "C_CV"], ["charge", "discharge", "rest", "charge"]),            # Landt
    (["Charge", "Discharge", "Pause", "Charge"], ["charge", "discharge", "rest", "charge"]),  # BaSyTec commands
])
def test_state_words_of_other_cyclers(words, kinds):
    import pandas as pd

    from pybamm_factory.readers.vocabulary import _kinds_from_state

    assert list(_kinds_from_state(pd.Series(words))) == kinds


def test_numeric_mode_codes_are_not_read_as_states():
    import pandas as pd

    from pybamm_factory.readers.vocabulary import _kinds_from_state

    assert _kinds_from_state(pd.Series([1, 2, 3, 1])) is None  # EC-Lab 'mode' (CC / CV / rest) has no direction


def _arbin_channel_frame(realdata):
    """The real Arbin CSV in the column names of Arbin's Excel exports."""
    import pandas as pd

    raw = pd.read_csv(realdata / "arbin" / "arbin_example.csv")
    return raw, pd.DataFrame({
        "Data_Point": raw["Data_Point"], "Test_Time(s)": raw["Test_Time"],
        "Date_Time": pd.to_datetime(raw["DateTime"], unit="s"), "Step_Index": raw["Step_Index"],
        "Cycle_Index": raw["Cycle_Index"], "Current(A)": raw["Current"], "Voltage(V)": raw["Voltage"],
        "Aux_Temperature(C)_1": raw["Temperature"]})


def test_arbin_xlsx_split_over_sheets_beside_info_and_statistics(realdata, tmp_path):
    """An Arbin Excel export: a Global_Info sheet, the record split over two channel sheets and
    a statistics sheet that also names time, current and voltage. The channel sheets are joined
    and read as the CSV is."""
    import pandas as pd

    raw, channel = _arbin_channel_frame(realdata)
    half = len(channel) // 2
    stats = channel.groupby("Cycle_Index").last().reset_index()
    path = tmp_path / "arbin_export.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as xl:
        pd.DataFrame([["TEST REPORT"], ["Channel", 6], ["Schedule File Name", "4C_cycling.sdx"]]).to_excel(
            xl, sheet_name="Global_Info", header=False, index=False)
        channel.iloc[:half].to_excel(xl, sheet_name="Channel_1-006", index=False)
        channel.iloc[half:].to_excel(xl, sheet_name="Channel_1-006_1", index=False)
        stats.to_excel(xl, sheet_name="Statistics_1-006", index=False)
    assert detect_format(path) == "arbin"
    frame, original = read_cycler(path), read_cycler(realdata / "arbin" / "arbin_example.csv")
    assert frame.attrs["sheets"] == "Channel_1-006, Channel_1-006_1"
    assert len(frame) == len(original)
    np.testing.assert_allclose(frame["current_a"], original["current_a"])  # positive = discharge, as the CSV
    np.testing.assert_allclose(_fade(frame), _fade(original))
    assert frame["temperature_c"].between(25, 40).all()


def test_legacy_xls_takes_the_largest_channel_when_time_restarts(realdata, tmp_path):
    """A legacy .xls (CALCE-style Arbin: Info, channel and statistics sheets) with a second,
    shorter channel whose test time starts again: only the largest channel is read."""
    import xlwt

    raw, channel = _arbin_channel_frame(realdata)
    book = xlwt.Workbook()
    info = book.add_sheet("Info")
    info.write(0, 0, "Test Name")
    info.write(0, 1, "CS2_35")

    def sheet(name, frame):
        ws = book.add_sheet(name)
        for j, column in enumerate(frame.columns):
            ws.write(0, j, column)
        for i, row in enumerate(frame.itertuples(index=False), start=1):
            for j, value in enumerate(row):
                ws.write(i, j, str(value) if j == 2 else float(value))

    sheet("Channel_1-006", channel)
    sheet("Channel_1-007", channel.iloc[:300])
    path = tmp_path / "CS2_35_1_10_11.xls"
    book.save(str(path))
    frame = read_cycler(path)
    assert frame.attrs["sheets"] == "Channel_1-006"
    np.testing.assert_allclose(_fade(frame), _fade(read_cycler(realdata / "arbin" / "arbin_example.csv")))


def test_neware_xlsx_detail_sheet_with_duration_cells(realdata, tmp_path):
    """Neware BTS Excel layout: Info / Cycle / Statis sheets beside the Detail sheet, which has
    'Status' words, unsigned 'Current(mA)', a per-step relative time that resets and an Excel
    duration column ([h]:mm:ss, past 24 h) as the total time."""
    import openpyxl
    import pandas as pd

    original = read_cycler(realdata / "neware" / "nw_regular_export_ife_example.csv")
    words = original["step_type"].map({"discharge": "CC_DChg", "charge": "CCCV_Chg", "rest": "Rest"})
    step_start = original.groupby("step_index")["time_s"].transform("min")
    detail = pd.DataFrame({"Record ID": range(1, len(original) + 1), "Status": words, "Cycle": original["cycle_index"],
                           "Relative Time(h:min:s.ms)": pd.to_timedelta(original["time_s"] - step_start, unit="s"),
                           "Total Time": pd.to_timedelta(original["time_s"], unit="s"),
                           "Current(mA)": 1000 * original["current_a"].abs(), "Voltage(V)": original["voltage_v"]})
    assert original["time_s"].max() > 86400  # the test runs past a day: hours past 24
    path = tmp_path / "neware_detail.xlsx"
    book = openpyxl.Workbook()
    book.active.title = "Cycle"
    book["Cycle"].append(["Cycle", "Cap_DChg(mAh)"])
    book["Cycle"].append([1, 331])
    sheet = book.create_sheet("Detail_67_1_1")  # openpyxl writes timedeltas as [hh]:mm:ss cells, as Excel does
    sheet.append(list(detail.columns))
    for row in detail.itertuples(index=False):
        sheet.append([v.to_pytimedelta() if isinstance(v, pd.Timedelta) else v for v in row])
    book.save(path)
    frame = read_cycler(path)
    assert frame.attrs["sheets"] == "Detail_67_1_1"
    assert "state column 'Status'" in frame.attrs["current_convention"]
    np.testing.assert_allclose(frame["time_s"], original["time_s"], atol=1e-3)
    caps = _fade(frame)
    assert caps.iloc[0] == pytest.approx(0.331, abs=0.003)
    assert caps.iloc[-1] == pytest.approx(0.263, abs=0.003)


def test_utf8_units_and_binary_exports(realdata, tmp_path):
    """A UTF-8 spectrum with 'Ω' and 'mΩ' units reads (Latin-1 decoding garbled them); binary
    exports are refused in one line that says what to export instead; a workbook with no data sheet too."""
    import pandas as pd

    ex = read_spectrum(realdata / "eis_example" / "impedance_example.csv")
    path = tmp_path / "spectrum_utf8.csv"
    table = pd.DataFrame({"Freq/Hz": ex["frequency_hz"], "Re(Z)/mΩ": 1000 * ex["z_real_ohm"], "-Im(Z)/mΩ": -1000 * ex["z_imag_ohm"]})
    path.write_bytes(table.to_csv(index=False).encode("utf-8"))
    np.testing.assert_allclose(read_spectrum(path)["z_real_ohm"], ex["z_real_ohm"])
    np.testing.assert_allclose(read_spectrum(path)["z_imag_ohm"], ex["z_imag_ohm"])
    from pybamm_factory.readers.decode import _decode

    cut = ("a" * 9 + "Ω").encode("utf-8")[:10]  # a first block that ends inside a UTF-8 character
    assert _decode(cut, head=True) == "a" * 9
    mpr = tmp_path / "run.mpr"
    mpr.write_bytes(b"BIO-LOGIC MODULAR FILE\x1a" + bytes(200))
    with pytest.raises(ReaderError, match=r"run.mpr: a binary EC-Lab .mpr file; export it as text"):
        read_cycler(mpr)
    empty = tmp_path / "summary.xlsx"
    pd.DataFrame({"Cycle": [1, 2], "Capacity": [1.0, 0.9]}).to_excel(empty, index=False)
    with pytest.raises(ReaderError, match=r"summary.xlsx: no sheet of the workbook has a header naming time, current and voltage"):
        read_cycler(empty)


def _neware_original(realdata):
    return read_cycler(realdata / "neware" / "nw_regular_export_ife_example.csv")


def test_digatron_units_line_semicolons_and_decimal_commas(realdata, tmp_path):
    """Digatron layout: a units line under the header (V, mA, °C), semicolons, decimal commas,
    DCH / CHA / PAU states and a signed current in mA."""
    import pandas as pd

    original = _neware_original(realdata)
    clock = [f"{int(t // 3600)}:{int(t % 3600 // 60):02d}:{t % 60:05.2f}" for t in original["time_s"]]
    status = original["step_type"].map({"discharge": "DCH", "charge": "CHA", "rest": "PAU"})
    table = pd.DataFrame({"Step": original["step_index"], "Status": status,
                          "Prog Time": clock, "Cycle": original["cycle_index"], "Voltage": original["voltage_v"],
                          "Current": -1000 * original["current_a"], "Temperature": original["temperature_c"]})
    path = tmp_path / "digatron.csv"
    path.write_bytes(("Digatron export;\nProgram;cycling\n" + ";".join(table.columns) + "\n;;;;V;mA;°C\n"
                      + table.to_csv(sep=";", decimal=",", index=False, header=False)).encode("utf-8"))
    frame = read_cycler(path)
    np.testing.assert_allclose(frame["current_a"], original["current_a"], atol=1e-9)  # mA from the units line
    np.testing.assert_allclose(_fade(frame), _fade(original))
    np.testing.assert_allclose(frame["temperature_c"], original["temperature_c"])


def test_basytec_and_novonix_layouts(realdata, tmp_path):
    """Basytec: '~' preamble and header, Time[h], U[V], I[A], Command words, tab-separated.
    Novonix: [Summary] block, Run Time (h), Potential (V), numeric step codes (sign inferred),
    the cell's temperature before the circuit's."""
    import pandas as pd

    original = _neware_original(realdata)
    basytec = pd.DataFrame({"~Time[h]": original["time_s"] / 3600, "DataSet": range(len(original)),
                            "Command": original["step_type"].map({"discharge": "Discharge", "charge": "Charge", "rest": "Pause"}),
                            "U[V]": original["voltage_v"], "I[A]": -original["current_a"], "T1[°C]": original["temperature_c"]})
    b = tmp_path / "basytec.txt"
    b.write_bytes(("~Resultfile from BaSyTest\n~Date: 01.01.2024\n~\n" + basytec.to_csv(sep="\t", index=False)).encode("latin-1"))
    novonix = pd.DataFrame({"Date and Time": (pd.Timestamp("2024-01-01") + pd.to_timedelta(original["time_s"], unit="s")).astype(str),
                            "Cycle Number": original["cycle_index"],
                            "Step Type": original["step_type"].map({"discharge": 2, "charge": 1, "rest": 0}),
                            "Run Time (h)": original["time_s"] / 3600, "Current (A)": -original["current_a"],
                            "Potential (V)": original["voltage_v"], "Temperature (°C)": original["temperature_c"],
                            "Circuit Temperature (°C)": 40.0})
    n = tmp_path / "novonix.csv"
    n.write_text("[Summary]\nCell: x\n[End Summary]\n[Data]\n" + novonix.to_csv(index=False), encoding="utf-8")
    for path in (b, n):
        frame = read_cycler(path)
        np.testing.assert_allclose(frame["current_a"], original["current_a"], atol=1e-9)
        np.testing.assert_allclose(frame["time_s"], original["time_s"], rtol=1e-9, atol=1e-6)
        np.testing.assert_allclose(frame["temperature_c"], original["temperature_c"])
    assert "inferred from data" in read_cycler(n).attrs["current_convention"]


def test_maccor_export_with_test_time_in_hours(realdata, tmp_path):
    import pandas as pd

    text = (realdata / "maccor" / "xTESLADIAG_000038.078").read_bytes().decode("latin-1").splitlines()
    raw = pd.read_csv(realdata / "maccor" / "xTESLADIAG_000038.078", sep="\t", skiprows=1, low_memory=False)
    raw = raw.rename(columns={"Test (Sec)": "Test Time (Hr)"})
    raw["Test Time (Hr)"] = raw["Test Time (Hr)"] / 3600
    path = tmp_path / "maccor_hours.txt"
    path.write_text(text[0] + "\n" + raw.to_csv(sep="\t", index=False))
    frame, original = read_cycler(path), read_cycler(realdata / "maccor" / "xTESLADIAG_000038.078")
    assert frame.attrs["format"] == "maccor"
    np.testing.assert_allclose(frame["time_s"], original["time_s"], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(_fade(frame), _fade(original))


def test_repeated_sweeps_in_one_spectrum_file_are_told_apart(realdata, tmp_path):
    """Two sweeps of the real spectrum in one file without SOC (the second with its arc grown,
    as after aging): two sweep ids, and the second's charge-transfer resistance is larger."""
    import pandas as pd
    from click.testing import CliRunner

    from pybamm_factory.cli import main

    ex = read_spectrum(realdata / "eis_example" / "impedance_example.csv")
    r0 = ex["z_real_ohm"].min()
    aged = ex.assign(z_real_ohm=r0 + 1.5 * (ex["z_real_ohm"] - r0), z_imag_ohm=1.5 * ex["z_imag_ohm"])
    both = pd.concat([ex, aged])[["frequency_hz", "z_real_ohm", "z_imag_ohm"]]
    path = tmp_path / "two_sweeps.csv"
    both.rename(columns={"frequency_hz": "Freq (Hz)", "z_real_ohm": "Z' (ohm)", "z_imag_ohm": "Z'' (ohm)"}).to_csv(path, index=False)
    spectra = read_spectrum(path)
    assert list(spectra["sweep_id"].unique()) == ["two_sweeps-all-sweep1", "two_sweeps-all-sweep2"]
    assert (spectra.groupby("sweep_id").size() == len(ex)).all()
    out = tmp_path / "features.csv"
    assert CliRunner().invoke(main, ["eis-features", str(path), "-o", str(out)]).exit_code == 0
    features = pd.read_csv(out).set_index("sweep_id")
    assert features.loc["two_sweeps-all-sweep2", "r_ct_ohm"] > 1.3 * features.loc["two_sweeps-all-sweep1", "r_ct_ohm"]


# Behaviours of files nobody tuned the readers to (#23): each test rewrites a real file into
# the layout in question and checks the facts of the original survive.

def _rpt_steps(realdata):
    """The real LG M50T reference test (steps 0-9), with its pseudo-OCV part (0.5 A, steps 4-9)
    scaled to 5 mA: a slow step under 1 % of the file's largest current (the 1.5 A charge), as a
    C/20 capacity check sits beside HPPC pulses; rests carry a 0.2 mA cycler offset."""
    import pandas as pd

    raw = pd.read_parquet(realdata / "lgm50t_rpt" / "expt2_2_cellC_25degC_BoL_RPT0_short.parquet")
    raw = raw[raw["Step"] <= 9].copy()
    reference_ah = -np.trapezoid(raw.loc[raw["Step"] == 5, "Current [A]"], raw.loc[raw["Step"] == 5, "Time [s]"]) / 3600
    raw.loc[raw["Step"] >= 4, "Current [A]"] /= 100
    raw.loc[raw["Current [A]"] == 0, "Current [A]"] = -2e-4
    return raw[["Time [s]", "Step", "Current [A]", "Voltage [V]"]], reference_ah / 100


@pytest.mark.parametrize("with_steps", [True, False])
def test_slow_step_beside_a_fast_one_is_a_discharge_not_a_rest(realdata, tmp_path, with_steps):
    table, expected_ah = _rpt_steps(realdata)
    path = tmp_path / "rpt.csv"
    (table if with_steps else table.drop(columns="Step")).to_csv(path, index=False)
    frame = read_cycler(path, current_sign="discharge-negative")  # PyProBE: positive = charge
    slow = frame["current_a"].abs().between(4e-3, 6e-3)
    assert (frame.loc[slow & (frame["current_a"] > 0), "step_type"] == "discharge").all()
    assert (frame.loc[slow & (frame["current_a"] < 0), "step_type"] == "charge").all()
    assert (frame.loc[frame["current_a"].abs() < 1e-3, "step_type"] == "rest").all()  # offsets stay rests
    caps = cycle_capacities(frame)
    assert caps["discharge_capacity_ah"].max() == pytest.approx(expected_ah, rel=0.005)
    assert expected_ah == pytest.approx(0.048, abs=0.001)  # the cell's 4.8 A.h C/10 capacity, scaled


def test_constant_cycle_column_gives_cycles_from_the_steps(realdata, tmp_path):
    from click.testing import CliRunner

    from pybamm_factory.cli import main

    original_path = realdata / "maccor" / "xTESLADIAG_000038.078"
    lines = original_path.read_bytes().decode("latin-1").split("\r\n")
    k = lines[1].split("\t").index("Cyc#")
    rows = [line.split("\t") for line in lines[2:]]
    for row in rows:
        if len(row) > k:
            row[k] = "0"
    path = tmp_path / "cycle_zero.078"
    path.write_bytes("\r\n".join(lines[:2] + ["\t".join(r) for r in rows]).encode("latin-1"))
    frame, original = read_cycler(path), read_cycler(original_path)
    assert any("cycles derived from the steps" in note for note in frame.attrs["notes"])
    derived, measured = _fade(frame), _fade(original)
    np.testing.assert_allclose(derived[derived > 0].to_numpy(), measured[measured > 0].to_numpy(), rtol=1e-9)
    assert original.attrs["notes"] == []  # the file's own cycle column is kept where it counts
    result = CliRunner().invoke(main, ["read", str(path)])
    assert result.exit_code == 0 and "cycles derived from the steps" in result.output
    assert " 1 cycles" not in result.output
    # the file stops 0.6 A.h into its last discharge: that cycle is flagged, not reported as fade
    assert "3.987 -> 3.884 A.h" in result.output and "is partial (the file ends inside it)" in result.output


def test_time_and_voltage_only_with_a_stated_current(realdata, tmp_path):
    import pandas as pd
    import pyarrow.parquet as pq
    from click.testing import CliRunner

    from pybamm_factory.calibrate.curve import Curve
    from pybamm_factory.cli import main

    wmg = pd.read_csv(realdata / "lgm50_wmg" / "LGM50_25C_1C.csv")
    measured_ah = discharge_segments(read_cycler(realdata / "lgm50_wmg" / "LGM50_25C_1C.csv"))[0]["discharged_ah"].iloc[-1]
    discharge = wmg[wmg["current_a"] < -1.0]  # the 1C (5 A) discharge, as a published curve would hold it
    path = tmp_path / "digitised.csv"
    discharge[["time_s", "voltage_v"]].rename(columns={"time_s": "Time (s)", "voltage_v": "Voltage (V)"}).to_csv(path, index=False)
    with pytest.raises(ReaderError, match=r"digitised.csv: time and voltage columns but no current.*--current-a"):
        read_cycler(path, format="csv")
    frame = read_cycler(path, constant_current_a=5.0)
    assert frame.attrs["current_convention"].startswith("stated constant current 5 A (discharge)")
    assert discharge_segments(frame)[0]["discharged_ah"].iloc[-1] == pytest.approx(measured_ah, rel=2e-3)
    from pybamm_factory.calibrate.curve import CalibrationError

    with pytest.raises(CalibrationError, match="digitised.csv: the file records no temperature.*never assumed"):
        Curve.from_file(path, read_options={"constant_current_a": 5.0})
    curve = Curve.from_file(path, read_options={"constant_current_a": 5.0}, temperature_c=25.0)
    assert "assumed: stated constant current 5 A" in curve.source and curve.current_a == 5.0
    assert "temperature stated: 25 degC" in curve.source and curve.mean_temperature_k == pytest.approx(298.15)
    out = tmp_path / "curve.parquet"
    result = CliRunner().invoke(main, ["read", str(path), "--c-rate", "1", "--capacity-ah", "5", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "stated constant current 5 A" in result.output
    assert "stated constant current" in pq.read_schema(out).metadata[b"pybamm_factory.read"].decode()
    assert CliRunner().invoke(main, ["read", str(path), "--c-rate", "1"]).exit_code == 2  # no capacity: usage error


def test_matlab_files_v5_and_v73(realdata, tmp_path):
    import h5py
    import pandas as pd
    import scipy.io

    wmg = pd.read_csv(realdata / "lgm50_wmg" / "LGM50_25C_1C.csv")
    reference = discharge_segments(read_cycler(realdata / "lgm50_wmg" / "LGM50_25C_1C.csv"))[0]
    v5 = tmp_path / "rate_test.mat"
    short = wmg.iloc[:50]  # a second, shorter test in the same file: the longer one is read
    scipy.io.savemat(v5, {"meas": {c: wmg[c].to_numpy() for c in wmg.columns},
                          "check": {c: short[c].to_numpy() for c in short.columns}, "capacity_ah": 5.0})
    v73 = tmp_path / "rate_test_v73.mat"
    with h5py.File(v73, "w", userblock_size=512) as fh:  # MATLAB's -v7.3 layout: HDF5 behind a 512-byte header
        group = fh.create_group("meas")
        for c in wmg.columns:
            group.create_dataset(c, data=wmg[c].to_numpy()[None, :])  # MATLAB stores vectors as 1 x N
    with open(v73, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(124) + b"\x00\x02IM")
    for path in (v5, v73):
        frame = read_cycler(path)
        assert frame.attrs["format"] == "matlab" and "meas." in frame.attrs["sheets"]
        segment = discharge_segments(frame)[0]
        assert segment["discharged_ah"].iloc[-1] == pytest.approx(reference["discharged_ah"].iloc[-1], rel=1e-9)
        assert frame["temperature_c"].notna().all()
    assert "1 other group" in read_cycler(v5).attrs["notes"][0]
    v4 = tmp_path / "old.mat"
    scipy.io.savemat(v4, {"t": wmg["time_s"].to_numpy()}, format="4")
    with pytest.raises(ReaderError, match="old.mat: a .mat file without a MATLAB 5.0 / 7.3 header"):
        read_cycler(v4)
    empty = tmp_path / "settings.mat"
    scipy.io.savemat(empty, {"gain": np.arange(5.0)})
    with pytest.raises(ReaderError, match=r"settings.mat: MATLAB 5 file without time, current and voltage.*found: gain"):
        read_cycler(empty)


def _lgm50lt_sweep(realdata, soc=50):
    import pandas as pd

    table = pd.read_csv(realdata / "lgm50lt_eis" / "LGM50LT_eis_25C.csv")
    return table[table["soc"] == soc].reset_index(drop=True)


@pytest.mark.parametrize("stored", ["z-imag", "minus-z-imag"])
def test_maccor_fra_labels_in_headers_are_not_units(realdata, tmp_path, stored):
    import pandas as pd
    from click.testing import CliRunner

    from pybamm_factory.cli import main

    sweep = _lgm50lt_sweep(realdata)
    sign = 1.0 if stored == "z-imag" else -1.0
    path = tmp_path / "fra.txt"
    pd.DataFrame({"Frequency(Hz)": sweep["frequency_hz"], "Z'(a)": sweep["z_real_ohm"],
                  "Z''(b)": sign * sweep["z_imag_ohm"]}).to_csv(path, sep="\t", index=False)
    spectrum = read_spectrum(path)
    np.testing.assert_allclose(spectrum["z_imag_ohm"], sweep["z_imag_ohm"])
    np.testing.assert_allclose(spectrum["z_real_ohm"], sweep["z_real_ohm"])
    assert ("holds -Z''" in spectrum.attrs["convention"]) == (stored == "minus-z-imag")
    np.testing.assert_allclose(read_spectrum(path, imag_sign=stored)["z_imag_ohm"], sweep["z_imag_ohm"])
    result = CliRunner().invoke(main, ["eis-features", str(path)])
    assert result.exit_code == 0 and "not understood" not in result.output
    # the same options as `read`: a column mapping for headers nobody names, and stated units
    odd = tmp_path / "odd.csv"
    pd.DataFrame({"f": sweep["frequency_hz"] / 1e3, "A": 1e3 * sweep["z_real_ohm"],
                  "B": sign * 1e3 * sweep["z_imag_ohm"]}).to_csv(odd, index=False)
    out = tmp_path / "features.csv"
    args = ["eis-features", str(odd), "--column", "frequency_hz=f", "--column", "z_real_ohm=A", "--column", "z_imag_ohm=B",
            "--frequency-unit", "kHz", "--impedance-unit", "mOhm", "--imag-sign", stored, "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    reference = CliRunner().invoke(main, ["eis-features", str(realdata / "lgm50lt_eis" / "LGM50LT_eis_25C.csv"),
                                          "-o", str(tmp_path / "reference.csv")])
    assert reference.exit_code == 0
    got = pd.read_csv(out).iloc[0]
    want = pd.read_csv(tmp_path / "reference.csv").set_index("soc").loc[0.5]
    for column in ("r_ohm_ohm", "r_ct_ohm", "f_peak_hz"):
        assert got[column] == pytest.approx(want[column], rel=1e-6)
    bad = CliRunner().invoke(main, ["eis-features", str(odd), "--column", "frequency=f"])
    assert bad.exit_code == 2 and "frequency_hz" in bad.output and "Traceback" not in bad.output


def test_wide_spectrum_table_one_row_per_spectrum(realdata, tmp_path):
    """The Zhang et al. coin-cell table (ZImag holds -Im Z), cut to 12 rows of two cells."""
    import pandas as pd
    from click.testing import CliRunner

    from pybamm_factory.cli import main

    table = pd.read_csv(realdata / "zhang2020_eis" / "data_eis_zhang2020.csv")
    cut = pd.concat([table[table["seriesIdx"] == 1].head(6), table[table["seriesIdx"] == 2].head(6)])
    path = tmp_path / "zhang_cut.csv"
    cut.to_csv(path, index=False)
    spectra = read_spectrum(path)
    assert spectra["sweep_id"].nunique() == 12 and len(spectra) == 12 * 60
    assert "holds -Z''" in spectra.attrs["convention"]
    first = spectra[spectra["sweep_id"] == spectra["sweep_id"].iloc[0]]
    np.testing.assert_allclose(first["z_imag_ohm"], -cut.iloc[0][[c for c in cut.columns if c.startswith("ZImag_")]].to_numpy(float))
    assert (first["frequency_hz"].iloc[0], first["frequency_hz"].iloc[-1]) == (2e4, 0.02)
    assert {"seriesIdx", "cycle", "Q", "q"} <= set(spectra.columns)  # the row's own columns ride along
    capacitive = spectra[spectra["frequency_hz"] < 100]
    assert (capacitive["z_imag_ohm"] < 0).mean() > 0.95
    out = tmp_path / "features.csv"
    result = CliRunner().invoke(main, ["eis-features", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    features = pd.read_csv(out)
    assert len(features) == 12 and {"Q", "cycle"} <= set(features.columns)
    real = cut[[c for c in cut.columns if c.startswith("ZReal_")]].to_numpy(float)
    assert (features["r_ohm_ohm"].to_numpy() >= real.min(axis=1)).all()  # the intercept lies on the measured Z' span
    assert (features["r_ohm_ohm"].to_numpy() <= real.max(axis=1)).all() and (features["r_ohm_ohm"] > 0.1).all()


def test_packed_copy_of_the_real_data_matches_the_shared_folder():
    """tests/data/realdata.tar.xz (what a fresh clone tests on) holds ../shared/realdata byte for byte."""
    import hashlib
    import tarfile

    from conftest import REALDATA, REALDATA_ARCHIVE

    if not REALDATA.exists():
        pytest.skip(f"{REALDATA} is not here to compare with; the packed copy is what the tests read")
    with tarfile.open(REALDATA_ARCHIVE) as archive:
        packed = {m.name.removeprefix("realdata/"): hashlib.sha256(archive.extractfile(m).read()).hexdigest()
                  for m in archive.getmembers() if m.isfile()}
    shared = {str(p.relative_to(REALDATA)): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in REALDATA.rglob("*") if p.is_file()}
    assert packed == shared


def test_each_discharge_finds_its_own_rest_voltage():
    # two discharges at the same current that start at the same recorded voltage, after
    # rests at different voltages: the second must get its own rest, not the first's
    import pandas as pd

    from pybamm_factory.calibrate.curve import _rest_voltage
    from pybamm_factory.readers import discharge_segments

    def step(kind, n, current, voltage, index):
        return pd.DataFrame({"current_a": np.full(n, current), "voltage_v": voltage, "step_type": kind,
                             "step_index": index, "temperature_c": np.nan, "cycle_index": 1})

    frame = pd.concat([step("rest", 10, 0.0, np.full(10, 4.10), 1),
                       step("discharge", 100, 1.0, np.linspace(4.0, 3.0, 100), 2),
                       step("rest", 10, 0.0, np.full(10, 3.95), 3),
                       step("discharge", 100, 1.0, np.linspace(4.0, 3.2, 100), 4)], ignore_index=True)
    frame.index = frame.index + 1000  # a frame whose labels are not positions
    frame.insert(0, "time_s", 10.0 * np.arange(len(frame)))
    segments = discharge_segments(frame)
    assert [s.attrs["start_row"] for s in segments] == [10, 120]
    assert [_rest_voltage(frame, s) for s in segments] == [4.10, 3.95]
