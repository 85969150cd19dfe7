"""Bad design input: one line naming the file, the field and what is allowed, before any
solve; never a traceback, never a value silently accepted. Real files, no mocks."""

from __future__ import annotations

import copy
import math
import re
import time

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from pybamm_factory.cli import main
from pybamm_factory.design import MAX_SAMPLES, DesignError, build_manifest, load_design, load_yaml, parse_design, read_design_file
from pybamm_factory.design.spec import MAX_DESIGN_BYTES, REQUIRED_KEYS
from tests.conftest import REPO

PACKAGED = sorted((REPO / "src" / "pybamm_factory" / "designs").glob("*.yaml"))
SMOKE_TEXT = (REPO / "src" / "pybamm_factory" / "designs" / "smoke.yaml").read_text()
SPLITS_LINE = "splits: {train: 0.5, val: 0.0, test: 0.5}"


def _sub(old: str, new: str, text: str = SMOKE_TEXT) -> str:
    assert old in text, f"the smoke design no longer holds {old!r}"
    return text.replace(old, new, 1)


def _bomb(levels: int = 9) -> str:
    """Billion laughs: each level is nine aliases of the one before (9**9 strings)."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        prev, name = chr(96 + i), chr(97 + i)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


# (label, file content (str or bytes), the field the message names, text the message holds)
BAD_INPUT = [
    ("non-UTF-8 bytes", SMOKE_TEXT.encode() + b"# caf\xe9\n", None, "not UTF-8 text (byte 0xe9"),
    ("number as text: stop_soh", _sub("stop_soh: 0.6", 'stop_soh: "0.6"'), "aging.stop_soh", "expected a number"),
    ("number as text: splits.train", _sub(SPLITS_LINE, 'splits: {train: "0.5", val: 0.0, test: 0.5}'),
     "splits.train", "expected a number"),
    ("negative rpt_rest_min", _sub("rpt_rest_min: 10", "rpt_rest_min: -5"), "aging.rpt_rest_min", "must lie in (0, 1440]"),
    ("word rpt_rest_min", _sub("rpt_rest_min: 10", "rpt_rest_min: ten"), "aging.rpt_rest_min", "expected a number"),
    ("negative points_per_decade", _sub("points_per_decade: 6", "points_per_decade: -6"),
     "eis.points_per_decade", "allowed: 1..100"),
    ("word points_per_decade", _sub("points_per_decade: 6", "points_per_decade: six"),
     "eis.points_per_decade", "allowed: 1..100"),
    ("zero points_per_decade", _sub("points_per_decade: 6", "points_per_decade: 0"),
     "eis.points_per_decade", "allowed: 1..100"),
    ("unknown stratify column", _sub(SPLITS_LINE, "splits: {train: 0.5, val: 0.0, test: 0.5, stratify: capacity}"),
     "splits.stratify", "is not a manifest column; allowed: protocol_id, SEI solvent diffusivity"),
    ("stratify bins not a number", _sub(SPLITS_LINE, "splits: {train: 0.5, val: 0.0, test: 0.5, "
                                                     "stratify: 'ambient_temperature_k:many'}"),
     "splits.stratify", "bins after ':' must be an integer in 2..100"),
    ("unknown holdout column", _sub(SPLITS_LINE, "splits: {train: 0.5, val: 0.0, test: 0.5, "
                                                 "holdout: {column: soh_final, side: high, fraction: 0.3}}"),
     "splits.holdout.column", "is not a numeric manifest column; allowed:"),
    ("holdout on a text column", _sub(SPLITS_LINE, "splits: {train: 0.5, val: 0.0, test: 0.5, "
                                                   "holdout: {column: protocol_id}}"),
     "splits.holdout.column", "is not a numeric manifest column"),
    ("stratify and holdout together", _sub(SPLITS_LINE, "splits: {train: 0.5, val: 0.0, test: 0.5, stratify: protocol_id, "
                                                        "holdout: {column: ambient_temperature_k}}"),
     "splits.stratify", "set stratify or holdout, not both"),
    ("huge mesh domain", _sub("r_p: 8}", "r_p: 10000000}"), "mesh.r_p", "expected an integer in 2..2,000"),
    ("huge mesh in total", _sub("mesh: {x_n: 6, x_s: 4, x_p: 6, r_n: 8, r_p: 8}",
                                "mesh: {x_n: 1500, x_s: 4, x_p: 1500, r_n: 20, r_p: 20}", _sub("model: spme", "model: dfn")),
     "mesh", "grid points, over the limit of 50,000"),
    ("model option PyBaMM rejects", _sub("SEI: solvent-diffusion limited", "SEI: magic"),
     "model_options", "'magic' is not recognized in option 'SEI'. Possible values are ["),
    ("model option that is not text", _sub("SEI porosity change: \"true\"", "SEI porosity change: true"),
     "model_options.SEI porosity change", "expected text"),
    ("duplicate top-level key", _sub("model: spme", "model: spme\nmodel: dfn"), "model", "duplicate key (lines 5 and 6)"),
    ("duplicate nested key", _sub("  stop_soh: 0.6", "  stop_soh: 0.6\n  stop_soh: 0.9"), "aging.stop_soh", "duplicate key"),
    ("duplicate key in a flow mapping", _sub("r_p: 8}", "r_p: 8, x_n: 12}"), "mesh.x_n", "duplicate key"),
    ("duplicate key in a list item", _sub("    lower_voltage_v: 2.5", "    lower_voltage_v: 2.5\n    lower_voltage_v: 2.7"),
     "protocols[0].lower_voltage_v", "duplicate key"),
    ("eis.enabled as text", _sub("eis:\n", 'eis:\n  enabled: "no"\n'), "eis.enabled", "expected true or false"),
    ("eis.f_max_hz unphysical", _sub("f_max_hz: 1000.0", "f_max_hz: 1e30"), "eis.f_max_hz", "must lie in [1e-05, 1e+06] Hz"),
    ("eis.f_min_hz above f_max_hz", _sub("f_min_hz: 0.01", "f_min_hz: 5000"), "eis.f_min_hz", "must be < eis.f_max_hz"),
    ("eis.socs not a list", _sub("socs: [0.5]", "socs: 0.5"), "eis.socs", "expected a non-empty list"),
    ("fixed ambient temperature", _sub("varied:", "fixed:\n  Ambient temperature [K]: 310\nvaried:"),
     "fixed.Ambient temperature [K]", "is set per sample from ambient_temperatures_c"),
    ("varied initial temperature", _sub("varied:\n", "varied:\n  Initial temperature [K]: {low: 290, high: 310}\n"),
     "varied.Initial temperature [K]", "is set per sample from ambient_temperatures_c"),
    ("name that climbs out of datasets/", _sub("name: smoke", "name: ../../../x"), "name", "is not allowed"),
    ("absolute name", _sub("name: smoke", "name: /tmp/x"), "name", "is not allowed"),
    ("hidden name", _sub("name: smoke", "name: .hidden"), "name", "is not allowed"),
    ("name too long", _sub("name: smoke", "name: " + "a" * 65), "name", "is not allowed"),
    ("alias bomb", _bomb(), None, "the YAML expands to more than 100,000 values"),
    ("file over the size limit", SMOKE_TEXT + "# " + "x" * MAX_DESIGN_BYTES + "\n", None, "over the 1 MiB limit"),
    ("max_cycles absurd", _sub("max_cycles: 6", "max_cycles: 100000000000"), "aging.max_cycles", "expected an integer in 1.."),
    ("integer too large for a float", _sub("stop_soh: 0.6", "stop_soh: " + "9" * 400), "aging.stop_soh",
     "expected a finite number"),
    ("protocol id not text", _sub("- id: cccv-cc", "- id: [a]"), "protocols[0].id", "expected a name"),
    ("value with a line break", _sub("name: smoke", 'name: "two\\nlines"'), "name", "is not allowed"),
    ("control character", SMOKE_TEXT + "\x07\n", None, "not valid YAML"),
    ("impossible date", _sub("name: smoke", "name: smoke\nlicense: 2020-02-30"), None,
     "cannot read the value '2020-02-30' as timestamp"),
    ("tagged value YAML cannot convert", _sub("stop_soh: 0.6", "stop_soh: !!float abc"), None, "cannot read the value 'abc'"),
    ("integer past Python's digit limit", _sub("stop_soh: 0.6", "stop_soh: " + "9" * 5000), None, "not valid YAML at line"),
    ("stratify bins in another script", _sub(SPLITS_LINE, "splits: {train: 0.5, val: 0.0, test: 0.5, "
                                                          "stratify: 'ambient_temperature_k:\u00b2'}"),
     "splits.stratify", "bins after ':' must be an integer"),
    ("README-style [m] in a flow mapping", _sub("varied:\n", "fixed: {Initial SEI thickness [m]: 5.0e-9}\nvaried:\n"),
     None, "(inside {...} quote a name with [units]"),
]


def _write(tmp_path, content) -> str:
    path = tmp_path / "bad.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def _check_message(text: str, path: str, fld: str | None, expected: str) -> None:
    assert "\n" not in text and "\r" not in text, "one line"
    assert text.startswith(path), "the message names the file"
    if fld is not None:
        assert f"field '{fld}'" in text, text
    assert expected in text, text


@pytest.mark.parametrize("label,content,fld,expected", BAD_INPUT, ids=[b[0] for b in BAD_INPUT])
def test_bad_design_input_is_one_design_error(label, content, fld, expected, tmp_path):
    path = _write(tmp_path, content)
    with pytest.raises(DesignError) as err:
        load_design(path)
    _check_message(str(err.value), path, fld, expected)


@pytest.mark.parametrize("label,content,fld,expected", BAD_INPUT, ids=[b[0] for b in BAD_INPUT])
def test_cli_design_prints_one_error_line_and_exits_2(label, content, fld, expected, tmp_path):
    path = _write(tmp_path, content)
    result = CliRunner().invoke(main, ["design", "--design", path, "-n", "2", "-o", str(tmp_path / "out")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}"), result.output
    _check_message(lines[0][len("error: "):], path, fld, expected)
    assert not (tmp_path / "out").exists(), "nothing is written for a bad design"


def test_manifest_builder_caps_samples_and_checks_the_seed():
    design = load_design("smoke")
    with pytest.raises(DesignError, match=r"samples \(-n/--samples\): expected an integer in 1\.\.1,000,000"):
        build_manifest(design, MAX_SAMPLES + 1, 7)
    with pytest.raises(DesignError, match=r"samples"):
        build_manifest(design, 0, 7)
    with pytest.raises(DesignError, match=r"seed \(--seed\): expected a non-negative integer"):
        build_manifest(design, 2, -1)
    assert len(build_manifest(design, 2, 7)) == 2


def test_alias_bomb_is_refused_fast_and_small_aliases_still_load(tmp_path):
    path = _write(tmp_path, _bomb())
    started = time.perf_counter()
    with pytest.raises(DesignError, match="alias bomb"):
        read_design_file(path)
    assert time.perf_counter() - started < 5, "refused before anything expands"
    # a recursive alias is refused too (it would expand forever)
    with pytest.raises(DesignError):
        load_yaml("a: &a [*a]\n", "recursive.yaml")
    # anchors and aliases within the limit are ordinary YAML (a dumped design may hold them)
    assert load_yaml("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}


def test_yaml_1_2_floats_are_numbers_and_quoted_text_stays_text(tmp_path):
    data = load_yaml("a: 5e-20\nb: 1E5\nc: -2.5E+3\nd: .5e3\ne: 1.5e3\nf: 2.5e-20\ng: 12\nh: '5e-20'\ni: 0x10\nj: 1_000\n")
    assert data["a"] == 5e-20 and data["b"] == 1e5 and data["c"] == -2500.0 and data["d"] == 500.0
    assert data["e"] == 1500.0 and data["f"] == 2.5e-20
    assert all(isinstance(data[k], float) for k in "abcdef")
    assert data["g"] == 12 and isinstance(data["g"], int)
    assert data["h"] == "5e-20", "a quoted value stays text"
    assert data["i"] == 16 and data["j"] == 1000
    # and it reaches the design: an exponent without a dot is a bound, not a string
    design = load_design(_write(tmp_path, _sub("low: 2.5e-20, high: 2.5e-19", "low: 5e-20, high: 5E-19")))
    dist = design.varied["SEI solvent diffusivity [m2.s-1]"]
    assert (dist.low, dist.high) == (5e-20, 5e-19)


def test_duplicate_keys_that_differ_only_as_text_are_refused():
    with pytest.raises(DesignError, match="duplicate key"):
        load_yaml("mesh: {1: a, 0x1: b}\n", "dupes.yaml")


def test_model_option_error_is_never_empty(tmp_path):
    path = _write(tmp_path, _sub("SEI: solvent-diffusion limited", "SEI: magic"))
    with pytest.raises(DesignError) as err:
        load_design(path)
    reason = str(err.value).split("field 'model_options': ", 1)[1]
    assert reason.strip() and reason.startswith("'magic' is not recognized")


def test_valid_names_are_accepted():
    raw = load_yaml(SMOKE_TEXT)
    for name in ("my-study", "lgm50t_aging.v2", "A1", "x" * 64):
        assert parse_design({**raw, "name": name}, "names.yaml").name == name


@pytest.mark.parametrize("path", PACKAGED, ids=[p.stem for p in PACKAGED])
def test_every_packaged_design_still_loads(path):
    design = load_design(path)
    assert design.name == path.stem


def _yaml_blocks():
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    blocks = []
    for f in files:
        text = f.read_text(encoding="utf-8")
        for m in re.finditer(r"^```ya?ml[^\n]*\n(.*?)^```", text, re.S | re.M):
            line = text[: m.start()].count("\n") + 1
            blocks.append((f"{f.relative_to(REPO)}:{line}", m.group(1)))
    return blocks


def test_every_yaml_block_in_the_docs_loads_and_complete_designs_validate():
    blocks = _yaml_blocks()
    assert blocks, "the README has at least one design example"
    for where, block in blocks:
        data = load_yaml(block, where)  # raises DesignError naming the block on invalid YAML
        if isinstance(data, dict) and all(key in data for key in REQUIRED_KEYS):
            parse_design(data, where)


# --- property test: random mutations of the smoke design ---------------------------------

SMOKE_RAW = load_yaml(SMOKE_TEXT)


def _paths(node, prefix=()):
    """(path, is_leaf) for every value under ``node``."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        path = prefix + (key,)
        yield path, not isinstance(value, (dict, list))
        yield from _paths(value, path)


