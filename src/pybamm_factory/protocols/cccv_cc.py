"""``cccv-cc``: CC-CV charge to the upper voltage, CC discharge to the lower one.

Full-window cycling, the protocol of most ageing campaigns. Factors: ``charge_c_rate``,
``discharge_c_rate`` (and ``rest_soc``, ``rest_h`` with a ``rest`` block). Settings:
``cv_cutoff_c_rate`` (end of the CV hold), ``rest_min`` (after the charge and after the
discharge). The cycle opens with the discharge, so the one after a reference test starts
from where the test left the cell; its discharged charge is the aging capacity that the
fade-step RPT trigger follows.
"""

from __future__ import annotations

from ..design.spec import _number
from .base import CHARGE_CURRENT, RATES, ProtocolKind, c_rate_factor, currents, discharge_steps, rest_block, rest_steps, rest_text, span


class CccvCc(ProtocolKind):
    name = "cccv-cc"
    summary = "CC-CV charge to the upper voltage, CC discharge to the lower voltage (full window)"
    keys = ("charge_c_rate", "discharge_c_rate", "cv_cutoff_c_rate", "rest")
    required = ("charge_c_rate", "discharge_c_rate")

    def parse_own(self, src, fld, spec, factors, settings, limits_v):
        c_rate_factor(src, fld, spec, "charge_c_rate", factors)
        c_rate_factor(src, fld, spec, "discharge_c_rate", factors)
        settings["cv_cutoff_c_rate"] = _number(src, f"{fld}.cv_cutoff_c_rate", spec.get("cv_cutoff_c_rate", 0.05),
                                               positive=True)
        rest_block(src, fld, spec, factors)

    def cycle_steps(self, protocol, values, q_nom_ah, q_ref_ah):
        import pybamm

        i_chg = pybamm.InputParameter(CHARGE_CURRENT)
        upper = protocol.upper_voltage_v
        rest = rest_steps(protocol)
        return (
            *discharge_steps(protocol, values, q_nom_ah, q_ref_ah, 1.0, None),
            *rest,
            pybamm.step.current(-i_chg, termination=f"> {upper} V"),
            pybamm.step.voltage(upper, termination=f"{protocol.settings['cv_cutoff_c_rate'] * q_nom_ah} A"),
            *rest,
        )

    def inputs(self, protocol, values, q_nom_ah):
        return currents(protocol, values, q_nom_ah, RATES)

    def describe(self, protocol):
        f, s = protocol.factors, protocol.settings
        text = (f"CC-CV charge {span(f['charge_c_rate'])} C to {protocol.upper_voltage_v} V "
                f"(CV to C/{1 / s['cv_cutoff_c_rate']:g}), CC discharge {span(f['discharge_c_rate'])} C "
                f"to {protocol.lower_voltage_v} V, {s['rest_min']:g} min rests")
        return text + rest_text(protocol)


KIND = CccvCc()
