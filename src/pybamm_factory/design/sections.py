"""One parser per section of a design file, in the order :func:`~.spec.parse_design`
runs them; each takes its section as read from YAML (and what it depends on from the
sections before) and returns the validated value, or fails with one line naming the field.
A section's allowed keys are its dataclass's fields (:func:`~.schema.yaml_keys`).
"""

from __future__ import annotations

import copy
import functools
import json
import re

from ..parameters import (
    LAM_BREAK_IN,
    LAM_BREAK_IN_TIME,
    MAX_OCP_SPREAD_V,
    MIN_OCP_SPREAD_V,
    input_name_problem,
    make_model,
    model_options_for_pybamm,
    modified_target,
    parameter_values,
    physical_ceiling,
    spread_target,
)
from .checks import _bounded, _check_keys, _choice, _distribution, _fail, _first_line, _integer, _mapping, _number, _show
from .schema import (
    CONDITION_SAMPLERS,
    CONTACT_RESISTANCE,
    EIS_FREQUENCY_RANGE_HZ,
    GEOMETRY,
    HOLDOUT_SIDES,
    MAX_CYCLES,
    MAX_MESH_POINTS,
    MAX_MESH_TOTAL,
    MAX_POINTS_PER_DECADE,
    MAX_REST_MIN,
    MAX_RPT_C_RATE,
    MAX_STRATIFY_BINS,
    MESH_KEYS,
    NAME_SLUG,
    PYBAMM_DEFAULT_MESH,
    REQUIRED_KEYS,
    SOLVERS,
    TEMPERATURE_PARAMETERS,
    TOP_LEVEL_KEYS,
    TYPE_WORDS,
    Aging,
    Correlations,
    CycleJump,
    Design,
    DesignError,
    EisSettings,
    ObserveRequest,
    Protocol,
    PulseTest,
    SolverSettings,
    SplitSettings,
    yaml_keys,
)


def _top_level(src, raw) -> None:
    """The whole file: a mapping of known keys, the required ones present, each of its YAML
    type; the mappings of PyBaMM names keyed by text."""
    if not isinstance(raw, dict):
        raise DesignError(f"{src}: the design must be a YAML mapping at the top level")
    _check_keys(src, "", raw, yaml_keys(Design))
    for key in REQUIRED_KEYS:
        if key not in raw:
            _fail(src, key, "is required")
    for key, typ in TOP_LEVEL_KEYS.items():
        if key in raw and (not isinstance(raw[key], typ) or (typ is int and isinstance(raw[key], bool))):
            _fail(src, key, f"expected {TYPE_WORDS[typ]}, got {_show(raw[key])}")
    for key in ("model_options", "fixed", "varied"):
        _mapping(src, key, raw.get(key, {}), "PyBaMM names" if key != "model_options" else "PyBaMM option names")


def _name(src, name) -> str:
    if not NAME_SLUG.fullmatch(name):
        _fail(src, "name", f"{_show(name)} is not allowed: the dataset folder is named after it, so it must be "
              "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit (no '/', no '..')")
    return name


# the model: parameter set, model options, mesh

def _parameter_set_info(src, name):
    import pybamm

    if not isinstance(name, str):
        _fail(src, "parameter_set", f"expected the name of a PyBaMM parameter set, got {_show(name)}")
    try:
        pv = parameter_values(name)
    except Exception:
        options = ", ".join(sorted(pybamm.parameter_sets.keys()))
        _fail(src, "parameter_set", f"'{name}' is not a PyBaMM parameter set; allowed: {options}")
    return {
        "values": pv,
        "upper": float(pv["Upper voltage cut-off [V]"]),
        "lower": float(pv["Lower voltage cut-off [V]"]),
    }


