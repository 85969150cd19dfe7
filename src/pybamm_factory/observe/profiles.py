"""Measurement profiles: what an instrument does to a voltage, a current, a temperature and
an impedance spectrum.

A profile is a YAML file. The packaged ones live in ``observe/profiles/*.yaml``; a user file
may start from one of them (``base: lab-cycler``) and change a few fields. Every field name
carries its unit. Offsets, gain errors and drift rates are *bounds* as a data sheet states
them: with ``systematic_errors: uniform`` each sample (one cycler channel, one BMS) draws
its own values uniformly within +/- the bound; with ``fixed`` every sample has exactly the
stated value (a worst-case corner, and what the tests use). Random noise is Gaussian with
the stated standard deviation; a ``*_step_*`` field is the quantisation step of the reading
(0 = none).

A bad profile raises :class:`ProfileError`, one line naming the file, the field and what is
allowed.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml

from ..errors import FactoryError

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
SYSTEMATIC = ("uniform", "fixed")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
TEXT_FIELDS = ("name", "description", "source", "systematic_errors")
MAX_GAIN_ERROR_PCT = 50.0


class ProfileError(FactoryError, ValueError):
    """A profile file or name that cannot be used; the message is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


@dataclass(frozen=True)
class Profile:
    """One measurement chain. Units are in the names; ``_pct`` is percent of the reading."""

    name: str
    description: str
    source: str  # where the figures come from (data sheet, application note, paper)
    typical_figures: tuple[str, ...]  # fields that are typical / assumed figures, not measured or specified
    systematic_errors: str  # uniform | fixed (see the module docstring)
    sample_period_s: float  # logging interval of the RPT discharge
    # voltage channel
    voltage_noise_sigma_v: float
    voltage_offset_v: float
    voltage_gain_error_pct: float
    voltage_step_v: float
    voltage_drift_v_per_month: float
    # current channel (the capacity axis is the integral of the measured current)
    current_noise_sigma_a: float
    current_offset_a: float
    current_gain_error_pct: float
    current_step_a: float
    current_offset_drift_a_per_month: float
    # temperature sensor (a first-order lag of the cell temperature, then offset, noise, step)
    temperature_noise_sigma_k: float
    temperature_offset_k: float
    temperature_step_k: float
    temperature_lag_time_constant_s: float
    # impedance: complex Gaussian noise proportional to |Z|, growing below the corner frequency
    eis_noise_pct: float  # standard deviation of Z' and of Z'' at and above the corner, % of |Z|
    eis_noise_corner_hz: float
    eis_noise_low_frequency_exponent: float  # below the corner: sigma x (corner / f) ** exponent
    eis_gain_error_pct: float

    def as_dict(self) -> dict:
        out = asdict(self)
        out["typical_figures"] = list(self.typical_figures)
        return out

    def eis_sigma(self, frequency_hz) -> "object":
        """Standard deviation of each of Z', Z'' as a fraction of |Z| at ``frequency_hz``."""
        import numpy as np

        f = np.asarray(frequency_hz, dtype=float)
        growth = np.maximum(1.0, self.eis_noise_corner_hz / f) ** self.eis_noise_low_frequency_exponent
        return self.eis_noise_pct / 100.0 * growth


NUMBER_FIELDS = tuple(f.name for f in fields(Profile) if f.type == "float")
FIELD_NAMES = tuple(f.name for f in fields(Profile))
ALLOWED_KEYS = ("base",) + FIELD_NAMES
POSITIVE = ("sample_period_s", "eis_noise_corner_hz")  # must be > 0; every other number >= 0


def packaged_profiles() -> dict[str, Path]:
    """Name -> file of every packaged profile."""
    return {p.stem: p for p in sorted(PROFILE_DIR.glob("*.yaml"))}


