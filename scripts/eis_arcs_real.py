"""One- or two-arc circuit choice (labels/impedance.py) on every real spectrum in ../shared/realdata.

Runs ``spectrum_features`` on the 9 LG M50LT spectra, the impedance.py example spectrum and
all 1,343 Zhang et al. (2020) coin-cell spectra, and prints per file: spectra, share for
which BIC chose two arcs, median and 90th percentile of the chosen fit's residual, how many
exceed FIT_RESIDUAL_WARN, the median |r0_fit - r_ohm| / r_ohm (fitted series resistance
against the measured high-frequency intercept) and the time per spectrum.

    python scripts/eis_arcs_real.py [--realdata ../shared/realdata]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pybamm_factory.labels import FIT_RESIDUAL_WARN, spectrum_features

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"


def lgm50lt_spectra(root: Path):
    """LG M50LT, 9 SOCs: columns soc, ocv_v, frequency_hz, z_real_ohm, z_imag_ohm."""
    table = pd.read_csv(root / "lgm50lt_eis" / "LGM50LT_eis_25C.csv")
    return [(g["frequency_hz"].to_numpy(), g["z_real_ohm"].to_numpy(), g["z_imag_ohm"].to_numpy())
            for _, g in table.groupby("soc")]


def example_spectra(root: Path):
    """impedance.py's example: headerless frequency (Hz), Z' (ohm), Z'' (ohm)."""
    data = np.loadtxt(root / "eis_example" / "impedance_example.csv", delimiter=",")
    return [(data[:, 0], data[:, 1], data[:, 2])]


def zhang2020_spectra(root: Path, every: int = 1):
    """Zhang et al. 2020: one spectrum per row, ZReal_<f>Hz and ZImag_<f>Hz columns; ZImag
    holds -Im(Z), so it is negated. The exact frequencies are in freq_eis_zhang2020.csv
    (the column names carry them rounded to two significant digits)."""
    table = pd.read_csv(root / "zhang2020_eis" / "data_eis_zhang2020.csv")
    freq = np.loadtxt(root / "zhang2020_eis" / "freq_eis_zhang2020.csv")
    real_cols = [c for c in table.columns if c.startswith("ZReal_")]
    imag_cols = [c for c in table.columns if c.startswith("ZImag_")]
    named = np.array([float(c.removeprefix("ZReal_").removesuffix("Hz")) for c in real_cols])
    if len(freq) != len(real_cols) or not np.allclose(named, freq, rtol=0.05):
        raise ValueError("Zhang 2020: frequency file and column names disagree")
    real, imag = table[real_cols].to_numpy(float), -table[imag_cols].to_numpy(float)
    return [(freq, real[i], imag[i]) for i in range(0, len(table), every)]


def summarise(spectra) -> dict:
    rows, t0 = [], time.perf_counter()
    for f, zr, zi in spectra:
        rows.append(spectrum_features(f, zr, zi))
    per_spectrum_ms = (time.perf_counter() - t0) / len(spectra) * 1000
    feats = pd.DataFrame(rows)
    r0_dev = ((feats["r0_fit_ohm"] - feats["r_ohm_ohm"]).abs() / feats["r_ohm_ohm"])
    return {
        "spectra": len(feats),
        "two_arcs": f"{(feats['circuit_arcs'] == 2).mean():.1%}",
        "no_fit": int((feats["circuit_arcs"] == 0).sum()),
        "residual_p50": f"{feats['fit_residual'].median():.4f}",
        "residual_p90": f"{feats['fit_residual'].quantile(0.9):.4f}",
        f"above_{FIT_RESIDUAL_WARN}": int((feats["fit_residual"] > FIT_RESIDUAL_WARN).sum()),
        "r0_dev_p50": f"{r0_dev.median():.3f}",
        "r0_dev_max": f"{r0_dev.max():.3f}",
        "ms_per_spectrum": f"{per_spectrum_ms:.1f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdata", type=Path, default=REALDATA)
    root = parser.parse_args().realdata
    files = {
        "lgm50lt_eis/LGM50LT_eis_25C.csv": lgm50lt_spectra(root),
        "eis_example/impedance_example.csv": example_spectra(root),
        "zhang2020_eis/data_eis_zhang2020.csv": zhang2020_spectra(root),
    }
    table = pd.DataFrame({name: summarise(spectra) for name, spectra in files.items()}).T
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(table.to_string())
    print(f"\nresidual: RMS |Z_fit - Z| / |Z| of the chosen fit; warn above FIT_RESIDUAL_WARN = {FIT_RESIDUAL_WARN}. "
          "r0_dev: |r0_fit - r_ohm| / r_ohm.")


if __name__ == "__main__":
    main()
