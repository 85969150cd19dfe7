"""Frequency-domain EIS at each reference test, with the aged state carried over.

PyBaMM's ``EISSimulation`` linearises a surface-form model about a rest state and
solves (i w M - J) x = b at each frequency. It is built once per worker; each aged
state enters as input parameters:

* lithium inventory and stoichiometry: the particle-averaged concentrations of both
  electrodes at the requested state of charge of the RPT discharge become the initial
  (uniform, relaxed) concentrations of the EIS model;
* SEI growth: the x-averaged SEI thickness becomes the (constant) SEI thickness, whose
  film resistance is in series with the reaction;
* loss of active material: the x-averaged active-material volume fractions of both
  electrodes replace the fresh ones;
* porosity: the x-averaged negative-electrode porosity, which SEI growth and plated
  lithium lower where the design turns their porosity change on; through the
  electrolyte's effective conductivity it moves the high-frequency intercept (a constant
  where porosity change is off, as in the default design);
* temperature: the sample's ambient temperature.

The plated-lithium film itself is not carried (the surface-form EIS model has none);
docs/physics.md says so.
"""

from __future__ import annotations

import numpy as np
import pybamm

from ..design.spec import Design
from ..parameters import factor_target, make_model
from .aging import RptSnapshot, base_parameter_values
from .inputs import default_value, is_scalar_input, set_inputs
from .pybamm_adapter import built_model, input_parameter_names, timer_seconds

SEI_THICKNESS = "Initial SEI thickness [m]"
C_NEG = "Initial concentration in negative electrode [mol.m-3]"
C_POS = "Initial concentration in positive electrode [mol.m-3]"
EPS_NEG = "Negative electrode active material volume fraction"
EPS_POS = "Positive electrode active material volume fraction"
T_AMB = "Ambient temperature [K]"
POROSITY_NEG = "Negative electrode porosity"
AGED_STATE_INPUTS = (SEI_THICKNESS, C_NEG, C_POS, EPS_NEG, EPS_POS, T_AMB, POROSITY_NEG)

EIS_OPTIONS = {"surface form": "differential", "SEI": "constant", "SEI film resistance": "distributed"}
DEGRADATION_OPTIONS = ("SEI", "SEI porosity change", "SEI on cracks", "lithium plating",
                       "lithium plating porosity change", "loss of active material",
                       "particle mechanics", "SEI film resistance")


class EisEngine:
    """A built EIS simulation for one design, solved per aged state with inputs."""

    def __init__(self, design: Design):
        self.design = design
        self.frequencies_hz = design.eis.frequencies_hz()
        pv = base_parameter_values(design)
        # the aged state (from the aging run) replaces those inputs, factors on them included
        names = list(AGED_STATE_INPUTS) + [n for n in design.varied
                                           if (factor_target(n) or n) not in AGED_STATE_INPUTS]
        self._defaults = {name: default_value(pv, name) for name in names if is_scalar_input(pv, name)}
        set_inputs(pv, self._defaults)
        options = {k: v for k, v in design.model_options.items() if k not in DEGRADATION_OPTIONS}
        options.update(EIS_OPTIONS)
        model = make_model(design.model, options)
        self.sim = pybamm.EISSimulation(model, parameter_values=pv, var_pts=design.mesh or None)
        self._input_order = None

    def default_inputs(self) -> dict:
        """The parameter set's own values of every EIS input (a fresh cell)."""
        return dict(self._defaults)

    def ensure_built(self, inputs: dict) -> None:
        if self._input_order is None:
            self.sim.build(inputs=inputs)
            used = input_parameter_names(built_model(self.sim))
            self._input_order = [n for n in inputs if n in used]

    def _ordered(self, inputs: dict) -> dict:
        self.ensure_built(inputs)
        return {n: inputs[n] for n in self._input_order}

    def aged_inputs(self, row: dict, snap: RptSnapshot, soc: float) -> dict:
        """EIS inputs for one state of charge of one RPT (soc as a fraction of its capacity)."""
        q = snap.discharged_ah
        target = (1.0 - soc) * q[-1]
        inputs = dict(self._defaults)
        inputs.update({n: float(row[n]) for n in self.design.varied if n in inputs})
        inputs.update({
            SEI_THICKNESS: max(snap.sei_thickness_m, 1e-12),
            C_NEG: float(np.interp(target, q, snap.c_neg_avg)),
            C_POS: float(np.interp(target, q, snap.c_pos_avg)),
            EPS_NEG: snap.eps_am_neg,
            EPS_POS: snap.eps_am_pos,
            T_AMB: float(row["ambient_temperature_k"]),
        })
        if POROSITY_NEG in inputs and np.isfinite(snap.porosity_neg):
            inputs[POROSITY_NEG] = snap.porosity_neg
        return inputs

    def impedance(self, inputs: dict) -> tuple[np.ndarray, float]:
        """Complex impedance (ohm) on the design's frequency grid, and PyBaMM's solve time (s)."""
        solution = self.sim.solve(self.frequencies_hz, inputs=self._ordered(inputs))
        return np.asarray(solution.impedance), timer_seconds(solution.solve_time)


_EIS: dict = {}


def get_eis_engine(design: Design) -> EisEngine:
    if design.content_hash not in _EIS:
        _EIS[design.content_hash] = EisEngine(design)
    return _EIS[design.content_hash]
