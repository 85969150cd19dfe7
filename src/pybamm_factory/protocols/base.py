"""What a protocol kind provides, and the YAML checks the kinds share.

A protocol kind turns one ``protocols[i]`` block of a design into PyBaMM steps. It says
which of its keys are *factors* (sampled per sample like a varied parameter: a number or a
distribution, one manifest column each, snake_case with units in the name where there are
units) and which are fixed *settings*, and it builds, for one sample, the steps of one
aging cycle and of the lead-in that takes the cell from the end of a reference test (the
lower cut-off after the slow discharge) to where its cycles start.

Conventions every kind keeps:

- Currents are PyBaMM input parameters (one built model per step type serves every
  sample); durations are plain numbers, which PyBaMM leaves out of a step's identity, so
  a per-sample duration does not rebuild anything.
- C-rates are multiples of the *nominal* capacity; states of charge are fractions of the
  capacity measured by the *latest reference test* (``q_ref_ah``), counted in ampere-hours
  from the end of that test's discharge (0 % SOC). Between reference tests the window is
  held by coulomb counting, so it drifts by the charge side reactions take (the fade
  between two tests at most); every test re-anchors it. Voltage limits stay on every
  current step as a safety stop, and clip the window when they are reached first.
- A rest at a chosen SOC (``rest: {soc, hours}``, both factors) splits the cycle's
  discharge at that SOC in every cycling kind.
"""

from __future__ import annotations

import math

from ..design.spec import Distribution, Protocol, _check_keys, _distribution, _fail, _number

CHARGE_CURRENT = "Charge current [A]"
DISCHARGE_CURRENT = "Discharge current [A]"
RATES = {CHARGE_CURRENT: "charge_c_rate", DISCHARGE_CURRENT: "discharge_c_rate"}  # input -> factor
COMMON_KEYS = ("id", "kind", "upper_voltage_v", "lower_voltage_v", "rest_min")
MAX_C_RATE = 10.0


class ProtocolKind:
    """One way of cycling a cell; subclasses live one per module in this package."""

    name = ""
    summary = ""
    keys: tuple[str, ...] = ()  # the kind's own YAML keys besides COMMON_KEYS
    required: tuple[str, ...] = ()
    # True when each cycle discharges to the lower cut-off, so the cycle's discharged
    # charge tracks capacity (the fade-step RPT trigger needs it)
    measures_capacity = True

    # --- parsing ---------------------------------------------------------------------
    def parse(self, src: str, fld: str, spec: dict, cutoffs: dict) -> Protocol:
        _check_keys(src, fld, spec, COMMON_KEYS + self.keys)
        for req in ("id",) + self.required:
            if req not in spec:
                _fail(src, f"{fld}.{req}", "is required")
        upper = _number(src, f"{fld}.upper_voltage_v", spec.get("upper_voltage_v", cutoffs["upper"]))
        lower = _number(src, f"{fld}.lower_voltage_v", spec.get("lower_voltage_v", cutoffs["lower"]))
        if not lower < upper:
            _fail(src, fld, f"impossible protocol: lower_voltage_v ({lower}) must be < upper_voltage_v ({upper})")
        if upper > cutoffs["upper"] + 1e-9 or lower < cutoffs["lower"] - 1e-9:
            _fail(src, fld, f"impossible protocol: voltage window [{lower}, {upper}] V lies outside the "
                  f"parameter set's cut-offs [{cutoffs['lower']}, {cutoffs['upper']}] V")
        rest = _number(src, f"{fld}.rest_min", spec.get("rest_min", 5.0))
        if rest < 0:
            _fail(src, f"{fld}.rest_min", "must be >= 0")
        factors: dict[str, Distribution] = {}
        settings = {"rest_min": rest}
        self.parse_own(src, fld, spec, factors, settings, (lower, upper))
        return Protocol(str(spec["id"]), self.name, upper, lower, factors, settings)

    def parse_own(self, src: str, fld: str, spec: dict, factors: dict, settings: dict,
                  limits_v: tuple[float, float]) -> None:
        """Validate the kind's own keys into ``factors`` (sampled) and ``settings``;
        ``limits_v`` is the protocol's (lower, upper) voltage."""
        raise NotImplementedError

    # --- building --------------------------------------------------------------------
    def cycle_steps(self, protocol: Protocol, values: dict, q_nom_ah: float, q_ref_ah: float) -> tuple:
        """The steps of one aging cycle for a sample's factor ``values``."""
        raise NotImplementedError

    def lead_in_steps(self, protocol: Protocol, values: dict, q_nom_ah: float, q_ref_ah: float) -> tuple:
        """Steps from the end of a reference test to the start of the first cycle."""
        return ()

    def inputs(self, protocol: Protocol, values: dict, q_nom_ah: float) -> dict:
        """PyBaMM input parameters (currents) for a sample's factor ``values``."""
        raise NotImplementedError

    def describe(self, protocol: Protocol) -> str:
        raise NotImplementedError