def _model_options(src, options, model, eis: bool = True) -> dict:
    """PyBaMM's own check of the options, then the models the runner builds from them
    (the aging model, and the EIS model where EIS is on): an option PyBaMM rejects is one
    line with PyBaMM's reason (its text starts with a blank line) before anything runs."""
    import pybamm

    if not isinstance(options, dict):
        _fail(src, "model_options", "expected a mapping of PyBaMM option names to values")
    for key, value in options.items():
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in items):
            _fail(src, f"model_options.{key}", f"expected text (or a list of two, one per electrode), got {_show(value)}; "
                  "quote yes/no/true/false/numbers")
    try:
        pybamm.BatteryModelOptions(model_options_for_pybamm(options))
    except Exception as exc:  # OptionError, and whatever else an odd value trips
        _fail(src, "model_options", _first_line(exc) or f"PyBaMM rejects these options ({type(exc).__name__})")
    problem = _model_build_problem(model, json.dumps(options, sort_keys=True), eis)
    if problem:
        _fail(src, "model_options", problem)
    return copy.deepcopy(options)


@functools.lru_cache(maxsize=64)
def _model_build_problem(model: str, options_json: str, eis: bool) -> str | None:
    """Why PyBaMM cannot build the runner's models from these options (None if it can);
    about 0.1-0.3 s a model, cached per (model, options)."""
    from ..simulate.eis import DEGRADATION_OPTIONS, EIS_OPTIONS

    options = json.loads(options_json)
    builds = [("", options)]
    if eis:
        eis_options = {k: v for k, v in options.items() if k not in DEGRADATION_OPTIONS}
        builds.append(("the EIS model (eis.enabled: true; set it false to skip EIS): ", {**eis_options, **EIS_OPTIONS}))
    for label, opts in builds:
        try:
            make_model(model, opts)
        except Exception as exc:  # noqa: BLE001 - any failure is the options' fault
            return label + (_first_line(exc) or f"PyBaMM cannot build the {model} model ({type(exc).__name__})")
    return None


def mesh_points(model: str, mesh: dict) -> int:
    """Grid points of the model's mesh: the DFN solves a particle at every electrode
    point, the SPMe one particle per electrode (PyBaMM's default for a missing domain)."""
    n = {k: mesh.get(k, PYBAMM_DEFAULT_MESH) for k in MESH_KEYS}
    electrolyte = n["x_n"] + n["x_s"] + n["x_p"]
    if model == "dfn":
        return electrolyte + n["x_n"] * n["r_n"] + n["x_p"] * n["r_p"]
    return electrolyte + n["r_n"] + n["r_p"]


def _mesh(src, model, mesh) -> dict:
    _check_keys(src, "mesh", mesh, MESH_KEYS)
    for k, v in mesh.items():
        if isinstance(v, bool) or not isinstance(v, int) or not 2 <= v <= MAX_MESH_POINTS:
            _fail(src, f"mesh.{k}", f"expected an integer in 2..{MAX_MESH_POINTS:,} (points per domain; finer meshes "
                  f"cost memory and solve time and change no result), got {_show(v)}")
    total = mesh_points(model, mesh)
    if total > MAX_MESH_TOTAL:
        _fail(src, "mesh", f"the {model} model would have {total:,} grid points, over the limit of {MAX_MESH_TOTAL:,} "
              "(each is a solver state of every sample); coarsen x_n/x_p or r_n/r_p")
    return dict(mesh)


# parameters fixed or varied

def _fixed(src, raw, pv, options) -> dict:
    """``fixed``: parameters of the set given one value each."""
    fixed = raw.get("fixed", {})
    for name, value in fixed.items():
        if name in TEMPERATURE_PARAMETERS:
            _fail(src, f"fixed.{name}", "is set per sample from ambient_temperatures_c (the manifest's "
                  "ambient_temperature_k), so a fixed value would be ignored; list the temperature there")
        if modified_target(name):  # a factor or activation energy on a parameter (see simulate.inputs.apply_fixed)
            problem = input_name_problem(pv, name, raw["parameter_set"], verb="set")
            if problem:
                _fail(src, f"fixed.{name}", problem)
        elif name not in pv.keys():
            _fail(src, f"fixed.{name}", f"'{name}' is not a parameter of {raw['parameter_set']}")
        _number(src, f"fixed.{name}", value)
        if spread_target(name):
            _ocp_spread(src, f"fixed.{name}", value, pv[spread_target(name)])
        _physical_range(src, f"fixed.{name}", name, value, value, pv, raw)
        _lam_break_in(src, f"fixed.{name}", name, value, value, options)
        if name == CONTACT_RESISTANCE and value:
            _contact_resistance_unused(src, f"fixed.{name}", options)
    return dict(fixed)


