"""PyBaMM parameters and models as the factory names and builds them: one owner.

The design validator, the simulation and the calibration all ask here:

- **Names.** A parameter is named as in PyBaMM, with its unit. ``"<name> (factor)"`` is a
  multiplier on a parameter (which may be a function of state); ``"<name> (activation
  energy)"`` [J.mol-1] replaces a function's own temperature dependence by an Arrhenius
  term (only for the functions PyBaMM calls with the temperature last: particle
  diffusivities, electrode exchange-current densities, electrolyte conductivity and
  diffusivity); ``"<OCP name> (voltage spread)"`` [V] replaces an electrode's open-circuit
  potential by that of a population of particles whose equilibrium potentials spread
  normally by this standard deviation (fixed only: it is tabulated when the model is
  built). :func:`input_name_problem` says why a name cannot be a solver input.
- **Values.** :func:`parameter_values` is PyBaMM's set plus the factory's own parameters
  (:data:`FACTORY_PARAMETERS`); :func:`physical_ceiling` is the largest physical value of
  a bounded parameter.
- **Models.** :func:`make_model` builds the SPMe or DFN from YAML-style options
  (:func:`model_options_for_pybamm`).

PyBaMM is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import re

FRACTION = re.compile(r"(volume fraction|porosity)$")
INITIAL_CONCENTRATION = re.compile(r"^Initial concentration in (negative|positive) electrode \[mol\.m-3\]$")

# "<parameter> (factor)" varies a multiplier on a parameter, which may be a function of state
FACTOR_SUFFIX = " (factor)"
# "<parameter> (activation energy)" [J.mol-1] replaces a parameter's own temperature dependence
# by an Arrhenius term fitted or varied as a number: only for the functions of state whose last
# argument PyBaMM passes is the temperature (particle diffusivities, electrode exchange-current
# densities, electrolyte conductivity and diffusivity)
ACTIVATION_SUFFIX = " (activation energy)"
ARRHENIUS_TARGET = re.compile(r"^((Primary|Secondary): )?(Negative|Positive) (particle ((de)?lithiation )?diffusivity \[m2\.s-1\]"
                              r"|electrode ((de)?lithiation )?exchange-current density \[A\.m-2\])$"
                              r"|^Electrolyte (conductivity \[S\.m-1\]|diffusivity \[m2\.s-1\])$")

# "<OCP> (voltage spread)" [V]: the electrode's OCP becomes that of a population of particles
# whose equilibrium potentials are spread normally with this standard deviation (see
# simulate/ocp_spread.py); tabulated when the parameter values are built, so fixed only
SPREAD_SUFFIX = " (voltage spread)"
OCP_TARGET = re.compile(r"^((Primary|Secondary): )?(Negative|Positive) electrode ((de)?lithiation )?OCP \[V\]$")
MAX_OCP_SPREAD_V = 0.1
MIN_OCP_SPREAD_V = 5e-4  # 0 or at least this: the tabulation's grid scales as 1 / spread

# Parameters the factory adds to every parameter set (name -> default). PyBaMM's
# stress-driven loss of active material has no temperature dependence of its own; an
# activation energy here scales each electrode's "LAM constant proportional term" by
# exp(Ea / R * (1 / 298.15 K - 1 / T_ambient)), so the term keeps its meaning at 25 degC.
# 0 (the default) leaves the model exactly as PyBaMM builds it.
LAM_ACTIVATION = {
    "Negative electrode LAM activation energy [J.mol-1]": "Negative electrode LAM constant proportional term [s-1]",
    "Positive electrode LAM activation energy [J.mol-1]": "Positive electrode LAM constant proportional term [s-1]",
}
LAM_REFERENCE_TEMPERATURE_K = 298.15
# A break-in of the same loss of active material: the LAM rate of a fresh cell is
# (1 + factor) times its long-run value and the excess decays as exp(-t / time constant),
# t being the cell's time since its first cycle (fresh particles with flaws crack first).
# Factor 0 (the default) leaves the model as PyBaMM builds it.
LAM_BREAK_IN = {
    "Negative electrode LAM break-in factor": "Negative electrode LAM constant proportional term [s-1]",
    "Positive electrode LAM break-in factor": "Positive electrode LAM constant proportional term [s-1]",
}
LAM_BREAK_IN_TIME = "LAM break-in time constant [h]"
FACTORY_PARAMETERS = {**{name: 0.0 for name in LAM_ACTIVATION}, **{name: 0.0 for name in LAM_BREAK_IN},
                      LAM_BREAK_IN_TIME: 100.0}


def parameter_values(name: str):
    """PyBaMM's parameter set ``name`` with the factory's own parameters added."""
    import pybamm

    pv = pybamm.ParameterValues(name)
    pv.update(FACTORY_PARAMETERS, check_already_exists=False)
    return pv


def model_options_for_pybamm(options: dict) -> dict:
    """YAML lists become the tuples PyBaMM expects for per-electrode options."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


