"""``multistep-charge``: a fast charge in CC stages, then a CV hold and a CC discharge.

In the style of the fast-charge protocols of Severson et al., Nature Energy 4 (2019) 383
("C1 to SOC1, C2 to 80 % SOC, then 1C CC-CV"): ``stages`` is a list of
``{c_rate, until_soc}`` or ``{c_rate, until_v}``; stage k's C-rate is the factor
``stage<k>_c_rate`` (k from 1). A stage that ends at an SOC lasts the time its C-rate needs
to move that much of the latest RPT capacity (the charge starts from the lower cut-off,
0 %), with the upper voltage as a safety stop; a stage that ends at a voltage stops
there. After the last stage the cell is held at ``upper_voltage_v`` down to
``cv_cutoff_c_rate``, rests, and is discharged at ``discharge_c_rate`` to the lower
cut-off (a factor; the discharged charge is the aging capacity the fade-step trigger
follows).
"""

from __future__ import annotations

from ..design.spec import _check_keys, _fail, _number
from .base import DISCHARGE_CURRENT, ProtocolKind, c_rate_factor, discharge_steps, rest_block, rest_steps, rest_text, span, value

MAX_STAGES = 6


def stage_current(k: int) -> str:
    return f"Charge stage {k} current [A]"


class MultistepCharge(ProtocolKind):
    name = "multistep-charge"
    summary = "CC charge stages switching at SOCs or voltages, CV hold, CC discharge (fast-charge studies)"
    keys = ("stages", "discharge_c_rate", "cv_cutoff_c_rate", "rest")
    required = ("stages", "discharge_c_rate")

    def parse_own(self, src, fld, spec, factors, settings, limits_v):
        stages = spec["stages"]
        if not isinstance(stages, list) or not 1 <= len(stages) <= MAX_STAGES:
            _fail(src, f"{fld}.stages", f"expected a list of 1 to {MAX_STAGES} stages, each {{c_rate, until_soc}} "
                  "or {c_rate, until_v}")
        ends, last_soc, last_v = [], 0.0, 0.0
        for k, stage in enumerate(stages, start=1):
            sf = f"{fld}.stages[{k - 1}]"
            if not isinstance(stage, dict):
                _fail(src, sf, "expected a mapping with 'c_rate' and one of 'until_soc', 'until_v'")
            _check_keys(src, sf, stage, ("c_rate", "until_soc", "until_v"))
            if "c_rate" not in stage:
                _fail(src, f"{sf}.c_rate", "is required")
            if ("until_soc" in stage) == ("until_v" in stage):
                _fail(src, sf, "needs exactly one of 'until_soc' (a fraction) and 'until_v' (volts)")
            c_rate_factor(src, sf, {f"stage{k}_c_rate": stage["c_rate"]}, f"stage{k}_c_rate", factors)
            if "until_soc" in stage:
                if last_v:
                    _fail(src, f"{sf}.until_soc", "an SOC stage cannot follow a voltage stage (the SOC reached at a "
                          "voltage is not known in advance)")
                soc = _number(src, f"{sf}.until_soc", stage["until_soc"])
                if not last_soc < soc <= 1:
                    _fail(src, f"{sf}.until_soc", f"must rise from stage to stage within (0, 1], got {soc} after {last_soc}")
                ends.append(("soc", soc))
                last_soc = soc
            else:
                volts = _number(src, f"{sf}.until_v", stage["until_v"])
                if not last_v < volts <= limits_v[1]:
                    _fail(src, f"{sf}.until_v", f"must rise from stage to stage and not pass upper_voltage_v, got {volts}")
                ends.append(("v", volts))
                last_v = volts
        settings["stage_ends"] = tuple(ends)
        c_rate_factor(src, fld, spec, "discharge_c_rate", factors)
        settings["cv_cutoff_c_rate"] = _number(src, f"{fld}.cv_cutoff_c_rate", spec.get("cv_cutoff_c_rate", 0.05),
                                               positive=True)
        rest_block(src, fld, spec, factors)

    def cycle_steps(self, protocol, values, q_nom_ah, q_ref_ah):
        import pybamm

        upper = protocol.upper_voltage_v
        rest = rest_steps(protocol)
        charge, soc = [], 0.0
        for k, (kind, end) in enumerate(protocol.settings["stage_ends"], start=1):
            current = -pybamm.InputParameter(stage_current(k))
            if kind == "soc":
                c_rate = value(values, protocol, f"stage{k}_c_rate")
                seconds = 3600.0 * (end - soc) * q_ref_ah / (c_rate * q_nom_ah)
                charge.append(pybamm.step.current(current, duration=seconds, termination=f"> {upper} V"))
                soc = end
            else:
                charge.append(pybamm.step.current(current, termination=f"> {end} V"))
        cv = pybamm.step.voltage(upper, termination=f"{protocol.settings['cv_cutoff_c_rate'] * q_nom_ah} A")
        return (*discharge_steps(protocol, values, q_nom_ah, q_ref_ah, 1.0, None), *rest, *charge, cv, *rest)

    def inputs(self, protocol, values, q_nom_ah):
        out = {DISCHARGE_CURRENT: value(values, protocol, "discharge_c_rate") * q_nom_ah}
        for k in range(1, len(protocol.settings["stage_ends"]) + 1):
            out[stage_current(k)] = value(values, protocol, f"stage{k}_c_rate") * q_nom_ah
        return out

    def describe(self, protocol):
        f, s = protocol.factors, protocol.settings
        stages = ", ".join(f"{span(f[f'stage{k}_c_rate'])} C to {'SOC ' if kind == 'soc' else ''}{end:g}"
                           f"{' V' if kind == 'v' else ''}" for k, (kind, end) in enumerate(s["stage_ends"], start=1))
        return (f"multi-stage charge ({stages}), CV at {protocol.upper_voltage_v} V to C/{1 / s['cv_cutoff_c_rate']:g}, "
                f"CC discharge {span(f['discharge_c_rate'])} C to {protocol.lower_voltage_v} V, "
                f"{s['rest_min']:g} min rests") + rest_text(protocol)


KIND = MultistepCharge()
