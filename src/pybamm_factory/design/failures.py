"""Rare failures with a controlled prevalence: named scenarios a design can ask for.

A scenario is a physical mechanism the design's own model already expresses, pushed into
a tail: a degradation rate far above the population's (a manufacturing outlier), and,
for plating, the conditions that drive it (the coldest ambient temperature of the design
and the fastest charge its protocol allows). Nothing is added to the model, so the
scenario's cells are solved by the same built model as the others.

``failures:`` in a design gives each scenario the share of cell designs that carry it and
the range of its severity (the factor on the scenario's rate, drawn log-uniform per cell
design)::

    failures:
      plating_knee: {share: 0.01, severity: {low: 10, high: 100}}
      lam_outlier: {share: 0.008}

Assignment (:func:`assign`) is exact and seeded: ``round(share * cell designs)`` cell
designs per scenario, drawn without replacement in the order of ``SCENARIOS``, every
sample of a chosen cell design carrying it (a faulty cell is faulty under every
condition). The manifest gains ``failure_class`` (``none`` or the scenario) and
``failure_severity`` (1 for ``none``); the scenario's parameter column holds the
multiplied value the cell is solved with. Where the fade bends, the labels say it
(``labels.knee_onset_cycle``, from :func:`pybamm_factory.labels.fade.knee`): the
onset is measured on the simulated trajectory, not assumed.

Not offered, because the factory's models cannot express them without new equations: an
internal soft short (a parallel leakage current through every step and rest) and
electrolyte dry-out (porosity and conductivity that fall with age; only SEI pore clogging
is available, as a model option that changes the built model for every cell).
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
    cold_fast_charge: bool  # also run the cell at the design's coldest temperature and fastest charge
    description: str
    source: str


SCENARIOS: dict[str, Scenario] = {
    "plating_knee": Scenario(
        "Lithium plating kinetic rate constant [m.s-1]", (10.0, 100.0), True,
        "lithium plating under cold fast charge with a plating rate far above the population's: plated lithium "
        "accumulates and the fade bends into a knee",
        "cold fast charging plates lithium (field notes; O'Kane et al. 2022); severity range assumed"),
    "lam_outlier": Scenario(
        "Positive electrode LAM constant proportional term [s-1]", (5.0, 20.0), False,
        "a manufacturing outlier whose positive electrode loses active material 5-20 times faster than its peers",
        "one of 124 cells faded about ten times faster than the rest (Severson et al. 2019)"),
}


@dataclass(frozen=True)
class FailureRequest:
    scenario: str
    share: float  # of cell designs
    severity_low: float
    severity_high: float


def assign(manifest: pd.DataFrame, failures: tuple[FailureRequest, ...], temperatures_k, fastest_charge: dict,
           seed: int) -> pd.DataFrame:
    """The manifest with ``failure_class`` and ``failure_severity`` columns and each failing
    cell's scenario applied (its rate multiplied; for plating, its conditions set to the
    coldest temperature and the fastest charge of its protocol, ``fastest_charge``:
    protocol_id -> C-rate). A separate random stream: the other columns are unchanged."""
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
            if scenario.cold_fast_charge:
                out.loc[rows, "ambient_temperature_k"] = float(min(temperatures_k))
                out.loc[rows, "charge_c_rate"] = out.loc[rows, "protocol_id"].map(fastest_charge).astype(float)
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