def make_model(model: str, options: dict):
    """A PyBaMM SPMe or DFN with the given (YAML-style) options."""
    import pybamm

    cls = pybamm.lithium_ion.SPMe if model == "spme" else pybamm.lithium_ion.DFN
    return cls(model_options_for_pybamm(options))


def factor_target(name: str) -> str | None:
    """The parameter a ``"... (factor)"`` name scales, or None for a plain name."""
    return name[: -len(FACTOR_SUFFIX)] if name.endswith(FACTOR_SUFFIX) else None


def activation_target(name: str) -> str | None:
    """The parameter a ``"... (activation energy)"`` name gives an Arrhenius term, or None."""
    return name[: -len(ACTIVATION_SUFFIX)] if name.endswith(ACTIVATION_SUFFIX) else None


def spread_target(name: str) -> str | None:
    """The OCP a ``"... (voltage spread)"`` name broadens, or None."""
    return name[: -len(SPREAD_SUFFIX)] if name.endswith(SPREAD_SUFFIX) else None


def modified_target(name: str) -> str | None:
    """The parameter a ``(factor)``, ``(activation energy)`` or ``(voltage spread)`` name
    acts on, or None."""
    return factor_target(name) or activation_target(name) or spread_target(name)


def input_name_problem(pv, name: str, parameter_set: str, verb: str = "vary") -> str | None:
    """Why ``name`` cannot be a solver input of ``pv`` (None if it can): the parameter is
    unknown, it is a function of state named without ``" (factor)"``, or an activation
    energy names a parameter that PyBaMM does not call with the temperature."""
    target = modified_target(name) or name
    if target not in pv.keys():
        return f"'{target}' is not a parameter of {parameter_set}"
    if spread_target(name):
        if not OCP_TARGET.search(target):
            return f"'{name}': a voltage spread applies only to an electrode's OCP [V]"
        if verb != "set":
            return (f"'{name}' is tabulated when the model is built and cannot be a solver input; "
                    "give it under fixed:")
    if activation_target(name) and not ARRHENIUS_TARGET.search(target):
        return (f"'{name}': an activation energy applies only to a particle diffusivity, an electrode exchange-current "
                "density or the electrolyte conductivity or diffusivity (functions PyBaMM calls with the temperature)")
    if target == name and callable(pv[name]):
        return (f"'{name}' is a function of state in {parameter_set}; {verb} '{name}{FACTOR_SUFFIX}' "
                "(a multiplier on the function) instead")
    return None


def physical_ceiling(pv, name: str, fixed: dict | None = None, varied=()) -> tuple[float, str] | None:
    """The largest physical value of a parameter that must also be > 0, and why: 1 for a
    volume fraction or porosity, an electrode's maximum concentration (the design's fixed
    one if set) for its initial concentration. None for other parameters, and for an initial
    concentration whose maximum is itself among ``varied``."""
    if FRACTION.search(name):
        return 1.0, "a fraction"
    electrode = INITIAL_CONCENTRATION.match(name)
    if electrode:
        limit = f"Maximum concentration in {electrode[1]} electrode [mol.m-3]"
        c_max = None if limit in varied else (fixed or {}).get(limit, pv[limit])
        if isinstance(c_max, (int, float)):
            return float(c_max), f"the {electrode[1]} electrode's maximum concentration in mol.m-3"
    return None


