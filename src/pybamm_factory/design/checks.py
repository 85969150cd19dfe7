"""Checks of single values in a design, each failing with a one-line :class:`DesignError`
that names the file and the field: numbers, integers, ranges, choices, mapping keys, and
a sampling distribution. The section parsers (:mod:`.sections`) and the protocol kinds
(:mod:`pybamm_factory.protocols`) build on them.
"""

from __future__ import annotations

import math

from .schema import DISTRIBUTIONS, MIN_TRUNCATED_MASS, DesignError, Distribution, yaml_keys


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


def _choice(src, fld, value, allowed) -> str:
    if not isinstance(value, str) or value not in allowed:
        _fail(src, fld, f"{_show(value)} is not allowed; allowed: {', '.join(allowed)}")
    return value


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def _distribution(src, fld, spec) -> Distribution:
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        v = _number(src, fld, spec)
        return Distribution("uniform", v, v)
    if not isinstance(spec, dict):
        _fail(src, fld, "expected a number or a mapping with 'distribution', 'low', 'high'")
    _check_keys(src, fld, spec, yaml_keys(Distribution))
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

