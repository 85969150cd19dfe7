"""``soc-window``: partial cycles between two states of charge.

Factors: ``depth_of_discharge`` and ``mean_soc`` (fractions of the latest RPT capacity),
``charge_c_rate``, ``discharge_c_rate`` (and ``rest_soc``, ``rest_h`` with a ``rest``
block; the rest SOC is clipped into the window). Each cycle is a CC charge of
``depth_of_discharge`` from the window's bottom to its top, a rest, a CC discharge back
to the bottom and a rest; after a reference test a CC charge at the charge rate brings the
cell from 0 % to the bottom.

The window is held by coulomb counting against the latest RPT capacity, not by voltage
limits: a voltage under load maps to a different SOC at every rate, temperature and age
(resistance grows), so voltage-held windows shrink and move as the cell ages, and the
depth of discharge a study names would not be the one simulated. Coulomb counting keeps
the depth; the window drifts by the charge that side reactions take between two
reference tests, and each test re-anchors it (as a cycler re-zeroing its counter after a
capacity check would). The protocol's voltage limits stay on as safety stops.
"""

from __future__ import annotations

from ..design.spec import _fail
from .base import (
    CHARGE_CURRENT,
    RATES,
    ProtocolKind,
    c_rate_factor,
    currents,
    discharge_steps,
    fraction_factor,
    rest_block,
    rest_steps,
    rest_text,
    span,
    value,
)


class SocWindow(ProtocolKind):
    name = "soc-window"
    summary = "partial cycles between two SOCs (depth of discharge around a mean SOC), held by coulomb counting"
    keys = ("depth_of_discharge", "mean_soc", "charge_c_rate", "discharge_c_rate", "rest")
    required = ("depth_of_discharge", "mean_soc", "charge_c_rate", "discharge_c_rate")
    measures_capacity = False

    def parse_own(self, src, fld, spec, factors, settings, limits_v):
        dod = fraction_factor(src, fld, spec, "depth_of_discharge", factors)
        mean = fraction_factor(src, fld, spec, "mean_soc", factors)
        if dod.low <= 0:
            _fail(src, f"{fld}.depth_of_discharge", f"must be > 0, got low {dod.low:g}")
        if mean.low - dod.high / 2 < -1e-9 or mean.high + dod.high / 2 > 1 + 1e-9:
            _fail(src, fld, f"impossible window: mean_soc [{mean.low:g}, {mean.high:g}] +/- half of depth_of_discharge "
                  f"(up to {dod.high:g}) leaves [0, 1]; narrow mean_soc to [{dod.high / 2:g}, {1 - dod.high / 2:g}]")
        c_rate_factor(src, fld, spec, "charge_c_rate", factors)
        c_rate_factor(src, fld, spec, "discharge_c_rate", factors)
        rest_block(src, fld, spec, factors)

    @staticmethod
    def window(protocol, values) -> tuple[float, float]:
        dod, mean = value(values, protocol, "depth_of_discharge"), value(values, protocol, "mean_soc")
        return max(mean - dod / 2, 0.0), min(mean + dod / 2, 1.0)

    def lead_in_steps(self, protocol, values, q_nom_ah, q_ref_ah):
        import pybamm

        bottom, _ = self.window(protocol, values)
        if bottom <= 0:
            return ()
        c_chg = value(values, protocol, "charge_c_rate")
        return (pybamm.step.current(-pybamm.InputParameter(CHARGE_CURRENT),
                                    duration=3600.0 * bottom * q_ref_ah / (c_chg * q_nom_ah),
                                    termination=f"> {protocol.upper_voltage_v} V"),)

    def cycle_steps(self, protocol, values, q_nom_ah, q_ref_ah):
        import pybamm

        bottom, top = self.window(protocol, values)
        c_chg = value(values, protocol, "charge_c_rate")
        rest = rest_steps(protocol)
        charge = pybamm.step.current(-pybamm.InputParameter(CHARGE_CURRENT),
                                     duration=3600.0 * (top - bottom) * q_ref_ah / (c_chg * q_nom_ah),
                                     termination=f"> {protocol.upper_voltage_v} V")
        return (charge, *rest, *discharge_steps(protocol, values, q_nom_ah, q_ref_ah, top, bottom), *rest)

    def inputs(self, protocol, values, q_nom_ah):
        return currents(protocol, values, q_nom_ah, RATES)

    def describe(self, protocol):
        f, s = protocol.factors, protocol.settings
        return (f"partial cycles of depth {span(f['depth_of_discharge'])} around mean SOC {span(f['mean_soc'])} "
                f"(coulomb counted against the latest RPT capacity, voltage stops {protocol.lower_voltage_v}-"
                f"{protocol.upper_voltage_v} V): CC charge {span(f['charge_c_rate'])} C, CC discharge "
                f"{span(f['discharge_c_rate'])} C, {s['rest_min']:g} min rests") + rest_text(protocol)


KIND = SocWindow()
