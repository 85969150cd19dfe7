"""Design files: load a YAML design, validate it, and hold it as plain dataclasses.

Every validation failure raises :class:`DesignError` with one line that names the file,
the field and what is allowed, so the CLI can print it without a traceback.

The pieces live beside this module: :mod:`.schema` (the dataclasses and limits; a
section's allowed keys are its dataclass's fields), :mod:`.checks` (checks of single
values) and :mod:`.sections` (one parser per section of the file). This module composes
them (:func:`parse_design`), reads the YAML, and keeps every name importable from here.
"""

from __future__ import annotations

import copy
import re
from importlib import resources
from pathlib import Path

import yaml

from .checks import (  # noqa: F401 - re-exported: the protocol kinds build on these
    _bounded,
    _check_keys,
    _choice,
    _distribution,
    _fail,
    _first_line,
    _integer,
    _mapping,
    _number,
    _show,
)
from .schema import (  # noqa: F401 - re-exported: the stages import these from design.spec
    CONTACT_RESISTANCE,
    MAX_SAMPLES,
    MODELS,
    REQUIRED_KEYS,
    SAMPLERS,
    Aging,
    Design,
    DesignError,
    Distribution,
    Protocol,
    SplitSettings,
)
from .sections import (  # noqa: F401 - re-exported: the stages import these from design.spec
    _aging,
    _ambient_temperatures,
    _conditions_sampler,
    _correlations,
    _eis,
    _failures,
    _fixed,
    _mesh,
    _model_options,
    _name,
    _observe,
    _parameter_set_info,
    _protocols,
    _solver,
    _splits,
    _top_level,
    _varied,
    parameter_values,
)

# Limits on the file itself, each refused in one line before anything is parsed.
MAX_DESIGN_BYTES = 1024 ** 2  # a design is a few kB; read no more than this
MAX_YAML_NODES = 100_000  # values in the document with aliases expanded (alias bombs)
MAX_YAML_DEPTH = 64  # nesting levels (a design needs about five)
_YAML_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_design(raw: dict, src: str = "<design>") -> Design:
    """Validate a design mapping (as read from YAML) and return a :class:`Design`.

    The sections are checked in this order (the first problem is the message), each by
    its parser in :mod:`.sections`."""
    _top_level(src, raw)
    name = _name(src, raw["name"])
    model = _choice(src, "model", raw["model"], MODELS)
    pset = _parameter_set_info(src, raw["parameter_set"])
    eis_on = raw.get("eis", {}).get("enabled", True) is not False
    options = _model_options(src, raw.get("model_options", {}), model, eis_on)
    mesh = _mesh(src, model, raw.get("mesh", {}))
    fixed = _fixed(src, raw, pset["values"], options)
    varied = _varied(src, raw, pset["values"], options)
    protocols = _protocols(src, raw["protocols"], pset)
    temperatures_k = _ambient_temperatures(src, raw["ambient_temperatures_c"])
    aging = _aging(src, raw["aging"], pset, protocols)
    eis = _eis(src, raw.get("eis", {}))
    sampler = _choice(src, "sampler", raw.get("sampler", "lhs"), SAMPLERS)
    correlations = _correlations(src, raw.get("correlations"), varied, sampler)
    solver = _solver(src, raw.get("solver", {}))
    splits = _splits(src, raw.get("splits", {}), varied, protocols)
    conditions_sampler = _conditions_sampler(src, raw.get("conditions_sampler", "lhs"), protocols)
    cpd = _integer(src, "conditions_per_cell_design", raw.get("conditions_per_cell_design", 1), 1, MAX_SAMPLES)
    observe = _observe(src, raw.get("observe", []))
    failures = _failures(src, raw.get("failures", {}), varied)
    return Design(
        name=name, model=model, parameter_set=raw["parameter_set"], model_options=options, mesh=mesh, fixed=fixed,
        varied=varied, protocols=protocols, ambient_temperatures_k=temperatures_k, conditions_per_cell_design=cpd,
        aging=aging, eis=eis, sampler=sampler, solver=solver, splits=splits, raw=copy.deepcopy(raw),
        correlations=correlations, source=src, description=raw.get("description", ""),
        parameter_set_source=raw.get("parameter_set_source", ""), license=raw.get("license", "CC-BY-4.0"),
        conditions_sampler=conditions_sampler, observe=observe, failures=failures,
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


def with_base(raw, src: str, _seen: tuple = ()) -> dict:
    """A design that starts ``base: NAME|FILE`` is that design with this file's top-level
    keys in place of its own (a key given here replaces the base's whole section). The
    result holds no ``base``: the dataset records, and hashes, the design as run."""
    if not isinstance(raw, dict) or "base" not in raw:
        return raw
    base = raw["base"]
    if not isinstance(base, str) or not base.strip():
        raise DesignError(f"{src}: field 'base': expected a packaged design name or a design file, got {base!r}")
    shipped = packaged_designs()
    if base in shipped:
        path = shipped[base]
    else:
        path = Path(base) if Path(base).is_absolute() else Path(src).parent / base
        if not path.is_file():
            raise DesignError(f"{src}: field 'base': no design file {path}, and not a packaged design; "
                              f"packaged: {', '.join(sorted(shipped))}")
    if path.resolve() in _seen:
        raise DesignError(f"{src}: field 'base': '{base}' leads back to itself")
    merged = dict(with_base(read_design_file(path), str(path), (*_seen, path.resolve())))
    merged.update({k: v for k, v in raw.items() if k != "base"})
    return merged


def load_design(design: str | Path | None = None) -> Design:
    """Read and validate a design file (YAML, loaded safely) or packaged design name; a
    ``base:`` key starts it from another design (:func:`with_base`)."""
    path = resolve_design_path(design)
    return parse_design(with_base(read_design_file(path), str(path)), str(path))