ALL_PATHS = [path for path, _ in _paths(SMOKE_RAW)]  # any key or list item may be deleted
LEAVES = [path for path, leaf in _paths(SMOKE_RAW) if leaf]  # any leaf value may be replaced

REPLACEMENTS = st.one_of(
    st.text(max_size=30),
    st.integers(max_value=-1),
    st.floats(max_value=-1e-12, allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, 1e30, 10 ** 30, 10 ** 400, 2 ** 63, float("inf"), float("nan")]),
    st.integers(min_value=10 ** 6),
    st.just([]),
    st.just({}),
    st.none(),
    st.booleans(),
)


YAML_PIECES = st.sampled_from(list("abc019-+.eE:[]{},&*!#|>'\"\n \t?%@`~<=_") + [
    "!!int ", "!!float ", "!!timestamp ", "!!binary ", "2020-02-30", "<<: ", "\x00", "\u00e9", "\ufeff", "0x", "1_0",
    ".inf", "~", "null", "yes", "name: ", "aging: ", "eis: ", "&a ", "*a"])


@settings(max_examples=300, deadline=None, database=None)
@given(text=st.lists(YAML_PIECES, max_size=60).map("".join))
def test_random_yaml_text_loads_or_gives_one_design_error(text):
    try:
        data = load_yaml(text, "random.yaml")
        parse_design(data, "random.yaml")
    except DesignError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("random.yaml"), str(exc)


