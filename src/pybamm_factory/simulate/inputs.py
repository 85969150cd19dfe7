"""Which PyBaMM parameters become solver inputs, and how.

A scalar parameter named in a design (or a fit) becomes ``"[input]"``. A name of the
form ``"<parameter> (factor)"`` is a dimensionless multiplier on that parameter, so
parameters that are functions of state (an Arrhenius diffusivity, an exchange-current
density) can be varied or fitted too: the function is kept and its value scaled.

A name of the form ``"<parameter> (activation energy)"`` [J.mol-1] gives that parameter
a fitted or varied temperature dependence: the set's function evaluated at the reference
temperature (298.15 K, whatever the cell's temperature) times
``exp(E / R * (1 / 298.15 - 1 / T))``. It *replaces* the set's own temperature dependence
(OKane2022's diffusivities and exchange-current densities carry their own Arrhenius terms:
those are evaluated at 298.15 K only). It applies to the parameters PyBaMM calls with the
temperature as their last argument (:data:`~pybamm_factory.parameters.ARRHENIUS_TARGET`):
particle diffusivities ``(sto, T)``, electrode exchange-current densities
``(c_e, c_s_surf, c_s_max, T)``, electrolyte conductivity and diffusivity ``(c_e, T)``. A
factor and an activation energy on the same parameter combine (the factor scales the value
at 298.15 K). Its default (the starting value of a fit) is the set's own
effective activation energy at 298.15 K (:func:`set_activation_energy`), 0 for a constant.
"""

from __future__ import annotations

import math

import numpy as np
import pybamm

from ..parameters import activation_target, factor_target, input_name_problem, modified_target, spread_target
from .ocp_spread import population_name, population_ocp

REFERENCE_TEMPERATURE_K = 298.15
GAS_CONSTANT = pybamm.constants.R.value


def default_value(pv: pybamm.ParameterValues, name: str) -> float:
    """The parameter set's value of an input (1 for a factor, the set's own effective
    activation energy for an activation energy)."""
    if factor_target(name):
        return 1.0
    if activation_target(name):
        return set_activation_energy(pv, activation_target(name))
    return float(pv[name])


def is_scalar_input(pv: pybamm.ParameterValues, name: str) -> bool:
    """Whether ``name`` can be an input of a model built from ``pv``."""
    return input_name_problem(pv, name, "the parameter set") is None


def set_inputs(pv: pybamm.ParameterValues, names) -> None:
    """Make each name an input of ``pv`` (in place)."""
    for name in names:
        if modified_target(name) is None:
            pv[name] = "[input]"
        else:
            _modify(pv, name, pybamm.InputParameter(name))


def apply_fixed(pv: pybamm.ParameterValues, fixed: dict) -> None:
    """A design's ``fixed`` values into ``pv`` (in place): plain names first, then the
    ``(factor)`` and ``(activation energy)`` names on them, as numbers, and last the
    ``(voltage spread)`` of an OCP (:mod:`.ocp_spread`)."""
    pv.update({n: v for n, v in fixed.items() if modified_target(n) is None})
    for name, value in fixed.items():
        if modified_target(name) is not None and not spread_target(name):
            _modify(pv, name, pybamm.Scalar(float(value)))
    for name, value in fixed.items():
        target = spread_target(name)
        if target:
            pv[target] = population_ocp(pv[target], float(value), name=population_name(target))


def _modify(pv: pybamm.ParameterValues, name: str, value: pybamm.Symbol) -> None:
    target = factor_target(name)
    if target is not None:
        pv[target] = _scaled(pv[target], value)
    else:
        target = activation_target(name)
        pv[target] = _arrhenius(pv[target], value)


def _scaled(value, factor: pybamm.Symbol):
    if callable(value):
        return lambda *args: value(*args) * factor
    if isinstance(value, pybamm.Symbol):
        return value * factor
    return pybamm.Scalar(float(value)) * factor


def arrhenius_factor(energy, temperature):
    """``exp(E / R * (1 / 298.15 - 1 / T))`` (numbers or PyBaMM symbols)."""
    exponent = energy / GAS_CONSTANT * (1.0 / REFERENCE_TEMPERATURE_K - 1.0 / temperature)
    return pybamm.exp(exponent) if isinstance(exponent, pybamm.Symbol) else math.exp(exponent)


def _arrhenius(value, energy: pybamm.Symbol):
    """The set's ``value`` (a function whose last argument is the temperature, or a
    constant) at 298.15 K times the Arrhenius factor of ``energy`` at the cell's temperature."""
    def function(*args):
        *state, temperature = args
        if callable(value):
            at_reference = value(*state, REFERENCE_TEMPERATURE_K)
        else:
            at_reference = value if isinstance(value, pybamm.Symbol) else pybamm.Scalar(float(value))
        return at_reference * arrhenius_factor(energy, temperature)
    return function


def _representative_state(pv: pybamm.ParameterValues, target: str) -> list:
    """Arguments (all but the temperature) at which to read a function's temperature
    dependence: half-full particles and the initial electrolyte concentration."""
    c_e = float(pv["Initial concentration in electrolyte [mol.m-3]"])
    if "diffusivity" in target and "particle" in target:
        return [0.5]
    if "exchange-current" in target:
        prefix = target.split(": ")[0] + ": " if ": " in target else ""
        electrode = "negative" if "Negative" in target else "positive"
        c_max = float(pv[f"{prefix}Maximum concentration in {electrode} electrode [mol.m-3]"])
        return [c_e, 0.5 * c_max, c_max]
    return [c_e]


def set_activation_energy(pv: pybamm.ParameterValues, target: str) -> float:
    """The set's own effective activation energy of ``target`` at 298.15 K [J.mol-1]:
    ``-R d ln f / d(1/T)`` between 288.15 and 308.15 K at a representative state (exact for
    an Arrhenius function; 0 for a constant or a function that cannot be evaluated alone)."""
    value = pv[target]
    if not callable(value):
        return 0.0
    state = [pybamm.Scalar(v) for v in _representative_state(pv, target)]

    def log_value(temperature):
        out = value(*state, pybamm.Scalar(temperature))
        # a set's function may read other parameters of the set (ORegan2022's do): process it first
        out = pv.process_symbol(out).evaluate() if isinstance(out, pybamm.Symbol) else out
        return math.log(float(np.asarray(out).squeeze()))

    t1, t2 = REFERENCE_TEMPERATURE_K - 10.0, REFERENCE_TEMPERATURE_K + 10.0
    try:
        slope = (log_value(t2) - log_value(t1)) / (1.0 / t2 - 1.0 / t1)
    except (TypeError, ValueError, ArithmeticError):
        return 0.0
    return float(-GAS_CONSTANT * slope)
