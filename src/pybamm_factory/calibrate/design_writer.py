"""Write fitted parameter distributions back as a design that ``run`` accepts."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

from ..design.spec import load_design, parse_design  # noqa: E402
from .fit import CalibrationError, Curve, FitResult, VoltageProblem  # noqa: E402

MIN_RELATIVE_STD = 0.002  # a spread narrower than 0.2 % of the value is widened to it
TRUNCATION_SIGMAS = 3.0


def calibrated_design(base: str | Path, fit: FitResult, parameter_set: str, sources: list[str]) -> dict:
    """The base design's YAML with the fitted parameters as truncated normals."""
    design = load_design(base)
    raw = copy.deepcopy(design.raw)
    raw["name"] = f"{design.name}-calibrated"
    raw["description"] = (f"{design.description} Calibrated: {', '.join(fit.names)} fitted with {parameter_set} "
                          f"to {', '.join(sources)}.").strip()
    varied = raw.setdefault("varied", {})
    for name, value, std, (lower, upper) in zip(fit.names, fit.values, fit.spread(), fit.bounds):
        spread = std if math.isfinite(std) and std > MIN_RELATIVE_STD * abs(value) else MIN_RELATIVE_STD * abs(value)
        spread = spread or 1e-6
        # truncated at 3 std, and never outside the range the fit searched (which keeps it physical)
        low = max(value - TRUNCATION_SIGMAS * spread, lower)
        varied[name] = {"distribution": "normal", "mean": float(value), "std": float(spread), "low": float(low),
                        "high": float(min(value + TRUNCATION_SIGMAS * spread, upper)),
                        "source": f"calibrated to {', '.join(sources)} (mean = fit, std = {fit.design_std_source})"}
        raw.get("fixed", {}).pop(name, None)
    parse_design(raw, f"calibrated design from {base}")  # it must load as it will be run
    return raw


def write_design(raw: dict, path: str | Path) -> Path:
    """Write the design YAML; its name is the file's stem, so `--design NAME` finds it."""
    path = Path(path)
    raw = {**raw, "name": path.stem}
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Written by `pybamm-factory calibrate`; distributions centred on the fit.\n"
    path.write_text(header + yaml.safe_dump(raw, sort_keys=False))
    return path


def plot_fit(problem: VoltageProblem, curves: list[Curve], held_out: list[Curve], fit: FitResult, path: Path) -> Path:
    """Measured vs simulated voltage, before and after, one panel per curve."""
    all_curves = list(curves) + list(held_out)
    fig, axes = plt.subplots(1, len(all_curves), figsize=(3.4 * len(all_curves), 3.2), squeeze=False)
    for ax, c in zip(axes[0], all_curves):
        ax.plot(c.discharged_ah, c.voltage_v, "k.", ms=2, label="measured")
        ax.plot(c.discharged_ah, problem.simulate(c, fit.initial), "--", color="tab:red", label="before")
        ax.plot(c.discharged_ah, problem.simulate(c, fit.values), "-", color="tab:blue", label="after")
        tag = " (held out)" if c in held_out else ""
        ax.set_title(f"{c.name}{tag}", fontsize=8)
        ax.set_xlabel("discharged [A.h]")
    axes[0][0].set_ylabel("voltage [V]")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def check_names(names: list[str]) -> None:
    if not names:
        raise CalibrationError("--fit: name at least one PyBaMM parameter to fit")