# --- shared helpers ---------------------------------------------------------------------

def c_rate_factor(src, fld, spec, key, factors) -> Distribution:
    d = _distribution(src, f"{fld}.{key}", spec[key])
    if d.low <= 0 or d.high > MAX_C_RATE:
        _fail(src, f"{fld}.{key}", f"impossible protocol: C-rates must lie in (0, {MAX_C_RATE:g}], got [{d.low:g}, {d.high:g}]")
    factors[key] = d
    return d


def fraction_factor(src, fld, spec, key, factors, low=0.0, high=1.0, default=None) -> Distribution:
    raw = spec.get(key, default)
    d = _distribution(src, f"{fld}.{key}", raw)
    if d.low < low or d.high > high:
        _fail(src, f"{fld}.{key}", f"must lie in [{low:g}, {high:g}] (a fraction of the latest RPT capacity), "
              f"got [{d.low:g}, {d.high:g}]")
    factors[key] = d
    return d


def rest_block(src, fld, spec, factors) -> None:
    """``rest: {soc, hours}``: a rest at that SOC in every cycle's discharge (factors
    ``rest_soc`` and ``rest_h``)."""
    if "rest" not in spec or spec["rest"] is None:
        return
    block = spec["rest"]
    if not isinstance(block, dict):
        _fail(src, f"{fld}.rest", "expected a mapping with 'soc' and 'hours'")
    _check_keys(src, f"{fld}.rest", block, ("soc", "hours"))
    for key in ("soc", "hours"):
        if key not in block:
            _fail(src, f"{fld}.rest.{key}", "is required")
    fraction_factor(src, f"{fld}.rest", block, "soc", factors)
    factors["rest_soc"] = factors.pop("soc")
    hours = _distribution(src, f"{fld}.rest.hours", block["hours"])
    if hours.low < 0 or hours.high > 24 * 365:
        _fail(src, f"{fld}.rest.hours", f"must lie in [0, 8760] hours, got [{hours.low:g}, {hours.high:g}]")
    factors["rest_h"] = hours


def value(values: dict, protocol: Protocol, key: str) -> float:
    """A factor's value for a sample (the distribution's only value if it is fixed)."""
    given = values.get(key)
    if given is not None and not math.isnan(given):
        return float(given)
    return float(protocol.factors[key].ppf(0.5))


def currents(protocol: Protocol, values: dict, q_nom_ah: float, c_rates: dict[str, str]) -> dict:
    """Input currents [A] from C-rate factors: ``c_rates`` maps input name -> factor."""
    return {name: value(values, protocol, factor) * q_nom_ah for name, factor in c_rates.items()}


def rest_steps(protocol: Protocol) -> tuple:
    import pybamm

    rest_s = protocol.settings["rest_min"] * 60
    return (pybamm.step.rest(rest_s),) if rest_s > 0 else ()


def discharge_steps(protocol: Protocol, values: dict, q_nom_ah: float, q_ref_ah: float,
                    from_soc: float, to_soc: float | None) -> tuple:
    """A CC discharge from ``from_soc`` to ``to_soc`` (None: to the lower cut-off), split
    by the protocol's rest at its SOC where that falls inside the stretch."""
    import pybamm

    i_dis = pybamm.InputParameter(DISCHARGE_CURRENT)
    c_dis = value(values, protocol, "discharge_c_rate")
    cutoff = f"< {protocol.lower_voltage_v} V"
    # charge at the discharge current moves (c_dis * q_nom) A.h per hour
    per_hour_ah = c_dis * q_nom_ah

    def leg(a: float, b: float | None):
        if b is None:
            return pybamm.step.current(i_dis, termination=cutoff)
        return pybamm.step.current(i_dis, duration=3600.0 * (a - b) * q_ref_ah / per_hour_ah, termination=cutoff)

    steps = []
    if "rest_soc" in protocol.factors:
        rest_soc = value(values, protocol, "rest_soc")
        low = 0.0 if to_soc is None else to_soc
        rest_soc = min(max(rest_soc, low), from_soc)
        rest_s = 3600.0 * value(values, protocol, "rest_h")
        if rest_soc < from_soc:  # a rest at the top comes before any discharge
            steps.append(leg(from_soc, rest_soc))
        if rest_s > 0:
            steps.append(pybamm.step.rest(rest_s))
        if to_soc is None or rest_soc > to_soc:  # a rest at the bottom comes after all of it
            steps.append(leg(rest_soc, to_soc))
    else:
        steps.append(leg(from_soc, to_soc))
    return tuple(steps)


def span(d) -> str:
    return f"{d.low:g}" if d.low == d.high else f"{d.low:g}-{d.high:g}"


def rest_text(protocol) -> str:
    f = protocol.factors
    if "rest_soc" not in f:
        return ""
    return f"; a {span(f['rest_h'])} h rest at {span(f['rest_soc'])} SOC in every discharge"
