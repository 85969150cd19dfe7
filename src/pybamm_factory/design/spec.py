"""Design files: load a YAML design, validate it, and hold it as plain dataclasses.

Every validation failure raises :class:`DesignError` with one line that names the
file, the field and what is allowed, so the CLI can print it without a traceback.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from ..errors import FactoryError

MODELS = ("spme", "dfn")
SAMPLERS = ("lhs", "sobol")
DISTRIBUTIONS = ("uniform", "log-uniform", "normal", "choice")
MIN_TRUNCATED_MASS = 1e-6  # share of a normal's mass that must lie within its low..high
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
TYPE_WORDS = {str: "text", dict: "a mapping", list: "a list", int: "an integer"}
# samples in one dataset (a manifest row each; `design -n` and `run -n`)
MAX_SAMPLES = 1_000_000
# A design's name becomes a folder name under datasets/: a slug, never a path.
NAME_SLUG = re.compile(r"(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
REQUIRED_KEYS = ("name", "model", "parameter_set", "protocols", "ambient_temperatures_c", "aging")

# Limits on what a design file may ask for, each refused in one line before anything runs.
MAX_DESIGN_BYTES = 1024 ** 2  # a design is a few kB; read no more than this
MAX_YAML_NODES = 100_000  # values in the document with aliases expanded (alias bombs)
MAX_YAML_DEPTH = 64  # nesting levels (a design needs about five)
# points per mesh domain (x_n, x_s, x_p, r_n, r_p): results stop changing long before this,
# and memory and solve time grow with the states (a DFN has x_n * r_n particle points)
MAX_MESH_POINTS = 2_000
MAX_MESH_TOTAL = 50_000  # grid points of the whole model (see mesh_points)
PYBAMM_DEFAULT_MESH = 20  # PyBaMM's default for a domain the design leaves out
MAX_CYCLES = 1_000_000
MAX_RPT_C_RATE = 10.0
MAX_REST_MIN = 24 * 60  # an RPT rest longer than a day is a typo, not a protocol
EIS_FREQUENCY_RANGE_HZ = (1e-5, 1e6)  # 10 uHz .. 1 MHz: what impedance analysers measure
MAX_POINTS_PER_DECADE = 100
MAX_STRATIFY_BINS = 100
# set per sample from ambient_temperatures_c (the manifest's ambient_temperature_k): a
# design's own value would be overwritten by the runner, while the card reported it
TEMPERATURE_PARAMETERS = ("Ambient temperature [K]", "Initial temperature [K]")
_YAML_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DesignError(FactoryError, ValueError):
    """A design file is malformed; the message is one line naming file and field (line
    breaks a value brought in are written as \\n, so the message stays one line)."""

    def __init__(self, message: str):
        super().__init__(str(message).replace("\r", "\\r").replace("\n", "\\n"))


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


def _show(value, limit: int = 60) -> str:
    """A value for a message: its type where that helps, repr shortened to ``limit``."""
    try:
        text = repr(value)
    except ValueError:  # an integer past Python's 4300-digit conversion limit
        return "an integer too large to print"
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    if isinstance(value, str):
        return text
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {text}" if isinstance(value, (list, dict, bool)) else text


def _number(src, fld, value, positive=False):
    if isinstance(value, str):
        _fail(src, fld, f"expected a number, got {_show(value)} (write a number without quotes)")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(src, fld, f"expected a number, got {_show(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        _fail(src, fld, f"expected a finite number, got {_show(value)}")
    if positive and number <= 0:
        _fail(src, fld, f"must be > 0, got {value!r}")
    return number


def _check_keys(src, fld, mapping, allowed):
    unknown = sorted(set(mapping) - set(allowed), key=_show)
    if unknown:
        name = unknown[0] if isinstance(unknown[0], str) else _show(unknown[0])
        _fail(src, f"{fld}.{name}" if fld else name,
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
        def cdf(x):
            return 0.5 * math.erfc(-(x - mean) / (std * math.sqrt(2)))
        inside = cdf(high) - cdf(low)
        if not inside >= MIN_TRUNCATED_MASS:  # the truncated draw's inverse CDF would give infinities
            _fail(src, fld, f"normal(mean {mean:g}, std {std:g}) puts {inside:.1e} of its mass inside low..high "
                            f"({low:g}..{high:g}); at least {MIN_TRUNCATED_MASS:g} is needed: move the mean or widen std")
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


def _protocol(src, i, spec, pv) -> Protocol:
    from ..protocols import parse_protocol  # the kinds import this module's helpers

    if isinstance(spec, dict) and "id" in spec and (not isinstance(spec["id"], str) or not spec["id"].strip()):
        _fail(src, f"protocols[{i}].id", f"expected a name (text; the manifest's protocol_id), got {_show(spec['id'])}")
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


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def _model_options(src, options, model, eis: bool = True):
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


@functools.lru_cache(maxsize=64)
def _model_build_problem(model: str, options_json: str, eis: bool) -> str | None:
    """Why PyBaMM cannot build the runner's models from these options (None if it can);
    about 0.1-0.3 s a model, cached per (model, options)."""
    from ..simulate.aging import make_model
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


def model_options_for_pybamm(options: dict) -> dict:
    """YAML lists become the tuples PyBaMM expects for per-electrode options."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


