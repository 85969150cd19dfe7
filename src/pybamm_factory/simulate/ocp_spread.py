"""An electrode's open-circuit potential as that of a population of particles.

A real electrode is many particles whose equilibrium potentials at the same stoichiometry
differ a little (composition, strain, size, local contact). At rest they share one
potential ``V``; a particle whose own curve sits ``e`` higher holds the stoichiometry the
single-particle curve gives at ``V - e``. With ``e`` normal with standard deviation ``s``
the electrode's mean stoichiometry is

    x_bar(V) = E[x(V - e)],   x = the inverse of the parameter set's OCP U(x),

and the population's OCP is the inverse of ``x_bar``. Its incremental capacity dx_bar/dV
is the single curve's convolved with the normal density: a two-phase plateau, whose ICA
peak a single-particle model draws as a spike, becomes a peak of finite height, as it is
measured. ``s = 0`` gives the set's OCP back. The lithium the electrode holds between
two potentials changes; the stoichiometry window 0..1 does not.

The population curve is tabulated once, when the parameter values are built, on 401
stoichiometries (PyBaMM's cubic interpolant); so a spread is a fixed design value, not a
solver input. Beyond the set's own potential range the single particle is full (x = 1)
or empty (x = 0); the convolution runs over 6 standard deviations either side, so the
table ends 6 spreads beyond the set's end potentials (and the cubic interpolant may
wiggle within about 0.005 of x = 0 and 1, outside any window a cell cycles in).

The set's curve must fall with stoichiometry. A tabulated curve (OKane2022's graphite is
a cubic interpolant of measured points) may rise by a few mV in places; it is replaced by
its closest non-increasing curve in the least-squares sense (scikit-learn's isotonic
regression: 2.6 mV at most for that graphite curve), and a curve that needs more than
:data:`MAX_MONOTONE_FIX_V` to become so, rises overall, or is not finite is refused.
"""

from __future__ import annotations

import re

import numpy as np

TABLE_POINTS = 401
MIN_SPREAD_V = 5e-4  # smaller spreads are refused by the design check (the grid below scales as 1 / spread)
MAX_MONOTONE_FIX_V = 0.01
_FINE_POINTS = 4001
_SIGMAS = 6.0
_STEPS_PER_SIGMA = 20


class OcpShapeError(ValueError):
    """An OCP whose population curve cannot be made (see the module docstring)."""


def single_particle_curve(ocp, points: int = _FINE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """The set's OCP evaluated on ``points`` stoichiometries in [0, 1], made strictly
    decreasing (its closest non-increasing curve, less 1e-9 V per unit stoichiometry)."""
    import pybamm
    from sklearn.isotonic import isotonic_regression

    x = np.linspace(0.0, 1.0, points)
    with np.errstate(all="ignore"):  # a log term at x = 0 or 1 is refused below, not warned about
        value = ocp(pybamm.Vector(x)) if callable(ocp) else ocp
        value = value.evaluate() if isinstance(value, pybamm.Symbol) else value
    u = np.broadcast_to(np.asarray(value, dtype=float).ravel(), x.shape).copy()
    if not np.all(np.isfinite(u)):
        raise OcpShapeError("the OCP is not finite on every stoichiometry in [0, 1]")
    if not u[0] > u[-1]:
        raise OcpShapeError(f"the OCP does not fall with stoichiometry ({u[0]:.3f} V at 0, {u[-1]:.3f} V at 1)")
    monotone = isotonic_regression(u, increasing=False)
    worst = float(np.max(np.abs(monotone - u)))
    if worst > MAX_MONOTONE_FIX_V:
        raise OcpShapeError(f"the OCP rises with stoichiometry by {1000 * worst:.1f} mV somewhere; a population "
                            f"curve needs a falling one (at most {1000 * MAX_MONOTONE_FIX_V:g} mV is smoothed away)")
    return x, monotone - 1e-9 * x


def ocp_shape_problem(ocp) -> str | None:
    """Why a population curve cannot be made of ``ocp`` (None if it can)."""
    try:
        single_particle_curve(ocp)
    except OcpShapeError as exc:
        return str(exc)
    return None


def population_curve(x: np.ndarray, u: np.ndarray, spread_v: float,
                     points: int = TABLE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """The population OCP on ``points`` stoichiometries, from a strictly decreasing
    single-particle curve ``u(x)`` and a spread ``spread_v`` [V] (> 0)."""
    step = spread_v / _STEPS_PER_SIGMA
    half = int(_SIGMAS * _STEPS_PER_SIGMA)
    voltage = np.arange(u[-1] - _SIGMAS * spread_v, u[0] + _SIGMAS * spread_v + step, step)
    x_single = np.interp(voltage, u[::-1], x[::-1], left=x[-1], right=x[0])
    offsets = np.arange(-half, half + 1) * step
    weights = np.exp(-0.5 * (offsets / spread_v) ** 2)
    weights /= weights.sum()
    padded = np.concatenate([np.full(half, x[-1]), x_single, np.full(half, x[0])])
    x_mean = np.convolve(padded, weights, mode="valid")  # decreasing in voltage
    x_sorted, first = np.unique(x_mean[::-1], return_index=True)
    v_sorted = voltage[::-1][first]
    grid = np.linspace(x[0], x[-1], points)
    return grid, np.interp(grid, x_sorted, v_sorted)


def population_name(target: str) -> str:
    """A CasADi-safe name for the tabulated population OCP of ``target``."""
    words = re.findall(r"[a-z]+", target.lower().replace("[v]", ""))
    return "_".join(words + ["population"])


def population_ocp(ocp, spread_v: float, name: str):
    """A PyBaMM function of stoichiometry: the population OCP of ``ocp`` (the set's
    function, interpolant or constant) at spread ``spread_v`` [V]; ``ocp`` itself at 0."""
    if spread_v <= 0:
        return ocp
    import pybamm

    grid, table = population_curve(*single_particle_curve(ocp), spread_v)

    def function(sto):
        return pybamm.Interpolant(grid, table, sto, name=name, interpolator="cubic")
    return function