def _ocp_spread(src, fld, value, ocp) -> None:
    """A voltage spread: 0, or MIN..MAX V, on an OCP a population curve can be made of."""
    from ..simulate.ocp_spread import ocp_shape_problem

    if not (value == 0 or MIN_OCP_SPREAD_V <= value <= MAX_OCP_SPREAD_V):
        _fail(src, fld, f"{value:g} V is outside the allowed 0 or {MIN_OCP_SPREAD_V:g}..{MAX_OCP_SPREAD_V:g} V "
              "(a standard deviation of particle potentials)")
    problem = ocp_shape_problem(ocp) if value else None
    if problem:
        _fail(src, fld, problem)


def _varied(src, raw, pv, options) -> dict:
    """``varied``: parameters (or factors on them) drawn per sample, name -> Distribution."""
    varied = {}
    for name, spec in raw.get("varied", {}).items():
        fld = f"varied.{name}"
        target = modified_target(name) or name
        if target in TEMPERATURE_PARAMETERS:
            _fail(src, fld, "is set per sample from ambient_temperatures_c (the manifest's "
                  "ambient_temperature_k); vary the temperature there")
        problem = input_name_problem(pv, name, raw["parameter_set"])
        if problem:
            _fail(src, fld, problem)
        if target != name and target in raw.get("varied", {}):
            _fail(src, fld, f"'{target}' is varied itself; vary it or its factor, not both")
        if target == CONTACT_RESISTANCE:
            _contact_resistance_unused(src, fld, options)
        if GEOMETRY.search(target):
            _fail(src, fld, "sets the mesh geometry, which PyBaMM cannot take as an input parameter; "
                  "vary an equation parameter (e.g. an active material volume fraction) instead")
        varied[name] = _distribution(src, fld, spec)
        _physical_range(src, fld, name, varied[name].low, varied[name].high, pv, raw)
        _lam_break_in(src, fld, name, varied[name].low, varied[name].high, options)
        if varied[name].low == varied[name].high:
            _fail(src, fld, "empty range: low must be < high")
    return varied


def _physical_range(src, fld, name: str, low: float, high: float, pv, raw: dict) -> None:
    """Refuse values at or below zero or above the parameter's physical ceiling."""
    ceiling = physical_ceiling(pv, name, raw.get("fixed"), raw.get("varied", {}))
    if ceiling is not None and not (0 < low and high <= ceiling[0]):
        _fail(src, fld, f"must lie in (0, {ceiling[0]:g}] ({ceiling[1]}), got [{low:g}, {high:g}]")


def _lam_break_in(src, fld, name: str, low: float, high: float, options: dict) -> None:
    """A LAM break-in factor is >= 0 and needs its electrode's stress-driven LAM; its time
    constant is > 0 (see parameters.LAM_BREAK_IN)."""
    if name == LAM_BREAK_IN_TIME and not low > 0:
        _fail(src, fld, f"must be > 0 h (the time over which a fresh cell's extra LAM rate decays), got {low:g}")
    if name not in LAM_BREAK_IN:
        return
    if low < 0:
        _fail(src, fld, f"must be >= 0 (the extra LAM rate of a fresh cell, as a multiple of the long-run rate), "
              f"got {low:g}")
    option = options.get("loss of active material", "none")
    electrode = 0 if name.startswith("Negative") else 1
    lam = option[electrode] if isinstance(option, list) else option
    if high > 0 and "stress" not in str(lam):
        _fail(src, fld, "has no effect unless model_options 'loss of active material' is stress-driven for this "
              f"electrode (it is '{lam}')")


