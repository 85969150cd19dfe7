"""``calendar``: storage at an SOC, with reference tests at intervals of days.

Factors: ``storage_soc`` (a fraction of the latest RPT capacity). Settings:
``days_per_cycle`` (default 1): one "cycle" of the manifest, the labels and the cycle
jumps is that many days of open-circuit storage, so ``aging.max_cycles`` and
``aging.rpt_interval_cycles`` count storage periods (with the default, days) and jumps
move the cell forward in time. After each reference test a CC charge at
``charge_c_rate`` (a setting, default 0.5) brings the cell from 0 % to the storage SOC.
The ambient temperature is the storage temperature.
"""

from __future__ import annotations

from ..design.spec import _number
from .base import CHARGE_CURRENT, ProtocolKind, fraction_factor, span, value


class CalendarStorage(ProtocolKind):
    name = "calendar"
    summary = "open-circuit storage at an SOC; one cycle is days_per_cycle days (calendar ageing)"
    keys = ("storage_soc", "days_per_cycle", "charge_c_rate")
    required = ("storage_soc",)
    measures_capacity = False

    def parse_own(self, src, fld, spec, factors, settings, limits_v):
        fraction_factor(src, fld, spec, "storage_soc", factors)
        days = _number(src, f"{fld}.days_per_cycle", spec.get("days_per_cycle", 1.0), positive=True)
        settings["days_per_cycle"] = days
        settings["charge_c_rate"] = _number(src, f"{fld}.charge_c_rate", spec.get("charge_c_rate", 0.5), positive=True)

    def lead_in_steps(self, protocol, values, q_nom_ah, q_ref_ah):
        import pybamm

        soc = value(values, protocol, "storage_soc")
        if soc <= 0:
            return ()
        c_rate = protocol.settings["charge_c_rate"]
        return (pybamm.step.current(-pybamm.InputParameter(CHARGE_CURRENT),
                                    duration=3600.0 * soc * q_ref_ah / (c_rate * q_nom_ah),
                                    termination=f"> {protocol.upper_voltage_v} V"),)

    def cycle_steps(self, protocol, values, q_nom_ah, q_ref_ah):
        import pybamm

        return (pybamm.step.rest(86400.0 * protocol.settings["days_per_cycle"]),)

    def inputs(self, protocol, values, q_nom_ah):
        return {CHARGE_CURRENT: protocol.settings["charge_c_rate"] * q_nom_ah}

    def describe(self, protocol):
        s = protocol.settings
        return (f"storage at SOC {span(protocol.factors['storage_soc'])} (reached by a {s['charge_c_rate']:g} C charge "
                f"after each RPT); one cycle = {s['days_per_cycle']:g} days")


KIND = CalendarStorage()
