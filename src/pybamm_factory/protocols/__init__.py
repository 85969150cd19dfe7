"""Protocol kinds, registered by name: the one place the engine, the design parser, the
manifest and the card ask how a sample is cycled.

A kind is one module in this package holding a :class:`~.base.ProtocolKind` instance named
``KIND``; adding one means adding its module to ``MODULES`` (and its tests and docs).
The modules import nothing heavy at import time (PyBaMM is imported when steps are built).
"""

from __future__ import annotations

from importlib import import_module

from ..design.spec import DesignError, Protocol
from .base import ProtocolKind

MODULES = ("cccv_cc", "soc_window", "multistep_charge", "calendar_storage", "drive_cycle")
DEFAULT_KIND = "cccv-cc"
_KINDS: dict[str, ProtocolKind] = {}


def kinds() -> dict[str, ProtocolKind]:
    """Every registered kind by name."""
    if not _KINDS:
        for module in MODULES:
            kind = import_module(f"{__name__}.{module}").KIND
            _KINDS[kind.name] = kind
    return _KINDS


def get_kind(name: str) -> ProtocolKind:
    known = kinds()
    if name not in known:
        raise KeyError(f"unknown protocol kind '{name}'; known: {', '.join(sorted(known))}")
    return known[name]


def parse_protocol(src: str, fld: str, spec, cutoffs: dict) -> Protocol:
    """Validate one ``protocols[i]`` block with its kind (``kind``, default cccv-cc)."""
    if not isinstance(spec, dict):
        raise DesignError(f"{src}: field '{fld}': expected a mapping")
    name = spec.get("kind", DEFAULT_KIND)
    if not isinstance(name, str) or name not in kinds():
        raise DesignError(f"{src}: field '{fld}.kind': '{name}' is not a protocol kind; known: {', '.join(sorted(kinds()))}")
    return kinds()[name].parse(src, fld, spec, cutoffs)


__all__ = ["DEFAULT_KIND", "MODULES", "Protocol", "ProtocolKind", "get_kind", "kinds", "parse_protocol"]