def _contact_resistance_unused(src, fld, options) -> None:
    if options.get("contact resistance", "false") != "true":
        _fail(src, fld, "has no effect unless model_options sets 'contact resistance': 'true'")


# operating conditions: protocols, temperatures and how they are drawn

def _protocols(src, protocols, pset) -> tuple[Protocol, ...]:
    if not protocols:
        _fail(src, "protocols", "needs at least one protocol")
    protocols = tuple(_protocol(src, i, p, pset) for i, p in enumerate(protocols))
    ids = [p.protocol_id for p in protocols]
    if len(set(ids)) != len(ids):
        _fail(src, "protocols", f"protocol ids must be unique, got {ids}")
    return protocols


def _protocol(src, i, spec, pv) -> Protocol:
    from ..protocols import parse_protocol  # the kinds import design.spec, which imports this module

    if isinstance(spec, dict) and "id" in spec and (not isinstance(spec["id"], str) or not spec["id"].strip()):
        _fail(src, f"protocols[{i}].id", f"expected a name (text; the manifest's protocol_id), got {_show(spec['id'])}")
    return parse_protocol(src, f"protocols[{i}]", spec, pv)


def _ambient_temperatures(src, temps) -> tuple[float, ...]:
    """``ambient_temperatures_c`` in degC, returned in kelvin."""
    if not temps:
        _fail(src, "ambient_temperatures_c", "needs at least one temperature")
    temps_k = []
    for i, t in enumerate(temps):
        t = _number(src, f"ambient_temperatures_c[{i}]", t)
        if not -40 <= t <= 80:
            _fail(src, f"ambient_temperatures_c[{i}]", f"{t:g} degC is outside the allowed -40..80 degC")
        temps_k.append(round(t + 273.15, 6))
    return tuple(temps_k)


def _conditions_sampler(src, value, protocols) -> str:
    conditions_sampler = _choice(src, "conditions_sampler", value, CONDITION_SAMPLERS)
    if conditions_sampler == "factorial":
        for i, p in enumerate(protocols):
            for name, d in p.factors.items():
                if d.kind != "choice" and d.low != d.high:
                    _fail(src, f"protocols[{i}].{name}", "a factorial design needs every factor to be a number or "
                          "'distribution: choice' with its levels")
    return conditions_sampler


def _failures(src, value, varied: dict) -> tuple:
    """``failures: {scenario: {share: F, severity: {low: A, high: B}}}`` (design/failures.py)."""
    from .failures import SCENARIOS, FailureRequest

    value = _mapping(src, "failures", value)
    out = []
    for name, entry in value.items():
        fld = f"failures.{name}"
        if name not in SCENARIOS:
            _fail(src, fld, f"unknown failure scenario; allowed: {', '.join(SCENARIOS)}")
        scenario = SCENARIOS[name]
        entry = _mapping(src, fld, {"share": entry} if isinstance(entry, (int, float)) and not isinstance(entry, bool) else entry)
        _check_keys(src, fld, entry, ("share", "severity"))
        if "share" not in entry:
            _fail(src, f"{fld}.share", "missing: the share of cell designs in this scenario, 0 < share <= 1")
        share = _number(src, f"{fld}.share", entry["share"])
        if not 0 < share <= 1:
            _fail(src, f"{fld}.share", f"expected 0 < share <= 1 (of the cell designs), got {share:g}")
        severity = _mapping(src, f"{fld}.severity", entry.get("severity", {"low": scenario.severity[0], "high": scenario.severity[1]}))
        _check_keys(src, f"{fld}.severity", severity, ("low", "high"))
        low = _number(src, f"{fld}.severity.low", severity.get("low", scenario.severity[0]))
        high = _number(src, f"{fld}.severity.high", severity.get("high", scenario.severity[1]))
        if not 1 <= low <= high:
            _fail(src, f"{fld}.severity", f"expected 1 <= low <= high (a factor on {scenario.parameter}), got {low:g}..{high:g}")
        if scenario.parameter not in varied:
            _fail(src, fld, f"needs '{scenario.parameter}' among varied (the built model must take it as an input)")
        out.append(FailureRequest(name, share, low, high))
    if sum(r.share for r in out) > 1 + 1e-12:
        _fail(src, "failures", f"the shares add up to {sum(r.share for r in out):g}; at most 1")
    return tuple(out)


