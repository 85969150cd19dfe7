"""Design files: load a YAML design, validate it, and hold it as plain dataclasses.

Every validation failure raises :class:`DesignError` with one line that names the
file, the field and what is allowed, so the CLI can print it without a traceback.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

MODELS = ("spme", "dfn")
SAMPLERS = ("lhs", "sobol")
DISTRIBUTIONS = ("uniform", "log-uniform", "normal", "choice")
SOLVERS = ("IDAKLUSolver", "CasadiSolver")
MESH_KEYS = ("x_n", "x_s", "x_p", "r_n", "r_p")
# parameters that set the mesh geometry: PyBaMM cannot take them as input parameters
GEOMETRY = re.compile(r"(electrode|separator) thickness \[m\]$|particle radius \[m\]$|^Electrode (height|width) \[m\]$")
HOLDOUT_SIDES = ("high", "low")
FRACTION = re.compile(r"(volume fraction|porosity)$")
INITIAL_CONCENTRATION = re.compile(r"^Initial concentration in (negative|positive) electrode \[mol\.m-3\]$")
CONTACT_RESISTANCE = "Contact resistance [Ohm]"  # used by PyBaMM only with the model option of that name
# "<parameter> (factor)" varies a multiplier on a parameter, which may be a function of state
FACTOR_SUFFIX = " (factor)"

TOP_LEVEL_KEYS = {
    "name": str,
    "description": str,
    "model": str,
    "parameter_set": str,
    "parameter_set_source": str,
    "model_options": dict,
    "mesh": dict,
    "fixed": dict,
    "varied": dict,
    "protocols": list,
    "ambient_temperatures_c": list,
    "conditions_per_cell_design": int,
    "aging": dict,
    "eis": dict,
    "sampler": str,
    "solver": dict,
    "splits": dict,
    "correlations": dict,
    "license": str,
    "conditions_sampler": str,
}
CONDITION_SAMPLERS = ("lhs", "factorial")
# A design's name becomes a folder name under datasets/: a slug, never a path.
NAME_SLUG = re.compile(r"(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
REQUIRED_KEYS = ("name", "model", "parameter_set", "protocols", "ambient_temperatures_c", "aging")


class DesignError(ValueError):
    """A design file is malformed; the message is one line naming file and field."""


@dataclass(frozen=True)
class Distribution:
    """A sampling distribution for one scalar quantity."""

    kind: str
    low: float
    high: float
    mean: float | None = None
    std: float | None = None
    source: str = ""
    values: tuple[float, ...] = ()  # the levels of a "choice" (equally likely)

    def ppf(self, u):
        """Map uniform [0, 1) numbers to this distribution (inverse CDF)."""
        import numpy as np
        from scipy import stats

        u = np.asarray(u, dtype=float)
        if self.kind == "choice":
            levels = np.asarray(self.values, dtype=float)
            return levels[np.minimum((u * len(levels)).astype(int), len(levels) - 1)]
        if self.kind == "uniform":
            return self.low + u * (self.high - self.low)
        if self.kind == "log-uniform":
            lo, hi = math.log(self.low), math.log(self.high)
            return np.exp(lo + u * (hi - lo))
        # normal, truncated to [low, high]
        dist = stats.norm(self.mean, self.std)
        a, b = dist.cdf(self.low), dist.cdf(self.high)
        return dist.ppf(a + u * (b - a))


@dataclass(frozen=True)
class Correlations:
    """Correlation between varied parameters, applied as a Gaussian copula: the matrix
    correlates the normal scores of the named parameters' uniform draws. Normal parameters
    form a multivariate normal truncated to their low/high box; others keep their own
    distribution (see :func:`~pybamm_factory.design.manifest.build_manifest`)."""

    names: tuple[str, ...]
    matrix: tuple[tuple[float, ...], ...]
    source: str = ""


@dataclass(frozen=True)
class Protocol:
    """How a sample is cycled between reference tests: a protocol kind (one module of
    :mod:`pybamm_factory.protocols`), its factors (sampled per sample, one manifest
    column each) and its fixed settings."""

    protocol_id: str
    kind: str
    upper_voltage_v: float
    lower_voltage_v: float
    factors: dict = field(default_factory=dict)  # manifest column -> Distribution
    settings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CycleJump:
    """Adaptive cycle jumps (inter-cycle extrapolation) between exactly solved cycles.

    ``tolerance`` is the relative change of a degradation rate allowed over one jump
    (dN = tolerance * |dY| / |d2Y|, the smallest over the degradation measures);
    ``min_cycles`` and ``max_cycles`` bound dN (a stretch shorter than the floor is
    solved exactly); ``exact_cycles`` consecutive cycles are solved between jumps.
    """

    tolerance: float = 0.1
    min_cycles: int = 5
    max_cycles: int = 100
    exact_cycles: int = 2


@dataclass(frozen=True)
class PulseTest:
    """Pulse resistance in every RPT: after the capacity discharge the cell is charged to
    each SOC in turn (counted against the previous RPT's capacity; nominal at cycle 0),
    rested, and discharged at ``c_rate`` for 10 s; R(t) = (rested voltage - voltage t after
    the pulse starts) / current, read at 0.1 s and 10 s. The RPT then discharges the cell
    to the lower cut-off again, so aging resumes from where it did without pulses."""

    socs: tuple[float, ...] = (0.5,)
    c_rate: float = 1.0
    rest_min: float = 30.0


@dataclass(frozen=True)
class Aging:
    max_cycles: int
    rpt_interval_cycles: int
    stop_soh: float = 0.7
    rpt_charge_c_rate: float = 1 / 3
    rpt_discharge_c_rate: float = 0.2
    rpt_cv_cutoff_c_rate: float = 0.02
    rpt_rest_min: float = 30.0
    # also run an RPT each time the aging cycles' discharge capacity has lost this
    # fraction of its first value (None: RPTs every rpt_interval_cycles only)
    rpt_fade_step: float | None = None
    cycle_jump: CycleJump | None = None  # None: every cycle solved (the exact reference)
    rpt_pulse: PulseTest | None = None  # None: no pulse resistance in the RPTs
    # chamber temperature of the RPTs (None: the sample's ambient temperature); many
    # campaigns move every cell to 25 degC for its reference tests
    rpt_temperature_c: float | None = None
    # CPU seconds one sample's aging may use before it is recorded as failed with that
    # reason (None: no limit); CPU time, so the worker count does not change the outcome
    sample_cpu_limit_s: float | None = None


@dataclass(frozen=True)
class EisSettings:
    enabled: bool = True
    socs: tuple[float, ...] = (0.2, 0.5, 0.8)
    f_min_hz: float = 1e-3
    f_max_hz: float = 1e4
    points_per_decade: int = 8

    def frequencies_hz(self):
        import numpy as np

        decades = math.log10(self.f_max_hz) - math.log10(self.f_min_hz)
        n = int(round(decades * self.points_per_decade)) + 1
        return np.logspace(math.log10(self.f_max_hz), math.log10(self.f_min_hz), n)


@dataclass(frozen=True)
class SolverSettings:
    name: str = "IDAKLUSolver"
    rtol: float = 1e-6
    atol: float = 1e-6
    # IDAKLU only: compile the model's functions to C once per machine (PyBaMM's
    # ahead-of-time option; gcc -O3 -march=native, cached under $TMPDIR/pybamm_casadi_aot)
    compile: bool = False


@dataclass(frozen=True)
class SplitSettings:
    train: float = 0.7
    val: float = 0.15
    test: float = 0.15
    stratify: str | None = None
    holdout: dict | None = None


@dataclass(frozen=True)
class Design:
    """A validated design. ``raw`` keeps the YAML content for hashing and the card."""

    name: str
    model: str
    parameter_set: str
    model_options: dict
    mesh: dict
    fixed: dict
    varied: dict  # PyBaMM parameter name -> Distribution
    protocols: tuple[Protocol, ...]
    ambient_temperatures_k: tuple[float, ...]
    conditions_per_cell_design: int
    aging: Aging
    eis: EisSettings
    sampler: str
    solver: SolverSettings
    splits: SplitSettings
    raw: dict = field(repr=False)
    correlations: Correlations | None = None
    source: str = ""
    description: str = ""
    parameter_set_source: str = ""
    license: str = "CC-BY-4.0"
    # how operating conditions are drawn: a Latin hypercube over protocol, factors and
    # temperature, or every combination of the factors' levels (choices) and temperatures
    conditions_sampler: str = "lhs"

    @property
    def content_hash(self) -> str:
        """sha256 of the canonical JSON of the design's content (not its path)."""
        canonical = json.dumps(self.raw, sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _fail(src: str, fld: str, msg: str):
    raise DesignError(f"{src}: field '{fld}': {msg}")


def _number(src, fld, value, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(src, fld, f"expected a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        _fail(src, fld, f"expected a finite number, got {value!r}")
    if positive and value <= 0:
        _fail(src, fld, f"must be > 0, got {value!r}")
    return float(value)


def _check_keys(src, fld, mapping, allowed):
    unknown = sorted(set(mapping) - set(allowed))
    if unknown:
        _fail(src, f"{fld}.{unknown[0]}" if fld else unknown[0],
              f"unknown key; allowed: {', '.join(sorted(allowed))}")


def _distribution(src, fld, spec) -> Distribution:
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        v = _number(src, fld, spec)
        return Distribution("uniform", v, v)
    if not isinstance(spec, dict):
        _fail(src, fld, "expected a number or a mapping with 'distribution', 'low', 'high'")
    _check_keys(src, fld, spec, ("distribution", "low", "high", "mean", "std", "source", "values"))
    kind = spec.get("distribution", "uniform")
    if kind not in DISTRIBUTIONS:
        _fail(src, f"{fld}.distribution", f"'{kind}' is not allowed; allowed: {', '.join(DISTRIBUTIONS)}")
    if kind == "choice" or "values" in spec:
        levels = spec.get("values")
        if kind != "choice" or not isinstance(levels, list) or not levels or "low" in spec or "high" in spec:
            _fail(src, fld, "a choice needs 'distribution: choice' and a non-empty list 'values' (no low/high)")
        levels = tuple(_number(src, f"{fld}.values[{i}]", v) for i, v in enumerate(levels))
        return Distribution("choice", min(levels), max(levels), source=str(spec.get("source", "")), values=levels)
    if "low" not in spec or "high" not in spec:
        _fail(src, fld, "needs both 'low' and 'high'")
    low = _number(src, f"{fld}.low", spec["low"])
    high = _number(src, f"{fld}.high", spec["high"])
    if not low < high:
        _fail(src, fld, f"empty range: low ({low:g}) must be < high ({high:g})")
    mean = std = None
    if kind == "log-uniform" and low <= 0:
        _fail(src, f"{fld}.low", "log-uniform needs low > 0")
    if kind == "normal":
        if "mean" not in spec or "std" not in spec:
            _fail(src, fld, "normal needs 'mean' and 'std' (and 'low'/'high' as truncation bounds)")
        mean = _number(src, f"{fld}.mean", spec["mean"])
        std = _number(src, f"{fld}.std", spec["std"], positive=True)
    return Distribution(kind, low, high, mean, std, str(spec.get("source", "")))


def _correlations(src, spec, varied: dict, sampler: str) -> Correlations | None:
    """Validate the ``correlations`` block: varied names, a symmetric unit-diagonal
    positive-definite matrix, and a sampler that allows dependent inputs."""
    import numpy as np

    if spec is None:
        return None
    _check_keys(src, "correlations", spec, ("names", "matrix", "source"))
    names = spec.get("names")
    if not isinstance(names, list) or len(names) < 2:
        _fail(src, "correlations.names", "expected a list of at least two varied parameter names")
    for name in names:
        if name not in varied:
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


def _protocol(src, i, spec, pv) -> Protocol:
    from ..protocols import parse_protocol  # the kinds import this module's helpers

    return parse_protocol(src, f"protocols[{i}]", spec, pv)


def _cycle_jump(src, spec) -> CycleJump | None:
    """``off`` (or absent): every cycle solved; a mapping: adaptive jumps with its settings."""
    if spec is None or spec is False or spec == "off":
        return None
    if spec is True or spec == "on":
        return CycleJump()
    fld = "aging.cycle_jump"
    if not isinstance(spec, dict):
        _fail(src, fld, f"expected 'off' or a mapping with tolerance, min_cycles, max_cycles, exact_cycles; got {spec!r}")
    _check_keys(src, fld, spec, ("tolerance", "min_cycles", "max_cycles", "exact_cycles"))
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
        _fail(src, fld, f"expected 'off' or a mapping with socs, c_rate, rest_min; got {spec!r}")
    _check_keys(src, fld, spec, ("socs", "c_rate", "rest_min"))
    socs = spec.get("socs", [0.5])
    if not isinstance(socs, list) or not socs:
        _fail(src, f"{fld}.socs", "expected a non-empty list of states of charge")
    socs = tuple(_number(src, f"{fld}.socs[{i}]", v) for i, v in enumerate(socs))
    if any(not 0 < v < 1 for v in socs) or list(socs) != sorted(set(socs)):
        _fail(src, f"{fld}.socs", f"must rise strictly within (0, 1), got {list(socs)}")
    c_rate = _number(src, f"{fld}.c_rate", spec.get("c_rate", 1.0), positive=True)
    if c_rate > 10:
        _fail(src, f"{fld}.c_rate", f"must lie in (0, 10], got {c_rate}")
    rest = _number(src, f"{fld}.rest_min", spec.get("rest_min", 30.0), positive=True)
    return PulseTest(socs, c_rate, rest)


def factor_target(name: str) -> str | None:
    """The parameter a ``"... (factor)"`` name scales, or None for a plain name."""
    return name[: -len(FACTOR_SUFFIX)] if name.endswith(FACTOR_SUFFIX) else None


def input_name_problem(pv, name: str, parameter_set: str, verb: str = "vary") -> str | None:
    """Why ``name`` cannot be a solver input of ``pv`` (None if it can): the parameter is
    unknown, or it is a function of state named without ``" (factor)"``."""
    target = factor_target(name) or name
    if target not in pv.keys():
        return f"'{target}' is not a parameter of {parameter_set}"
    if target == name and callable(pv[name]):
        return (f"'{name}' is a function of state in {parameter_set}; {verb} '{name}{FACTOR_SUFFIX}' "
                "(a multiplier on the function) instead")
    return None


def physical_ceiling(pv, name: str, fixed: dict | None = None, varied=()) -> tuple[float, str] | None:
    """The largest physical value of a parameter that must also be > 0, and why: 1 for a
    volume fraction or porosity, an electrode's maximum concentration (the design's fixed
    one if set) for its initial concentration. None for other parameters, and for an initial
    concentration whose maximum is itself among ``varied``."""
    if FRACTION.search(name):
        return 1.0, "a fraction"
    electrode = INITIAL_CONCENTRATION.match(name)
    if electrode:
        limit = f"Maximum concentration in {electrode[1]} electrode [mol.m-3]"
        c_max = None if limit in varied else (fixed or {}).get(limit, pv[limit])
        if isinstance(c_max, (int, float)):
            return float(c_max), f"the {electrode[1]} electrode's maximum concentration in mol.m-3"
    return None


def _physical_range(src, fld, name: str, low: float, high: float, pv, raw: dict) -> None:
    """Refuse values at or below zero or above the parameter's physical ceiling."""
    ceiling = physical_ceiling(pv, name, raw.get("fixed"), raw.get("varied", {}))
    if ceiling is not None and not (0 < low and high <= ceiling[0]):
        _fail(src, fld, f"must lie in (0, {ceiling[0]:g}] ({ceiling[1]}), got [{low:g}, {high:g}]")


def _contact_resistance_unused(src, fld, options) -> None:
    if options.get("contact resistance", "false") != "true":
        _fail(src, fld, "has no effect unless model_options sets 'contact resistance': 'true'")


# Parameters the factory adds to every parameter set (name -> default). PyBaMM's
# stress-driven loss of active material has no temperature dependence of its own; an
# activation energy here scales each electrode's "LAM constant proportional term" by
# exp(Ea / R * (1 / 298.15 K - 1 / T_ambient)), so the term keeps its meaning at 25 degC.
# 0 (the default) leaves the model exactly as PyBaMM builds it.
LAM_ACTIVATION = {
    "Negative electrode LAM activation energy [J.mol-1]": "Negative electrode LAM constant proportional term [s-1]",
    "Positive electrode LAM activation energy [J.mol-1]": "Positive electrode LAM constant proportional term [s-1]",
}
LAM_REFERENCE_TEMPERATURE_K = 298.15
FACTORY_PARAMETERS = {name: 0.0 for name in LAM_ACTIVATION}


def parameter_values(name: str):
    """PyBaMM's parameter set ``name`` with the factory's own parameters added."""
    import pybamm

    pv = pybamm.ParameterValues(name)
    pv.update(FACTORY_PARAMETERS, check_already_exists=False)
    return pv


def _parameter_set_info(src, name):
    import pybamm

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


def _model_options(src, options, model):
    import pybamm

    if not isinstance(options, dict):
        _fail(src, "model_options", "expected a mapping of PyBaMM option names to values")
    try:
        pybamm.BatteryModelOptions(model_options_for_pybamm(options))
    except pybamm.OptionError as exc:
        _fail(src, "model_options", str(exc).splitlines()[0])


def model_options_for_pybamm(options: dict) -> dict:
    """YAML lists become the tuples PyBaMM expects for per-electrode options."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


def parse_design(raw: dict, src: str = "<design>") -> Design:
    """Validate a design mapping (as read from YAML) and return a :class:`Design`."""
    if not isinstance(raw, dict):
        raise DesignError(f"{src}: the design must be a YAML mapping at the top level")
    _check_keys(src, "", raw, TOP_LEVEL_KEYS)
    for key in REQUIRED_KEYS:
        if key not in raw:
            _fail(src, key, "is required")
    for key, typ in TOP_LEVEL_KEYS.items():
        if key in raw and (not isinstance(raw[key], typ) or (typ is int and isinstance(raw[key], bool))):
            _fail(src, key, f"expected {typ.__name__}, got {type(raw[key]).__name__}")
    if not NAME_SLUG.fullmatch(raw["name"]):
        _fail(src, "name", f"{raw['name']!r} is not allowed: the dataset folder is named after it, so it must be "
              "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit (no '/', no '..')")
    model = raw["model"]
    if model not in MODELS:
        _fail(src, "model", f"'{model}' is not allowed; allowed: {', '.join(MODELS)}")
    pset = _parameter_set_info(src, raw["parameter_set"])
    pv = pset["values"]
    options = raw.get("model_options", {})
    _model_options(src, options, model)

    mesh = raw.get("mesh", {})
    _check_keys(src, "mesh", mesh, MESH_KEYS)
    for k, v in mesh.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 2:
            _fail(src, f"mesh.{k}", f"expected an integer >= 2, got {v!r}")

    fixed = raw.get("fixed", {})
    for name, value in fixed.items():
        if name not in pv.keys():
            _fail(src, f"fixed.{name}", f"'{name}' is not a parameter of {raw['parameter_set']}")
        _number(src, f"fixed.{name}", value)
        _physical_range(src, f"fixed.{name}", name, value, value, pv, raw)
        if name == CONTACT_RESISTANCE and value:
            _contact_resistance_unused(src, f"fixed.{name}", options)

    varied = {}
    for name, spec in raw.get("varied", {}).items():
        target = factor_target(name) or name
        problem = input_name_problem(pv, name, raw["parameter_set"])
        if problem:
            _fail(src, f"varied.{name}", problem)
        if target != name and target in raw.get("varied", {}):
            _fail(src, f"varied.{name}", f"'{target}' is varied itself; vary it or its factor, not both")
        if target == CONTACT_RESISTANCE:
            _contact_resistance_unused(src, f"varied.{name}", options)
        if GEOMETRY.search(target):
            _fail(src, f"varied.{name}", "sets the mesh geometry, which PyBaMM cannot take as an input parameter; "
                  "vary an equation parameter (e.g. an active material volume fraction) instead")
        varied[name] = _distribution(src, f"varied.{name}", spec)
        _physical_range(src, f"varied.{name}", name, varied[name].low, varied[name].high, pv, raw)
        if varied[name].low == varied[name].high:
            _fail(src, f"varied.{name}", "empty range: low must be < high")

    protocols = raw["protocols"]
    if not protocols:
        _fail(src, "protocols", "needs at least one protocol")
    protocols = tuple(_protocol(src, i, p, pset) for i, p in enumerate(protocols))
    ids = [p.protocol_id for p in protocols]
    if len(set(ids)) != len(ids):
        _fail(src, "protocols", f"protocol ids must be unique, got {ids}")

    temps = raw["ambient_temperatures_c"]
    if not temps:
        _fail(src, "ambient_temperatures_c", "needs at least one temperature")
    temps_k = []
    for i, t in enumerate(temps):
        t = _number(src, f"ambient_temperatures_c[{i}]", t)
        if not -40 <= t <= 80:
            _fail(src, f"ambient_temperatures_c[{i}]", f"{t} degC is outside the allowed -40..80 degC")
        temps_k.append(round(t + 273.15, 6))

    aging_raw = raw["aging"]
    aging_keys = ("max_cycles", "rpt_interval_cycles", "stop_soh", "rpt_charge_c_rate",
                  "rpt_discharge_c_rate", "rpt_cv_cutoff_c_rate", "rpt_rest_min", "rpt_fade_step", "cycle_jump",
                  "rpt_pulse", "rpt_temperature_c", "sample_cpu_limit_s")
    if not isinstance(aging_raw, dict):
        _fail(src, "aging", "expected a mapping")
    _check_keys(src, "aging", aging_raw, aging_keys)
    for req in ("max_cycles", "rpt_interval_cycles"):
        if req not in aging_raw:
            _fail(src, f"aging.{req}", "is required")
    for k in ("max_cycles", "rpt_interval_cycles"):
        v = aging_raw[k]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            _fail(src, f"aging.{k}", f"expected an integer >= 1, got {v!r}")
    if aging_raw["rpt_interval_cycles"] > aging_raw["max_cycles"]:
        _fail(src, "aging.rpt_interval_cycles", "must be <= aging.max_cycles (no reference test would run)")
    aging_values = {k: (float(v) if isinstance(v, float) else v) for k, v in aging_raw.items()}
    aging_values["cycle_jump"] = _cycle_jump(src, aging_raw.get("cycle_jump"))
    aging_values["rpt_pulse"] = _pulse_test(src, aging_raw.get("rpt_pulse"))
    if aging_raw.get("rpt_temperature_c") is not None:
        t_rpt = _number(src, "aging.rpt_temperature_c", aging_raw["rpt_temperature_c"])
        if not -40 <= t_rpt <= 80:
            _fail(src, "aging.rpt_temperature_c", f"{t_rpt} degC is outside the allowed -40..80 degC")
        aging_values["rpt_temperature_c"] = float(t_rpt)
    if aging_raw.get("sample_cpu_limit_s") is not None:
        limit = _number(src, "aging.sample_cpu_limit_s", aging_raw["sample_cpu_limit_s"], positive=True)
        aging_values["sample_cpu_limit_s"] = float(limit)
    if aging_raw.get("rpt_fade_step") is not None:
        step = _number(src, "aging.rpt_fade_step", aging_raw["rpt_fade_step"], positive=True)
        if not step < 0.5:
            _fail(src, "aging.rpt_fade_step", f"must lie in (0, 0.5) (a fraction of the first capacity), got {step}")
    aging = Aging(**aging_values)
    if not 0 < aging.stop_soh < 1:
        _fail(src, "aging.stop_soh", f"must lie in (0, 1), got {aging.stop_soh}")
    for k in ("rpt_charge_c_rate", "rpt_discharge_c_rate", "rpt_cv_cutoff_c_rate"):
        _number(src, f"aging.{k}", getattr(aging, k), positive=True)

    eis_raw = raw.get("eis", {})
    _check_keys(src, "eis", eis_raw, ("enabled", "socs", "f_min_hz", "f_max_hz", "points_per_decade"))
    eis = EisSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in eis_raw.items()})
    for i, s in enumerate(eis.socs):
        if not 0 < _number(src, f"eis.socs[{i}]", s) < 1:
            _fail(src, f"eis.socs[{i}]", f"state of charge must lie in (0, 1), got {s}")
    f_lo = _number(src, "eis.f_min_hz", eis.f_min_hz, positive=True)
    f_hi = _number(src, "eis.f_max_hz", eis.f_max_hz, positive=True)
    if not f_lo < f_hi:
        _fail(src, "eis", "f_min_hz must be < f_max_hz")

    sampler = raw.get("sampler", "lhs")
    if sampler not in SAMPLERS:
        _fail(src, "sampler", f"'{sampler}' is not allowed; allowed: {', '.join(SAMPLERS)}")
    correlations = _correlations(src, raw.get("correlations"), varied, sampler)
    solver_raw = raw.get("solver", {})
    _check_keys(src, "solver", solver_raw, ("name", "rtol", "atol", "compile"))
    solver = SolverSettings(**solver_raw)
    if solver.name not in SOLVERS:
        _fail(src, "solver.name", f"'{solver.name}' is not allowed; allowed: {', '.join(SOLVERS)}")
    if not isinstance(solver.compile, bool):
        _fail(src, "solver.compile", f"expected true or false, got {solver.compile!r}")
    if solver.compile and solver.name != "IDAKLUSolver":
        _fail(src, "solver.compile", f"only IDAKLUSolver compiles its model; got solver.name {solver.name}")
    _number(src, "solver.rtol", solver.rtol, positive=True)
    _number(src, "solver.atol", solver.atol, positive=True)

    splits_raw = raw.get("splits", {})
    _check_keys(src, "splits", splits_raw, ("train", "val", "test", "stratify", "holdout"))
    splits = SplitSettings(**splits_raw)
    if splits.stratify is not None and not isinstance(splits.stratify, str):
        _fail(src, "splits.stratify", "expected a manifest column name, optionally 'COLUMN:BINS'")
    if splits.holdout is not None:
        if not isinstance(splits.holdout, dict) or "column" not in splits.holdout:
            _fail(src, "splits.holdout", "expected a mapping with 'column', 'side' (high|low) and 'fraction'")
        _check_keys(src, "splits.holdout", splits.holdout, ("column", "side", "fraction"))
        if splits.holdout.get("side", "high") not in HOLDOUT_SIDES:
            _fail(src, "splits.holdout.side", f"'{splits.holdout['side']}' is not allowed; allowed: high, low")
        fraction = _number(src, "splits.holdout.fraction", splits.holdout.get("fraction", 0.2))
        if not 0 < fraction < 1:
            _fail(src, "splits.holdout.fraction", f"must lie in (0, 1), got {fraction}")
    fractions = [splits.train, splits.val, splits.test]
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        _fail(src, "splits", f"train/val/test must be >= 0 and sum to 1, got {fractions}")

    conditions_sampler = raw.get("conditions_sampler", "lhs")
    if conditions_sampler not in CONDITION_SAMPLERS:
        _fail(src, "conditions_sampler", f"'{conditions_sampler}' is not allowed; allowed: {', '.join(CONDITION_SAMPLERS)}")
    if conditions_sampler == "factorial":
        for i, p in enumerate(protocols):
            for name, d in p.factors.items():
                if d.kind != "choice" and d.low != d.high:
                    _fail(src, f"protocols[{i}].{name}", "a factorial design needs every factor to be a number or "
                          "'distribution: choice' with its levels")

    cpd = raw.get("conditions_per_cell_design", 1)
    if cpd < 1:
        _fail(src, "conditions_per_cell_design", "must be >= 1")

    return Design(
        name=raw["name"], model=model, parameter_set=raw["parameter_set"],
        model_options=copy.deepcopy(options), mesh=dict(mesh), fixed=dict(fixed), varied=varied,
        protocols=protocols, ambient_temperatures_k=tuple(temps_k),
        conditions_per_cell_design=cpd, aging=aging, eis=eis, sampler=sampler, solver=solver,
        splits=splits, raw=copy.deepcopy(raw), correlations=correlations, source=src,
        description=raw.get("description", ""),
        parameter_set_source=raw.get("parameter_set_source", ""),
        license=raw.get("license", "CC-BY-4.0"), conditions_sampler=conditions_sampler,
    )


def packaged_designs() -> dict[str, Path]:
    """Names and paths of the designs shipped inside the package."""
    root = resources.files("pybamm_factory") / "designs"
    return {Path(str(p)).stem: Path(str(p)) for p in root.iterdir() if str(p).endswith(".yaml")}


def resolve_design_path(design: str | Path | None) -> Path:
    """A path to an existing file, or the name of a packaged design (default: 'default')."""
    if design is None:
        design = "default"
    path = Path(design)
    if path.exists():
        return path
    shipped = packaged_designs()
    if str(design) in shipped:
        return shipped[str(design)]
    raise DesignError(f"{design}: no such file, and not a packaged design; packaged: {', '.join(sorted(shipped))}")


def load_design(design: str | Path | None = None) -> Design:
    """Read and validate a design file (YAML, loaded safely) or packaged design name."""
    path = resolve_design_path(design)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise DesignError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_design(raw, str(path))
