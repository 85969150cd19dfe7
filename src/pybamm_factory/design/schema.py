"""What a design is: the dataclasses a design file becomes, the limits it must keep, and
the YAML key of each dataclass field (:func:`yaml_keys`), so a section's allowed keys are
stated once, by its dataclass.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import MISSING, dataclass, field, fields

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
CONTACT_RESISTANCE = "Contact resistance [Ohm]"  # used by PyBaMM only with the model option of that name
# The YAML type of each top-level key, in the order parse_design checks them (the first
# wrong one is the message). The keys themselves are Design's (see yaml_keys); the check
# after Design keeps the two the same.
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
    "observe": list,
    "failures": dict,
}
CONDITION_SAMPLERS = ("lhs", "factorial")
TYPE_WORDS = {str: "text", dict: "a mapping", list: "a list", int: "an integer"}
# samples in one dataset (a manifest row each; `design -n` and `run -n`)
MAX_SAMPLES = 1_000_000
# A design's name becomes a folder name under datasets/: a slug, never a path.
NAME_SLUG = re.compile(r"(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
REQUIRED_KEYS = ("name", "model", "parameter_set", "protocols", "ambient_temperatures_c", "aging")

# Limits on what a design file may ask for, each refused in one line before anything runs
# (the file's own size and shape: see spec.MAX_DESIGN_BYTES and the YAML limits there).
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

# Dataclass field metadata: the field's key in the design YAML where it differs from the
# field's name, or None for a field the YAML does not set. Every other field is read from
# the key of its own name.
YAML_KEY = "yaml_key"
NOT_IN_YAML = {YAML_KEY: None}


def yaml_keys(cls, required_only: bool = False) -> tuple[str, ...]:
    """The keys a section of the design YAML may have: its dataclass's fields in their order,
    each under its YAML key; with ``required_only``, just those whose field has no default."""
    keys = []
    for f in fields(cls):
        key = f.metadata.get(YAML_KEY, f.name)
        has_default = f.default is not MISSING or f.default_factory is not MISSING
        if key is not None and not (required_only and has_default):
            keys.append(key)
    return tuple(keys)


class DesignError(FactoryError, ValueError):
    """A design file is malformed; the message is one line naming file and field (line
    breaks a value brought in are written as \\n, so the message stays one line)."""

    def __init__(self, message: str):
        super().__init__(str(message).replace("\r", "\\r").replace("\n", "\\n"))


@dataclass(frozen=True)
class Distribution:
    """A sampling distribution for one scalar quantity."""

    kind: str = field(metadata={YAML_KEY: "distribution"})
    low: float
    high: float
    mean: float | None = None
    std: float | None = None
    source: str = ""
    values: tuple[float, ...] = ()  # the levels of a "choice" (equally likely)

    def centre(self) -> float:
        """The value a design's central cell takes: a normal's mean (a calibration's fitted
        value; the median of a normal truncated unevenly, near a searched bound, lies off it),
        a choice's middle level by value (the lower of the two middle ones), else the median."""
        if self.kind == "normal":
            return float(min(max(self.mean, self.low), self.high))
        if self.kind == "choice":  # a level, the lower middle one by value
            levels = sorted(self.values)
            return float(levels[(len(levels) - 1) // 2])
        return float(self.ppf([0.5])[0])

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
    # voltage window of the RPT's CC-CV charge and slow discharge (None: the sample's
    # protocol's upper and lower voltages); set to a measured cell's own reference test
    # so curve features compare (`predict --rpt-design` writes it from a file)
    rpt_upper_voltage_v: float | None = None
    rpt_lower_voltage_v: float | None = None
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
class ObserveRequest:
    """One measured copy a design asks for: a packaged profile name or a profile file, and the noise seed."""

    profile: str
    seed: int = 0


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
    ambient_temperatures_k: tuple[float, ...] = field(metadata={YAML_KEY: "ambient_temperatures_c"})
    conditions_per_cell_design: int
    aging: Aging
    eis: EisSettings
    sampler: str
    solver: SolverSettings
    splits: SplitSettings
    raw: dict = field(repr=False, metadata=NOT_IN_YAML)
    correlations: Correlations | None = None
    source: str = field(default="", metadata=NOT_IN_YAML)  # the file it came from
    description: str = ""
    parameter_set_source: str = ""
    license: str = "CC-BY-4.0"
    # how operating conditions are drawn: a Latin hypercube over protocol, factors and
    # temperature, or every combination of the factors' levels (choices) and temperatures
    conditions_sampler: str = "lhs"
    # measured copies written after the run (`pybamm-factory observe`): (profile, seed) pairs
    observe: tuple[ObserveRequest, ...] = ()
    # rare failures with a controlled prevalence (design/failures.py)
    failures: tuple = ()

    def sets(self, name: str) -> bool:
        """Whether the design varies ``name`` or fixes it to a non-zero value (a factory
        term whose default 0 leaves PyBaMM's model as built)."""
        return name in self.varied or bool(self.fixed.get(name))

    @property
    def content_hash(self) -> str:
        """sha256 of the canonical JSON of the design's content (not its path)."""
        canonical = json.dumps(self.raw, sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


if set(TOP_LEVEL_KEYS) != set(yaml_keys(Design)):  # a Design field added without its YAML type, or the reverse
    raise TypeError(f"TOP_LEVEL_KEYS and Design's YAML keys differ: {sorted(set(TOP_LEVEL_KEYS) ^ set(yaml_keys(Design)))}")