def _observe(src, value) -> tuple[ObserveRequest, ...]:
    """``observe: [{profile: bms-grade, seed: 1}, ...]``: measured copies written after the
    run; each profile (a packaged name or a file, relative to the design's folder) is
    loaded now, so a bad one is refused before any solve."""
    from ..observe.profiles import load_profile

    if not isinstance(value, list):
        _fail(src, "observe", f"expected a list of {{profile: NAME|FILE, seed: N}}, got {_show(value)}")
    out = []
    for i, entry in enumerate(value):
        fld = f"observe[{i}]"
        if isinstance(entry, str):
            entry = {"profile": entry}
        entry = _mapping(src, fld, entry)
        _check_keys(src, fld, entry, yaml_keys(ObserveRequest))
        if not isinstance(entry.get("profile"), str) or not entry["profile"].strip():
            _fail(src, f"{fld}.profile", f"expected a profile name or file, got {_show(entry.get('profile'))}")
        profile = entry["profile"]
        if profile.endswith((".yaml", ".yml")) and src not in ("", "<design>") and not profile.startswith("/"):
            from pathlib import Path

            profile = str(Path(src).parent / profile)
        try:
            load_profile(profile)
        except Exception as exc:  # noqa: BLE001 - the profile's own one-line error, under this field
            _fail(src, f"{fld}.profile", _first_line(str(exc)))
        out.append(ObserveRequest(profile, _integer(src, f"{fld}.seed", entry.get("seed", 0), 0, 2**32 - 1)))
    return tuple(out)


# aging, its reference tests, impedance, and how samples are drawn, solved and split

def _aging(src, aging_raw, cutoffs: dict, protocols=()) -> Aging:
    _check_keys(src, "aging", aging_raw, yaml_keys(Aging))
    required = yaml_keys(Aging, required_only=True)  # max_cycles, rpt_interval_cycles
    for req in required:
        if req not in aging_raw:
            _fail(src, f"aging.{req}", "is required")
    values = {k: _integer(src, f"aging.{k}", aging_raw[k], 1, MAX_CYCLES) for k in required}
    if values["rpt_interval_cycles"] > values["max_cycles"]:
        _fail(src, "aging.rpt_interval_cycles", "must be <= aging.max_cycles (no reference test would run)")
    if "stop_soh" in aging_raw:
        values["stop_soh"] = _number(src, "aging.stop_soh", aging_raw["stop_soh"])
        if not 0 < values["stop_soh"] < 1:
            _fail(src, "aging.stop_soh", f"must lie in (0, 1), got {values['stop_soh']:g}")
    for k in ("rpt_charge_c_rate", "rpt_discharge_c_rate", "rpt_cv_cutoff_c_rate"):
        if k in aging_raw:
            values[k] = _bounded(src, f"aging.{k}", aging_raw[k], 0, MAX_RPT_C_RATE, " (a C-rate)")
    if "rpt_rest_min" in aging_raw:
        values["rpt_rest_min"] = _bounded(src, "aging.rpt_rest_min", aging_raw["rpt_rest_min"], 0, MAX_REST_MIN,
                                          " minutes")
    values["cycle_jump"] = _cycle_jump(src, aging_raw.get("cycle_jump"))
    values["rpt_pulse"] = _pulse_test(src, aging_raw.get("rpt_pulse"))
    if aging_raw.get("rpt_temperature_c") is not None:
        t_rpt = _number(src, "aging.rpt_temperature_c", aging_raw["rpt_temperature_c"])
        if not -40 <= t_rpt <= 80:
            _fail(src, "aging.rpt_temperature_c", f"{t_rpt:g} degC is outside the allowed -40..80 degC")
        values["rpt_temperature_c"] = t_rpt
    for k in ("rpt_upper_voltage_v", "rpt_lower_voltage_v"):
        if aging_raw.get(k) is not None:
            values[k] = _number(src, f"aging.{k}", aging_raw[k])
            if not cutoffs["lower"] - 1e-9 <= values[k] <= cutoffs["upper"] + 1e-9:
                _fail(src, f"aging.{k}", f"{values[k]:g} V lies outside the parameter set's cut-offs "
                      f"[{cutoffs['lower']}, {cutoffs['upper']}] V")
    for protocol in protocols:  # the window each protocol's RPTs use: the design's bound, else the protocol's
        lower = values.get("rpt_lower_voltage_v", protocol.lower_voltage_v)
        upper = values.get("rpt_upper_voltage_v", protocol.upper_voltage_v)
        if lower >= upper:
            _fail(src, "aging.rpt_lower_voltage_v" if "rpt_lower_voltage_v" in values else "aging.rpt_upper_voltage_v",
                  f"the RPT window of protocol '{protocol.protocol_id}' would be {lower:g}-{upper:g} V: lower must be < upper")
    if aging_raw.get("sample_cpu_limit_s") is not None:
        values["sample_cpu_limit_s"] = _number(src, "aging.sample_cpu_limit_s", aging_raw["sample_cpu_limit_s"],
                                               positive=True)
    if aging_raw.get("rpt_fade_step") is not None:
        step = _number(src, "aging.rpt_fade_step", aging_raw["rpt_fade_step"], positive=True)
        if not step < 0.5:
            _fail(src, "aging.rpt_fade_step", f"must lie in (0, 0.5) (a fraction of the first capacity), got {step:g}")
        values["rpt_fade_step"] = step
    return Aging(**values)