def _fail(src, field: str, message: str):
    raise ProfileError(f"{src}: {field}: {message}")


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(src, field: str, value) -> float:
    allowed = "a number > 0" if field in POSITIVE else "a number >= 0"
    if field.endswith("_pct") and "gain" in field:
        allowed = f"a number in [0, {MAX_GAIN_ERROR_PCT:g}) (percent)"
    given = value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                _fail(src, field, f"must be {allowed}, got {_show(given)}")
        else:
            _fail(src, field, f"must be {allowed}, got {_show(given)}")
    value = float(value)
    bad = not math.isfinite(value) or value < 0 or (field in POSITIVE and value == 0)
    if field.endswith("_pct") and "gain" in field:
        bad = bad or value >= MAX_GAIN_ERROR_PCT
    if bad:
        _fail(src, field, f"must be {allowed}, got {_show(given)}")
    return value


def _read(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the profile ({exc.strerror or exc})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ProfileError(f"{path}: not valid YAML{where} ({getattr(exc, 'problem', None) or 'parse error'})") from None
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: a profile is a mapping of fields to values, got {type(raw).__name__}")
    return raw


def parse_profile(raw: dict, src: str | Path = "<profile>", _seen: tuple = ()) -> Profile:
    """Validate a profile mapping (``base:`` names a packaged profile to start from)."""
    unknown = [k for k in raw if k not in ALLOWED_KEYS]
    if unknown:
        _fail(src, str(unknown[0]), f"unknown field; allowed: {', '.join(ALLOWED_KEYS)}")
    values: dict = {}
    base = raw.get("base")
    if base is not None:
        names = packaged_profiles()
        if not isinstance(base, str) or base not in names:
            _fail(src, "base", f"must name a packaged profile ({', '.join(names)}), got {_show(base)}")
        if base in _seen:
            _fail(src, "base", f"profile {base!r} is its own base")
        values = packaged(base, _seen + (base,)).as_dict()
        values.pop("name")  # a derived profile names itself
    values.update({k: v for k, v in raw.items() if k != "base"})
    missing = [f for f in FIELD_NAMES if f not in values]
    if missing:
        _fail(src, missing[0], "missing (every field must be given, or start from a packaged profile with `base:`)")
    out = {}
    for name in FIELD_NAMES:
        value = values[name]
        if name in NUMBER_FIELDS:
            out[name] = _number(src, name, value)
        elif name == "typical_figures":
            if value is None:
                value = []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                _fail(src, name, f"must be a list of field names, got {_show(value)}")
            wrong = [v for v in value if v not in NUMBER_FIELDS]
            if wrong:
                _fail(src, name, f"{wrong[0]!r} is not a numeric field; allowed: {', '.join(NUMBER_FIELDS)}")
            out[name] = tuple(value)
        else:
            if not isinstance(value, str) or not value.strip():
                _fail(src, name, f"must be a non-empty text, got {_show(value)}")
            out[name] = " ".join(value.split())
    if out["systematic_errors"] not in SYSTEMATIC:
        _fail(src, "systematic_errors", f"must be one of {', '.join(SYSTEMATIC)}, got {_show(out['systematic_errors'])}")
    if not NAME_PATTERN.match(out["name"]):
        _fail(src, "name", f"must be lower-case letters, digits, '-' or '_' (it names a folder), got {_show(out['name'])}")
    return Profile(**out)


def packaged(name: str, _seen: tuple = ()) -> Profile:
    path = packaged_profiles()[name]
    return parse_profile(_read(path), path, _seen or (name,))


def load_profile(profile: str | Path | Profile) -> Profile:
    """A packaged profile by name, a YAML file, or a :class:`Profile` as it is."""
    if isinstance(profile, Profile):
        return profile
    names = packaged_profiles()
    if isinstance(profile, str) and profile in names:
        return packaged(profile)
    path = Path(profile)
    if path.suffix.lower() in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ProfileError(f"--profile {profile}: no such file; give a YAML file or a packaged profile "
                               f"({', '.join(names)})")
        return parse_profile(_read(path), path)
    raise ProfileError(f"--profile {profile!r}: not a packaged profile or a YAML file; choose from {', '.join(names)} "
                       "or give a file")