def _integer(src, fld, value, least: int, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        _fail(src, fld, f"expected an integer >= {least}, got {_show(value)}; allowed: {least}..{most:,}")
    if value > most:
        _fail(src, fld, f"expected an integer in {least}..{most:,}, got {_show(value)}")
    return value


def _bounded(src, fld, value, low: float, high: float, what: str = "", low_open: bool = True) -> float:
    """A number in (low, high] (or [low, high] with ``low_open=False``)."""
    v = _number(src, fld, value)
    if not ((low < v) if low_open else (low <= v)) or v > high:
        _fail(src, fld, f"must lie in {'(' if low_open else '['}{low:g}, {high:g}]{what}, got {v:g}")
    return v


def _mapping(src, fld, value, keys_are="names") -> dict:
    if not isinstance(value, dict):
        _fail(src, fld, f"expected a mapping, got {_show(value)}")
    for key in value:
        if not isinstance(key, str):
            _fail(src, f"{fld}.{_show(key)}", f"expected text as the key ({keys_are}), got {type(key).__name__} {_show(key)}")
    return value


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


def _eis(src, eis_raw) -> EisSettings:
    _check_keys(src, "eis", eis_raw, ("enabled", "socs", "f_min_hz", "f_max_hz", "points_per_decade"))
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


def _aging(src, aging_raw) -> Aging:
    aging_keys = ("max_cycles", "rpt_interval_cycles", "stop_soh", "rpt_charge_c_rate",
                  "rpt_discharge_c_rate", "rpt_cv_cutoff_c_rate", "rpt_rest_min", "rpt_fade_step", "cycle_jump",
                  "rpt_pulse", "rpt_temperature_c", "sample_cpu_limit_s")
    _check_keys(src, "aging", aging_raw, aging_keys)
    for req in ("max_cycles", "rpt_interval_cycles"):
        if req not in aging_raw:
            _fail(src, f"aging.{req}", "is required")
    values = {k: _integer(src, f"aging.{k}", aging_raw[k], 1, MAX_CYCLES) for k in ("max_cycles", "rpt_interval_cycles")}
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
    if aging_raw.get("sample_cpu_limit_s") is not None:
        values["sample_cpu_limit_s"] = _number(src, "aging.sample_cpu_limit_s", aging_raw["sample_cpu_limit_s"],
                                               positive=True)
    if aging_raw.get("rpt_fade_step") is not None:
        step = _number(src, "aging.rpt_fade_step", aging_raw["rpt_fade_step"], positive=True)
        if not step < 0.5:
            _fail(src, "aging.rpt_fade_step", f"must lie in (0, 0.5) (a fraction of the first capacity), got {step:g}")
        values["rpt_fade_step"] = step
    return Aging(**values)


def _solver(src, solver_raw) -> SolverSettings:
    _check_keys(src, "solver", solver_raw, ("name", "rtol", "atol", "compile"))
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
    _check_keys(src, "splits", splits_raw, ("train", "val", "test", "stratify", "holdout"))
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


def _choice(src, fld, value, allowed) -> str:
    if not isinstance(value, str) or value not in allowed:
        _fail(src, fld, f"{_show(value)} is not allowed; allowed: {', '.join(allowed)}")
    return value


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
            _fail(src, key, f"expected {TYPE_WORDS[typ]}, got {_show(raw[key])}")
    for key in ("model_options", "fixed", "varied"):
        _mapping(src, key, raw.get(key, {}), "PyBaMM names" if key != "model_options" else "PyBaMM option names")
    if not NAME_SLUG.fullmatch(raw["name"]):
        _fail(src, "name", f"{_show(raw['name'])} is not allowed: the dataset folder is named after it, so it must be "
              "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit (no '/', no '..')")
    model = _choice(src, "model", raw["model"], MODELS)
    pset = _parameter_set_info(src, raw["parameter_set"])
    pv = pset["values"]
    options = raw.get("model_options", {})
    eis_raw = raw.get("eis", {})
    _model_options(src, options, model, eis_raw.get("enabled", True) is not False)
    mesh = _mesh(src, model, raw.get("mesh", {}))

    fixed = raw.get("fixed", {})
    for name, value in fixed.items():
        if name in TEMPERATURE_PARAMETERS:
            _fail(src, f"fixed.{name}", "is set per sample from ambient_temperatures_c (the manifest's "
                  "ambient_temperature_k), so a fixed value would be ignored; list the temperature there")
        if name not in pv.keys():
            _fail(src, f"fixed.{name}", f"'{name}' is not a parameter of {raw['parameter_set']}")
        _number(src, f"fixed.{name}", value)
        _physical_range(src, f"fixed.{name}", name, value, value, pv, raw)
        if name == CONTACT_RESISTANCE and value:
            _contact_resistance_unused(src, f"fixed.{name}", options)

    varied = {}
    for name, spec in raw.get("varied", {}).items():
        target = factor_target(name) or name
        if target in TEMPERATURE_PARAMETERS:
            _fail(src, f"varied.{name}", "is set per sample from ambient_temperatures_c (the manifest's "
                  "ambient_temperature_k); vary the temperature there")
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
            _fail(src, f"ambient_temperatures_c[{i}]", f"{t:g} degC is outside the allowed -40..80 degC")
        temps_k.append(round(t + 273.15, 6))

    aging = _aging(src, raw["aging"])
    eis = _eis(src, eis_raw)
    sampler = _choice(src, "sampler", raw.get("sampler", "lhs"), SAMPLERS)
    correlations = _correlations(src, raw.get("correlations"), varied, sampler)
    solver = _solver(src, raw.get("solver", {}))
    splits = _splits(src, raw.get("splits", {}), varied, protocols)

    conditions_sampler = _choice(src, "conditions_sampler", raw.get("conditions_sampler", "lhs"), CONDITION_SAMPLERS)
    if conditions_sampler == "factorial":
        for i, p in enumerate(protocols):
            for name, d in p.factors.items():
                if d.kind != "choice" and d.low != d.high:
                    _fail(src, f"protocols[{i}].{name}", "a factorial design needs every factor to be a number or "
                          "'distribution: choice' with its levels")

    cpd = _integer(src, "conditions_per_cell_design", raw.get("conditions_per_cell_design", 1), 1, MAX_SAMPLES)

    return Design(
        name=raw["name"], model=model, parameter_set=raw["parameter_set"],
        model_options=copy.deepcopy(options), mesh=mesh, fixed=dict(fixed), varied=varied,
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


def _yaml_message(exc: yaml.YAMLError) -> str:
    """One line from a PyYAML error: where (line, column) and what."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    hint = ""
    if "flow mapping" in str(getattr(exc, "context", "") or ""):  # most often a bare "Name [unit]" key
        hint = " (inside {...} quote a name with [units]: {\"Initial SEI thickness [m]\": 5.0e-9})"
    return f"not valid YAML{where}: {problem.strip()}{hint}"


def _check_yaml_nodes(src: str, root) -> None:
    """Walk the composed YAML (before anything is constructed): refuse a mapping that
    names a key twice (PyYAML would keep the last silently), nesting deeper than
    MAX_YAML_DEPTH and more than MAX_YAML_NODES values with aliases expanded (an alias
    bomb: a few lines that expand to billions of values)."""
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    stack = [(root, "", 0)]
    visited = 0
    while stack:
        node, path, depth = stack.pop()
        visited += 1
        where = f"field '{path}': " if path else ""
        if visited > MAX_YAML_NODES:
            raise DesignError(f"{src}: {where}the YAML expands to more than {MAX_YAML_NODES:,} values (anchors and "
                              "aliases expanded); a design has a few hundred, so this is refused (an alias bomb?)")
        if depth > MAX_YAML_DEPTH:
            raise DesignError(f"{src}: {where}nested deeper than {MAX_YAML_DEPTH} levels; a design is a few levels deep")
        if isinstance(node, SequenceNode):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in reversed(list(enumerate(node.value))))
        elif isinstance(node, MappingNode):
            seen = {}
            children = []
            for key, value in node.value:
                if isinstance(key, ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    name = f"{path}.{key.value}" if path else key.value
                    line = key.start_mark.line + 1
                    if (key.tag, key.value) in seen:
                        raise DesignError(f"{src}: field '{name}': duplicate key (lines {seen[key.tag, key.value]} "
                                          f"and {line}); a mapping may name each key once")
                    seen[key.tag, key.value] = line
                else:
                    name = f"{path}.<key>" if path else "<key>"
                    stack.append((key, name, depth + 1))
                children.append((value, name, depth + 1))
            stack.extend(reversed(children))


class DesignLoader(_YAML_BASE):
    """PyYAML's safe loader (the C one where libyaml is built in) made strict for designs:
    a key named twice in one mapping is an error instead of the last one winning, and
    YAML 1.2 floats without a dot (``5e-20``, ``1E5``) are floats, not strings."""

    def construct_object(self, node, deep=False):
        # a scalar Python cannot convert (2020-02-30, !!int abc, a 5000-digit integer) is
        # a YAML error at its line, not a ValueError from deep inside PyYAML
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # ValueError, IndexError (!!int with no digits), OverflowError, ...
            shown = node.value if isinstance(node.value, str) else ""
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read the value {shown!r} as {node.tag.rsplit(':', 1)[-1]}: {_first_line(exc)}",
                node.start_mark) from None

    def construct_mapping(self, node, deep=False):
        # a backstop for keys that differ as text but are equal as values (1 and 0x1)
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable: the base class says so with its mark
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


# YAML 1.2 core schema floats with an exponent; YAML 1.1 (PyYAML) needs a dot and a signed
# exponent, so it reads 5e-20 and 1E5 as strings
DesignLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str, src: str = "<design>"):
    """Parse one YAML document with :class:`DesignLoader` and the design file's limits
    (no duplicate keys, at most MAX_YAML_NODES values with aliases expanded); every
    problem is a one-line :class:`DesignError`."""
    loader = DesignLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_yaml_nodes(src, node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise DesignError(f"{src}: {_yaml_message(exc)}") from None
    except RecursionError:
        raise DesignError(f"{src}: nested too deeply to read; a design is a few levels deep") from None
    finally:
        loader.dispose()


def read_design_file(path: str | Path):
    """The YAML content of a design file: at most MAX_DESIGN_BYTES of UTF-8 text, parsed
    by :func:`load_yaml`. Every problem is a one-line :class:`DesignError`."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:  # read no more than the limit (a pipe or /dev/zero has no size)
            data = fh.read(MAX_DESIGN_BYTES + 1)
    except OSError as exc:
        raise DesignError(f"{path}: cannot read the design file: {exc.strerror or exc}") from None
    if len(data) > MAX_DESIGN_BYTES:
        raise DesignError(f"{path}: the design file is over the {MAX_DESIGN_BYTES // 1024 ** 2} MiB limit "
                          "(a design is a few kB of YAML)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DesignError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                          "save the design as UTF-8") from None
    return load_yaml(text, str(path))


def load_design(design: str | Path | None = None) -> Design:
    """Read and validate a design file (YAML, loaded safely) or packaged design name."""
    path = resolve_design_path(design)
    return parse_design(read_design_file(path), str(path))