def _cycle_jump(src, spec) -> CycleJump | None:
    """``off`` (or absent): every cycle solved; a mapping: adaptive jumps with its settings."""
    if spec is None or spec is False or spec == "off":
        return None
    if spec is True or spec == "on":
        return CycleJump()
    fld = "aging.cycle_jump"
    if not isinstance(spec, dict):
        _fail(src, fld, f"expected 'off' or a mapping with {', '.join(yaml_keys(CycleJump))}; got {spec!r}")
    _check_keys(src, fld, spec, yaml_keys(CycleJump))
    jump = CycleJump(**spec)
    tol = _number(src, f"{fld}.tolerance", jump.tolerance, positive=True)
    if tol > 1:
        _fail(src, f"{fld}.tolerance", f"must lie in (0, 1] (relative change of a rate over one jump), got {tol}")
    for k, least in (("min_cycles", 2), ("max_cycles", 2), ("exact_cycles", 2)):
        v = getattr(jump, k)
        if isinstance(v, bool) or not isinstance(v, int) or v < least:
            _fail(src, f"{fld}.{k}", f"expected an integer >= {least}, got {v!r}")
    if jump.max_cycles < jump.min_cycles:
        _fail(src, f"{fld}.max_cycles", f"must be >= min_cycles ({jump.min_cycles}), got {jump.max_cycles}")
    return CycleJump(float(tol), jump.min_cycles, jump.max_cycles, jump.exact_cycles)


def _pulse_test(src, spec) -> PulseTest | None:
    if spec is None or spec is False or spec == "off":
        return None
    fld = "aging.rpt_pulse"
    if not isinstance(spec, dict):
        _fail(src, fld, f"expected 'off' or a mapping with {', '.join(yaml_keys(PulseTest))}; got {spec!r}")
    _check_keys(src, fld, spec, yaml_keys(PulseTest))
    defaults = PulseTest()
    socs = spec.get("socs", list(defaults.socs))
    if not isinstance(socs, list) or not socs:
        _fail(src, f"{fld}.socs", "expected a non-empty list of states of charge")
    socs = tuple(_number(src, f"{fld}.socs[{i}]", v) for i, v in enumerate(socs))
    if any(not 0 < v < 1 for v in socs) or list(socs) != sorted(set(socs)):
        _fail(src, f"{fld}.socs", f"must rise strictly within (0, 1), got {list(socs)}")
    c_rate = _number(src, f"{fld}.c_rate", spec.get("c_rate", defaults.c_rate), positive=True)
    if c_rate > 10:
        _fail(src, f"{fld}.c_rate", f"must lie in (0, 10], got {c_rate}")
    rest = _number(src, f"{fld}.rest_min", spec.get("rest_min", defaults.rest_min), positive=True)
    return PulseTest(socs, c_rate, rest)