@pytest.fixture(scope="module")
def mutation_file(tmp_path_factory):
    return tmp_path_factory.mktemp("mutations") / "mutated.yaml"


@settings(max_examples=150, deadline=None, database=None)  # no .hypothesis/ folder in the checkout
@given(data=st.data())
def test_random_mutations_load_or_give_one_design_error(mutation_file, data):
    raw = copy.deepcopy(SMOKE_RAW)
    delete = data.draw(st.booleans(), label="delete")
    path = data.draw(st.sampled_from(ALL_PATHS if delete else LEAVES), label="path")
    parent = raw
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(REPLACEMENTS, label="value")
    mutation_file.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    try:
        design = load_design(mutation_file)
    except DesignError as exc:
        text = str(exc)
        assert "\n" not in text and "\r" not in text and text.startswith(str(mutation_file)), text
    else:
        assert design.name and math.isfinite(design.aging.stop_soh)


def test_normal_with_its_mass_outside_the_bounds_is_refused(tmp_path):
    """A truncated normal whose mean lies far outside low..high gave infinities in the manifest
    and a run in which every sample failed; the parser refuses it in one line."""
    raw = yaml.safe_load(SMOKE_TEXT)
    raw["varied"]["SEI solvent diffusivity [m2.s-1]"] = {"distribution": "normal", "mean": 1.0e-18, "std": 1.0e-21,
                                                         "low": 2.5e-20, "high": 2.5e-19}
    path = tmp_path / "normal.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(DesignError, match=r"varied\.SEI solvent diffusivity.*mass inside low\.\.high"):
        load_design(path)
    raw["varied"]["SEI solvent diffusivity [m2.s-1]"]["mean"] = 1.0e-19  # inside: fine
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    load_design(path)
