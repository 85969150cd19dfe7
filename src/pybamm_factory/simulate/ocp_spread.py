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
or empty (x = 0); the convolution runs over 6 standard deviations either side.
"""

from __future__ import annotations

import re

import numpy as np

TABLE_POINTS = 401
_FINE_POINTS = 4001
_SIGMAS = 6.0
_STEPS_PER_SIGMA = 20


def single_particle_curve(ocp, points: int = _FINE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """The set's OCP evaluated on ``points`` stoichiometries in [0, 1], made strictly
    decreasing (a tabulated curve's small wiggles would make its inverse multi-valued)."""
    import pybamm

    x = np.linspace(0.0, 1.0, points)
    value = ocp(pybamm.Vector(x)) if callable(ocp) else ocp
    value = value.evaluate() if isinstance(value, pybamm.Symbol) else value
    u = np.broadcast_to(np.asarray(value, dtype=float).ravel(), x.shape).copy()
    u = np.minimum.accumulate(u) - 1e-9 * x
    return x, u


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
