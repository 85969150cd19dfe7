"""Adaptive cycle jumps: extrapolate the cycle-end state over many aging cycles.

Between reference tests the aging engine solves a few consecutive aging cycles exactly,
then moves the whole state vector at the end of a cycle (after its last rest, the same
phase of every cycle) forward by dN cycles and goes on solving from there. This module
holds the arithmetic: plain NumPy on cycle-end states, no PyBaMM.

Jump length (the rule of Pistorio, Clerici and Soma, Applied Energy 404 (2026) 126744):
for each degradation measure Y_i (loss of lithium inventory, loss of active material in
each electrode, capacity lost to SEI, all in % of the nominal capacity)

    dN_i = tolerance * |dY_i| / |d2Y_i|

where dY_i is its change per cycle and d2Y_i the change of that per cycle, so the
tolerance is the relative change of the fastest-bending degradation rate allowed over
one jump; dN is the smallest dN_i, bounded by a floor and a ceiling. A measure that could
not move by NEGLIGIBLE_PCT over a ceiling-long jump is left out: its rate is solver
noise, and its second difference would only make the jumps short for nothing.

The curvature d2Y comes from the slope measured before the previous jump and the slope
now, which lie many cycles apart; a second difference of three consecutive cycles is
used only at the start of a stretch (it is dominated by solver noise once the rates are
small). Where a curvature is known the extrapolation is second order:

    y(N + dN) = y(N) + dN * s + dN * (dN + 1) / 2 * c

with s = y(N) - y(N - 1) the slope at N - 1/2 and c its change per cycle. Every linear
invariant of the state that two consecutive cycle ends share (lithium counted over the
particles, the electrolyte and the side-reaction products, for instance) is therefore
kept by a jump; quantities that are products of states (lithium in a particle is its
concentration times its active-material fraction) move by a second-order term, which the
tests measure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# A measure whose rate could not move it by this much (in % of nominal capacity) over
# a ceiling-long jump does not limit the jump.
NEGLIGIBLE_PCT = 1e-3


@dataclass(frozen=True)
class CycleEnd:
    """The state at the end of one exactly solved aging cycle."""

    cycle: int
    time_s: float
    y: np.ndarray  # the model's whole state vector
    measures: np.ndarray  # degradation measures, % of nominal capacity
    capacity_ah: float  # discharge capacity of this cycle's aging discharge (nan if none)


@dataclass(frozen=True)
class Slope:
    """Per-cycle change between two consecutive cycle ends, located at their midpoint."""

    cycle_mid: float
    y: np.ndarray
    measures: np.ndarray
    time_s: float
    capacity_ah: float


@dataclass(frozen=True)
class Curvature:
    y: np.ndarray
    measures: np.ndarray


def slope(before: CycleEnd, after: CycleEnd) -> Slope:
    if after.cycle != before.cycle + 1:
        raise ValueError(f"a slope needs consecutive cycles, got {before.cycle} and {after.cycle}")
    return Slope(
        cycle_mid=before.cycle + 0.5,
        y=after.y - before.y,
        measures=after.measures - before.measures,
        time_s=after.time_s - before.time_s,
        capacity_ah=after.capacity_ah - before.capacity_ah,
    )


def curvature(earlier: Slope | None, later: Slope) -> Curvature | None:
    """Change of the slope per cycle between two slopes (None if they coincide)."""
    if earlier is None or later.cycle_mid <= earlier.cycle_mid:
        return None
    span = later.cycle_mid - earlier.cycle_mid
    return Curvature((later.y - earlier.y) / span, (later.measures - earlier.measures) / span)


def jump_length(now: Slope, curv: Curvature | None, room: float, tolerance: float,
                floor: int, ceiling: int) -> int:
    """Cycles to jump (0: solve on exactly).

    ``room`` is how many cycles the jump may cover without crossing the next reference
    test, a stop criterion or the end of the horizon (already less the exact cycles that
    must follow a jump). Without a curvature estimate the jump is the floor.
    """
    if not math.isfinite(room):
        room = ceiling
    if room < floor:
        return 0
    if curv is None:
        n = float(floor)
    else:
        rate = np.abs(now.measures)
        bend = np.abs(curv.measures)
        active = rate * ceiling > NEGLIGIBLE_PCT
        if not active.any():
            n = float(ceiling)
        else:
            with np.errstate(divide="ignore"):
                per_measure = tolerance * rate[active] / bend[active]
            n = float(np.min(per_measure))
    n = min(max(n, floor), ceiling, room)
    return int(math.floor(n)) if n >= floor else 0


def extrapolate(end: CycleEnd, now: Slope, curv: Curvature | None, cycles: int) -> tuple[np.ndarray, float]:
    """The state vector and time ``cycles`` cycles after ``end``."""
    y = end.y + cycles * now.y
    if curv is not None:
        y = y + 0.5 * cycles * (cycles + 1) * curv.y
    return y, end.time_s + cycles * now.time_s


def keeps_amounts(end: CycleEnd, now: Slope, curv: Curvature | None, cycles: int, blocks, floor: float = 0.5,
                  round_off: float = 1e-6) -> bool:
    """Whether a jump of ``cycles`` leaves every amount that cannot be negative (the state
    slices ``blocks``) at ``floor`` or more of its value now, slope and curvature both
    counted. Entries below ``round_off`` of their block's largest value are round-off and
    left to the clipping after the jump.

    A fast state (reversibly plated lithium, which plates and strips every cycle) has
    slopes and curvatures that are noise; the jump length, set by the degradation
    measures, does not see it, and its curvature term alone can carry it far below zero.
    Clipped back to zero, the lithium the extrapolation moved out of it stays in the
    particles: lithium created (seen: 8 % of the inventory in one 144-cycle jump).
    """
    y, _ = extrapolate(end, now, curv, cycles)
    for block in blocks:
        before, after = end.y[block], y[block]
        if not before.size:
            continue
        significant = before > round_off * np.abs(before).max()
        if (after[significant] < floor * before[significant]).any():
            return False
    return True


def cycles_until(value: float, rate: float, threshold: float) -> float:
    """Cycles until a quantity falling at ``rate`` per cycle reaches ``threshold``
    (infinite if it does not fall)."""
    if not (math.isfinite(value) and math.isfinite(rate) and math.isfinite(threshold)) or rate >= 0:
        return math.inf
    return max(0.0, (value - threshold) / -rate)
