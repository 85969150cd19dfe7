"""Rare failures with a controlled prevalence: named scenarios a design can ask for.

A scenario is a physical mechanism the design's own model already expresses, pushed far
into a tail: a degradation rate well above the population's (a manufacturing outlier).
Nothing is added to the model, so the scenario's cells are solved by the same built
model as the others.

``failures:`` in a design gives each scenario the share of cell designs that carry it and
the range of its severity (the factor on the scenario's rate, drawn log-uniform per cell
design)::

    failures:
      lam_outlier: {share: 0.008, severity: {low: 5, high: 20}}
      sei_outlier: {share: 0.01}

Assignment (:func:`assign`) is exact and seeded: ``round(share * cell designs)`` cell
designs per scenario, drawn without replacement in the order of ``SCENARIOS``, every
sample of a chosen cell design carrying it (a faulty cell is faulty under every
condition). The manifest gains ``failure_class`` (``none`` or the scenario) and
``failure_severity`` (1 for ``none``); the scenario's parameter column holds the
multiplied value the cell is solved with. Where the fade bends, the labels say it
(``labels.knee_onset_cycle``, from :func:`pybamm_factory.labels.fade.knee`): the onset
is measured on the simulated trajectory, not assumed.

Tried and not offered (docs/design-format.md has the measurements): a plating-driven knee
under cold fast charge (in the default design's model, 10-40x the plating rate at 10 degC
and 1C plated under 1 mA.h in 60 cycles, 100x gave a negative plated-lithium loss, and a
2.5C or 4C charge at 10 degC failed the solver in the first cycle), an internal soft short
(a leakage current through every step and rest) and electrolyte dry-out (porosity and
conductivity falling with age): neither has an equation in the factory's models, and SEI
pore clogging exists only as a model option, which changes the built model of every cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

NONE = "none"


@dataclass(frozen=True)
class Scenario:
    parameter: str  # the rate the severity multiplies (must be a varied parameter: an input of the built model)
    severity: tuple[float, float]  # default range of the factor
    description: str
    source: str


SCENARIOS: dict[str, Scenario] = {
    "lam_outlier": Scenario(
        "Positive electrode LAM constant proportional term [s-1]", (5.0, 20.0),
        "a manufacturing outlier whose positive electrode loses active material 5-20 times faster than its peers",
        "one of 124 cells faded about ten times faster than the rest (Severson et al. 2019)"),
    "sei_outlier": Scenario(
        "SEI solvent diffusivity [m2.s-1]", (5.0, 50.0),
        "a cell whose SEI passivates poorly (an additive or moisture fault) and loses lithium 5-50 times faster from "
        "the start; the fade stays sub-linear, so no knee is expected",
        "faster SEI growth is the first ageing mechanism of graphite cells (O'Kane et al. 2022); severity range assumed"),
}


@dataclass(frozen=True)
class FailureRequest:
    scenario: str
    share: float  # of cell designs
    severity_low: float
    severity_high: float


def assign(manifest: pd.DataFrame, failures: tuple[FailureRequest, ...], seed: int) -> pd.DataFrame:
    """The manifest with ``failure_class`` and ``failure_severity`` columns and each failing
    cell's rate multiplied by its severity. A separate random stream: the other columns
    are unchanged."""
    out = manifest.copy()
    out["failure_class"] = NONE
    out["failure_severity"] = 1.0
    if not failures:
        return out
    designs = list(dict.fromkeys(out["cell_design_id"]))
    rng = np.random.default_rng([seed, 0xFA11])
    order = [designs[i] for i in rng.permutation(len(designs))]
    taken = 0
    for request in sorted(failures, key=lambda r: list(SCENARIOS).index(r.scenario)):
        count = min(int(round(request.share * len(designs))), len(designs) - taken)
        chosen, taken = order[taken:taken + count], taken + count
        scenario = SCENARIOS[request.scenario]
        for cell in chosen:
            severity = float(math.exp(rng.uniform(math.log(request.severity_low), math.log(request.severity_high))))
            rows = out["cell_design_id"] == cell
            out.loc[rows, "failure_class"] = request.scenario
            out.loc[rows, "failure_severity"] = severity
            out.loc[rows, scenario.parameter] = out.loc[rows, scenario.parameter] * severity
    return out


def prevalence(manifest: pd.DataFrame, failures: tuple[FailureRequest, ...]) -> pd.DataFrame:
    """Per class: the share asked for, and the cell designs and samples that carry it."""
    rows = []
    designs = manifest["cell_design_id"].nunique()
    asked = {r.scenario: r.share for r in failures}
    for name in (NONE, *SCENARIOS):
        if name != NONE and name not in asked:
            continue
        mine = manifest[manifest["failure_class"] == name]
        rows.append({"failure_class": name, "share_asked": asked.get(name, 1 - sum(asked.values())),
                     "cell_designs": mine["cell_design_id"].nunique(), "samples": len(mine),
                     "share_of_cell_designs": mine["cell_design_id"].nunique() / designs if designs else math.nan})
    return pd.DataFrame(rows)