def _eis(src, eis_raw) -> EisSettings:
    _check_keys(src, "eis", eis_raw, yaml_keys(EisSettings))
    defaults = EisSettings()
    enabled = eis_raw.get("enabled", defaults.enabled)
    if not isinstance(enabled, bool):
        _fail(src, "eis.enabled", f"expected true or false, got {_show(enabled)}")
    socs = eis_raw.get("socs", list(defaults.socs))
    if not isinstance(socs, list) or not socs:
        _fail(src, "eis.socs", f"expected a non-empty list of states of charge in (0, 1), got {_show(socs)}")
    for i, s in enumerate(socs):
        if not 0 < _number(src, f"eis.socs[{i}]", s) < 1:
            _fail(src, f"eis.socs[{i}]", f"state of charge must lie in (0, 1), got {s}")
    lo_hz, hi_hz = EIS_FREQUENCY_RANGE_HZ
    what = " Hz (what impedance analysers measure)"
    f_lo = _bounded(src, "eis.f_min_hz", eis_raw.get("f_min_hz", defaults.f_min_hz), lo_hz, hi_hz, what, low_open=False)
    f_hi = _bounded(src, "eis.f_max_hz", eis_raw.get("f_max_hz", defaults.f_max_hz), lo_hz, hi_hz, what, low_open=False)
    if not f_lo < f_hi:
        _fail(src, "eis.f_min_hz", f"must be < eis.f_max_hz, got {f_lo:g} and {f_hi:g}")
    ppd = _integer(src, "eis.points_per_decade", eis_raw.get("points_per_decade", defaults.points_per_decade),
                   1, MAX_POINTS_PER_DECADE)
    return EisSettings(enabled, tuple(float(s) for s in socs), f_lo, f_hi, ppd)


def _correlations(src, spec, varied: dict, sampler: str) -> Correlations | None:
    """Validate the ``correlations`` block: varied names, a symmetric unit-diagonal
    positive-definite matrix, and a sampler that allows dependent inputs."""
    import numpy as np

    if spec is None:
        return None
    _check_keys(src, "correlations", spec, yaml_keys(Correlations))
    names = spec.get("names")
    if not isinstance(names, list) or len(names) < 2:
        _fail(src, "correlations.names", "expected a list of at least two varied parameter names")
    for name in names:
        if not isinstance(name, str) or name not in varied:
            _fail(src, "correlations.names", f"'{name}' is not under varied; allowed: {', '.join(varied)}")
    if len(set(names)) != len(names):
        _fail(src, "correlations.names", "names must be unique")
    if sampler != "lhs":
        _fail(src, "correlations", f"needs sampler 'lhs'; the '{sampler}' sampler's Sobol indices assume independent inputs")
    rows = spec.get("matrix")
    if not isinstance(rows, list) or len(rows) != len(names) or any(not isinstance(r, list) or len(r) != len(names) for r in rows):
        _fail(src, "correlations.matrix", f"expected a {len(names)} x {len(names)} list of rows, one per name")
    matrix = np.array([[_number(src, f"correlations.matrix[{i}][{j}]", v) for j, v in enumerate(r)] for i, r in enumerate(rows)])
    if not np.allclose(np.diag(matrix), 1.0) or np.abs(matrix).max() > 1 + 1e-12:
        _fail(src, "correlations.matrix", "needs ones on the diagonal and entries in [-1, 1]")
    if not np.allclose(matrix, matrix.T, atol=1e-9):
        _fail(src, "correlations.matrix", "must be symmetric")
    try:
        np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        _fail(src, "correlations.matrix", "is not positive definite, so no joint distribution has it")
    return Correlations(tuple(names), tuple(tuple(float(v) for v in r) for r in matrix), str(spec.get("source", "")))


