"""Which PyBaMM parameters become solver inputs, and how.

A scalar parameter named in a design (or a fit) becomes ``"[input]"``. A name of the
form ``"<parameter> (factor)"`` is a dimensionless multiplier on that parameter, so
parameters that are functions of state (an Arrhenius diffusivity, an exchange-current
density) can be varied or fitted too: the function is kept and its value scaled.
"""

from __future__ import annotations

import pybamm

from ..design.spec import factor_target, input_name_problem


def default_value(pv: pybamm.ParameterValues, name: str) -> float:
    """The parameter set's value of an input (1 for a factor)."""
    return 1.0 if factor_target(name) else float(pv[name])


def is_scalar_input(pv: pybamm.ParameterValues, name: str) -> bool:
    """Whether ``name`` can be an input of a model built from ``pv``."""
    return input_name_problem(pv, name, "the parameter set") is None


def set_inputs(pv: pybamm.ParameterValues, names) -> None:
    """Make each name an input of ``pv`` (in place)."""
    for name in names:
        target = factor_target(name)
        if target is None:
            pv[name] = "[input]"
        else:
            pv[target] = _scaled(pv[target], pybamm.InputParameter(name))


def _scaled(value, factor: pybamm.InputParameter):
    if callable(value):
        return lambda *args: value(*args) * factor
    return pybamm.Scalar(float(value)) * factor
