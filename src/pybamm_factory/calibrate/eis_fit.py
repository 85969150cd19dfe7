"""Fit the factory's EIS model to a measured spectrum of a fresh cell.

The problem: a design's frequency-domain model (:class:`simulate.eis.EisEngine`, the same
one every dataset's spectra come from) at the measured states of charge, with these
parameters free (each fitted as log10 of its value, within bounds):

* ``contact``: ``Contact resistance [Ohm]``, in series (tabs, current collectors, welds):
  the real-axis intercept the electrolyte alone does not reach;
* ``j0_neg`` / ``j0_pos``: factors on each electrode's exchange-current density, the
  width of the charge-transfer arc;
* ``cdl_neg`` / ``cdl_pos``: each electrode's double-layer capacity, the arc's frequency;
* ``sei_resistivity``: ``SEI resistivity [Ohm.m]``, the film in series with the reaction
  (small on a fresh cell; it grows with the SEI, so the fit sets how ageing moves the arc).

The cost: the complex residual (Z_model - Z_measured) / |Z_measured| at every measured
frequency inside ``band_hz`` (default 0.1 Hz - 1 kHz: the intercept, the arc and the
start of the diffusion tail; below 0.1 Hz the solid diffusion dominates and is left to
the voltage calibration). States of charge: the measured ones, each mapped to the
parameter set's stoichiometries (``ParameterValues.set_initial_stoichiometries``).

Optimiser: SciPy's bounded trust-region least squares with a finite-difference Jacobian.
PyBOP's EIS problems build their own model; this fit has to drive the factory's own
EisEngine (the aged-state inputs every dataset uses), so SciPy stays: one residual call
is one EIS solve per SOC.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..design.spec import CONTACT_RESISTANCE, Design, parse_design
from ..errors import FactoryError
from ..learn.features import spectrum_observables

EIS_PARAMETERS = {
    "contact": (CONTACT_RESISTANCE, 1e-5, 0.05, 1e-3),
    "j0_neg": ("Negative electrode exchange-current density [A.m-2] (factor)", 0.05, 200.0, 1.0),
    "j0_pos": ("Positive electrode exchange-current density [A.m-2] (factor)", 0.05, 200.0, 1.0),
    "cdl_neg": ("Negative electrode double-layer capacity [F.m-2]", 0.01, 50.0, 0.2),
    "cdl_pos": ("Positive electrode double-layer capacity [F.m-2]", 0.01, 50.0, 0.2),
    "sei_resistivity": ("SEI resistivity [Ohm.m]", 1e3, 1e8, 2e5),
}
DEFAULT_FIT = ("contact", "j0_neg", "j0_pos", "cdl_neg", "cdl_pos")


class EisFitError(FactoryError, ValueError):
    pass


def eis_design(base: Design, raw: dict, names) -> Design:
    """The base design with contact resistance on and the fitted parameters as inputs."""
    raw = copy.deepcopy(raw)
    raw.setdefault("model_options", {})["contact resistance"] = "true"
    varied = raw.setdefault("varied", {})
    for key in names:
        pname, low, high, _ = EIS_PARAMETERS[key]
        varied[pname] = {"distribution": "log-uniform", "low": low, "high": high}
        raw.get("fixed", {}).pop(pname, None)
    raw["eis"] = dict(raw.get("eis", {}), enabled=True)
    return parse_design(raw, f"{base.name} (EIS fit)")


@dataclass
class EisProblem:
    design: Design
    measured: pd.DataFrame           # soc, frequency_hz, z_real_ohm, z_imag_ohm
    names: tuple[str, ...]
    band_hz: tuple[float, float] = (0.1, 1000.0)
    temperature_k: float = 298.15
    _engine: object = field(default=None, repr=False)
    _states: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        from ..simulate.aging import base_parameter_values
        from ..simulate.eis import C_NEG, C_POS, T_AMB, EisEngine

        lo, hi = self.band_hz
        self.measured = self.measured[(self.measured.frequency_hz >= lo) & (self.measured.frequency_hz <= hi)]
        if self.measured["soc"].isna().any():
            raise EisFitError("the measured spectra need a state of charge (an soc column, % or fraction)")
        socs = sorted(self.measured["soc"].unique())
        frequencies = np.unique(self.measured["frequency_hz"].to_numpy(float))
        self._engine = EisEngine(self.design)
        self._engine.frequencies_hz = frequencies
        pv = base_parameter_values(self.design)
        base = self._engine.default_inputs()
        for soc in socs:
            state = pv.set_initial_stoichiometries(float(soc), inplace=False)
            self._states[soc] = dict(base, **{C_NEG: float(state[C_NEG]), C_POS: float(state[C_POS]),
                                              T_AMB: self.temperature_k})
        self._frequencies = frequencies
        self._targets = {soc: g.set_index("frequency_hz") for soc, g in self.measured.groupby("soc")}

    def x0(self) -> np.ndarray:
        return np.log10([EIS_PARAMETERS[k][3] for k in self.names])

    def bounds(self):
        return (np.log10([EIS_PARAMETERS[k][1] for k in self.names]), np.log10([EIS_PARAMETERS[k][2] for k in self.names]))

    def values(self, x) -> dict:
        return {EIS_PARAMETERS[k][0]: float(10 ** v) for k, v in zip(self.names, x)}

    def spectra(self, x) -> dict:
        """Model spectra per SOC (complex, on the measured frequencies)."""
        out = {}
        for soc, inputs in self._states.items():
            z, _ = self._engine.impedance(dict(inputs, **self.values(x)))
            out[soc] = pd.Series(z, index=self._frequencies)
        return out

    def residuals(self, x) -> np.ndarray:
        res = []
        for soc, z_model in self.spectra(x).items():
            target = self._targets[soc]
            zm = target["z_real_ohm"].to_numpy() + 1j * target["z_imag_ohm"].to_numpy()
            zs = z_model.reindex(target.index).to_numpy()
            rel = (zs - zm) / np.abs(zm)
            res.append(np.concatenate([rel.real, rel.imag]))
        return np.concatenate(res)


@dataclass
class EisFit:
    values: dict
    x: np.ndarray
    initial_rms: float
    final_rms: float
    table: pd.DataFrame          # per SOC: measured, before, after features
    at_bound: list
    evaluations: int
    wall_s: float


def feature_table(problem: EisProblem, spectra_before: dict, spectra_after: dict) -> pd.DataFrame:
    rows = []
    for soc, target in problem._targets.items():
        measured = spectrum_observables(target.index, target["z_real_ohm"], target["z_imag_ohm"])
        row = {"soc": soc}
        for label, feats in (("measured", measured),
                             ("before", spectrum_observables(problem._frequencies, spectra_before[soc].to_numpy().real,
                                                             spectra_before[soc].to_numpy().imag)),
                             ("after", spectrum_observables(problem._frequencies, spectra_after[soc].to_numpy().real,
                                                            spectra_after[soc].to_numpy().imag))):
            row[f"r_ohm_mohm_{label}"] = 1e3 * feats["eis_r_ohm_ohm"]
            row[f"r_ct_mohm_{label}"] = 1e3 * feats["eis_r_ct_ohm"]
            row[f"f_peak_hz_{label}"] = 10 ** feats["eis_log10_f_peak_hz"]
        for feat in ("r_ohm_mohm", "r_ct_mohm", "f_peak_hz"):
            for label in ("before", "after"):
                row[f"{feat}_{label}_error"] = row[f"{feat}_{label}"] / row[f"{feat}_measured"] - 1
        rows.append(row)
    return pd.DataFrame(rows)


def fit_eis(problem: EisProblem, max_evaluations: int = 60) -> EisFit:
    from scipy.optimize import least_squares

    t0 = time.time()
    x0 = problem.x0()
    r0 = problem.residuals(x0)
    lo, hi = problem.bounds()
    result = least_squares(problem.residuals, x0, bounds=(lo, hi), method="trf", diff_step=0.02,
                           max_nfev=max_evaluations, x_scale=1.0)
    before, after = problem.spectra(x0), problem.spectra(result.x)
    at_bound = [k for k, v, a, b in zip(problem.names, result.x, lo, hi) if min(v - a, b - v) < 0.02]
    return EisFit(problem.values(result.x), result.x, float(np.sqrt(np.mean(r0 ** 2))),
                  float(np.sqrt(np.mean(result.fun ** 2))), feature_table(problem, before, after), at_bound,
                  int(result.nfev), time.time() - t0)


# ------------------------------------------------------------------ design, report, figure

def eis_calibrated_raw(raw: dict, fit: EisFit, source: str, spread: float = 0.1) -> dict:
    """The base design with the fitted EIS parameters: contact resistance and double-layer
    capacities fixed (one fresh spectrum of one cell says nothing of their spread), the
    exchange-current factors varied +/- ``spread`` around the fit (a stated cell-to-cell
    spread, not a measured one); a parameter that ran to a bound is marked unidentified."""
    raw = copy.deepcopy(raw)
    raw.setdefault("model_options", {})["contact resistance"] = "true"
    fixed = raw.setdefault("fixed", {})
    varied = raw.setdefault("varied", {})
    by_name = {EIS_PARAMETERS[k][0]: k for k in EIS_PARAMETERS}
    for pname, value in fit.values.items():
        key = by_name[pname]
        note = " UNIDENTIFIED: ran to its bound" if key in fit.at_bound else ""
        if pname.endswith("(factor)"):
            varied[pname] = {"distribution": "uniform", "low": float(f"{value * (1 - spread):.4g}"),
                             "high": float(f"{value * (1 + spread):.4g}"),
                             "source": f"fitted to {source}: {value:.4g}, +/- {100 * spread:g} % stated cell-to-cell "
                                       f"spread{note}"}
        else:
            fixed[pname] = float(f"{value:.4g}")
    return raw


def plot_eis_fit(problem: EisProblem, fit: EisFit, path, socs=(0.2, 0.5, 0.8)):
    import matplotlib

    matplotlib.use("Agg")
    from pathlib import Path

    import matplotlib.pyplot as plt

    have = sorted(problem._targets)
    chosen = [min(have, key=lambda s: abs(s - t)) for t in socs]
    chosen = list(dict.fromkeys(chosen))
    before, after = problem.spectra(problem.x0()), problem.spectra(fit.x)
    fig, axes = plt.subplots(1, len(chosen), figsize=(5 * len(chosen), 4.2), squeeze=False)
    for ax, soc in zip(axes[0], chosen):
        t = problem._targets[soc]
        ax.plot(1e3 * t["z_real_ohm"], -1e3 * t["z_imag_ohm"], "ko", ms=3, label="measured")
        ax.plot(1e3 * before[soc].to_numpy().real, -1e3 * before[soc].to_numpy().imag, "-", color="0.6",
                label="parameter set")
        ax.plot(1e3 * after[soc].to_numpy().real, -1e3 * after[soc].to_numpy().imag, "-", color="C3", label="fitted")
        ax.set_xlabel("Z' / mOhm")
        ax.set_ylabel("-Z'' / mOhm")
        ax.set_title(f"SOC {100 * soc:.0f} %")
        ax.set_aspect("equal", adjustable="datalim")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"EIS fit {problem.band_hz[0]:g}-{problem.band_hz[1]:g} Hz: RMS relative residual "
                 f"{100 * fit.initial_rms:.1f} % -> {100 * fit.final_rms:.1f} %")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