def _solver(src, solver_raw) -> SolverSettings:
    _check_keys(src, "solver", solver_raw, yaml_keys(SolverSettings))
    solver = SolverSettings(**solver_raw)
    if solver.name not in SOLVERS:
        _fail(src, "solver.name", f"{_show(solver.name)} is not allowed; allowed: {', '.join(SOLVERS)}")
    if not isinstance(solver.compile, bool):
        _fail(src, "solver.compile", f"expected true or false, got {_show(solver.compile)}")
    if solver.compile and solver.name != "IDAKLUSolver":
        _fail(src, "solver.compile", f"only IDAKLUSolver compiles its model; got solver.name {solver.name}")
    rtol = _bounded(src, "solver.rtol", solver.rtol, 0, 0.1, " (a relative tolerance)")
    atol = _bounded(src, "solver.atol", solver.atol, 0, 0.1, " (an absolute tolerance)")
    return SolverSettings(solver.name, rtol, atol, solver.compile)


def split_columns(varied, protocols) -> tuple[list[str], list[str]]:
    """Manifest columns a split may use: (stratify, holdout). Stratification takes any
    condition or varied parameter; a holdout needs a numeric one (not protocol_id)."""
    factors = []
    for p in protocols:
        factors += [n for n in p.factors if n not in factors]
    numeric = list(varied) + factors + ["ambient_temperature_k"]
    return ["protocol_id"] + numeric, numeric


def _splits(src, splits_raw, varied, protocols) -> SplitSettings:
    _check_keys(src, "splits", splits_raw, yaml_keys(SplitSettings))
    values = {k: _number(src, f"splits.{k}", splits_raw[k]) for k in ("train", "val", "test") if k in splits_raw}
    splits = SplitSettings(**{**splits_raw, **values})
    fractions = [splits.train, splits.val, splits.test]
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        _fail(src, "splits", f"train/val/test must be >= 0 and sum to 1, got {fractions}")
    stratify_columns, holdout_columns = split_columns(varied, protocols)
    if splits.stratify is not None and splits.holdout is not None:
        _fail(src, "splits.stratify", "set stratify or holdout, not both (a holdout split ignores stratify)")
    if splits.stratify is not None:
        if not isinstance(splits.stratify, str):
            _fail(src, "splits.stratify", f"expected a manifest column name, optionally 'COLUMN:BINS'; got {_show(splits.stratify)}")
        column, colon, bins = splits.stratify.partition(":")
        if column not in stratify_columns:
            _fail(src, "splits.stratify", f"{_show(column)} is not a manifest column; allowed: {', '.join(stratify_columns)}")
        if colon and not (re.fullmatch(r"[0-9]{1,3}", bins) and 2 <= int(bins) <= MAX_STRATIFY_BINS):
            _fail(src, "splits.stratify", f"bins after ':' must be an integer in 2..{MAX_STRATIFY_BINS}, got {_show(bins)}")
    if splits.holdout is not None:
        if not isinstance(splits.holdout, dict) or "column" not in splits.holdout:
            _fail(src, "splits.holdout", "expected a mapping with 'column', 'side' (high|low) and 'fraction'")
        _check_keys(src, "splits.holdout", splits.holdout, ("column", "side", "fraction"))
        column = splits.holdout["column"]
        if not isinstance(column, str) or column not in holdout_columns:
            _fail(src, "splits.holdout.column", f"{_show(column)} is not a numeric manifest column; "
                  f"allowed: {', '.join(holdout_columns)}")
        side = splits.holdout.get("side", "high")
        if not isinstance(side, str) or side not in HOLDOUT_SIDES:
            _fail(src, "splits.holdout.side", f"{_show(side)} is not allowed; allowed: high, low")
        fraction = _number(src, "splits.holdout.fraction", splits.holdout.get("fraction", 0.2))
        if not 0 < fraction < 1:
            _fail(src, "splits.holdout.fraction", f"must lie in (0, 1), got {fraction:g}")
    return splits
