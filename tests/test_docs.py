"""docs/architecture.md and chapters/methods.qmd tell the truth about the code: every
``src/layerwise/<module>.py:<name>`` they name exists, the metric list is the schema registry, every
registry definition exists, and every tidy metric a study writes is declared in the registry."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from layerwise.core import schema

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "docs" / "architecture.md"
METHODS = ROOT / "chapters" / "methods.qmd"
REF = re.compile(r"`src/layerwise/([\w/]+)\.py:([\w.]+)`")
SRC = ROOT / "src" / "layerwise"
#: a module's short name (the registry's ``definition`` says ``metrics.effective_rank``) -> its dotted path
SHORT = {p.stem: ".".join(p.relative_to(SRC).with_suffix("").parts) for p in SRC.rglob("*.py")
         if p.stem != "__init__" and "resources" not in p.parts}
SHORT.update({p.parent.name: ".".join(p.parent.relative_to(SRC).parts) for p in SRC.rglob("*/*/__init__.py")})  # claims


def _resolve(module: str, qualname: str):
    """``module``: a path under src/layerwise (``measure/metrics``) or a short name (``metrics``)."""
    obj = importlib.import_module("layerwise." + (module.replace("/", ".") if "/" in module else SHORT[module]))
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def test_every_named_function_exists():
    refs = REF.findall(ARCH.read_text(encoding="utf-8")) + REF.findall(METHODS.read_text(encoding="utf-8"))
    assert len(refs) >= 10
    missing = []
    for module, name in refs:
        try:
            _resolve(module, name)
        except (ImportError, AttributeError, KeyError):
            missing.append(f"{module}.py:{name}")
    assert missing == []


def test_the_erank_trace_runs_from_params_to_chart():
    text = ARCH.read_text(encoding="utf-8")
    trace = text[text.index("## One statistic traced"):]
    steps = REF.findall(trace.split("\n## ")[0])
    modules = [m.rpartition("/")[2] for m, _ in steps]
    assert modules[0] == "config" and "extract" in modules and "metrics" in modules and modules[-1] == "charts"


def test_the_metric_list_is_the_registry():
    text = ARCH.read_text(encoding="utf-8")
    start, end = text.index("<!-- registry:start -->"), text.index("<!-- registry:end -->")
    assert text[start + len("<!-- registry:start -->"):end].strip() == schema.registry_markdown().strip(), \
        "regenerate the table: python -c 'from layerwise.core import schema; print(schema.registry_markdown())'"


@pytest.mark.parametrize("spec", schema.REGISTRY, ids=lambda m: m.name)
def test_every_registry_definition_exists_and_is_in_methods(spec):
    module, _, name = spec.definition.partition(".")
    if module == "numpy":
        return
    fn = _resolve(module, name)
    assert fn.__doc__, spec.definition
    assert spec.family.split()[0].lower() in METHODS.read_text(encoding="utf-8").lower(), spec.family


def test_lookup_resolves_suffixes_and_rejects_unknown_names():
    assert schema.lookup("erank_content").name == "erank"
    assert schema.lookup("test_p_holm_token_cosine_var_content").name == "test_p_holm"
    assert schema.lookup("probe_acc_mean").name == "probe_acc"
    with pytest.raises(KeyError):
        schema.lookup("erank_mean")
    with pytest.raises(KeyError):
        schema.lookup("no_such_metric")


def test_the_module_map_lists_every_module_once_by_its_folder():
    text = ARCH.read_text(encoding="utf-8")
    table = text[text.index("## Module map"):].split("\n## ")[0]
    listed = re.findall(r"^\| `([\w/]+\.py)` \|", table, flags=re.M)
    modules = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                     if p.stem != "__init__" and "resources" not in p.parts)
    assert sorted(listed) == modules
    assert len(listed) == len(set(listed))


#: a backticked name in the module map's "main API" column: ``name``, ``a.b``, ``name(args)``, ``name(...) -> X``
API_NAME = re.compile(r"^([A-Za-z_]\w*(?:\.\w+)*)(?:\(.*\))?(?: -> .*)?$")


def _cli_commands() -> set[str]:
    import argparse

    from layerwise import cli

    parser = cli.build_parser()
    return {name for a in parser._actions if isinstance(a, argparse._SubParsersAction) for name in a.choices}


def _names_something(module: str, name: str) -> bool:
    """Whether ``name`` is an attribute of ``layerwise.<module>`` or names a layerwise module (``claims``,
    ``measure.extract``) or an attribute of one (``prose_seeds.effect_marks``)."""
    head, _, rest = name.partition(".")
    for dotted, path in ((module, name), (SHORT.get(head), rest), (f"{head}.{rest.partition('.')[0]}",
                                                                    rest.partition(".")[2])):
        try:
            obj = importlib.import_module(f"layerwise.{dotted}")
            for part in filter(None, path.split(".")):
                obj = getattr(obj, part)
            return True
        except (ImportError, AttributeError, TypeError, ValueError):
            continue
    return False


def test_the_module_map_names_only_what_exists():
    """Every module the map names exists (above: exactly the modules of src/layerwise), and so does every
    name of its "main API" column: an attribute of the row's module (or of the layerwise module it names,
    ``prose_seeds.effect_marks``); for ``cli.py``, a subcommand."""
    text = ARCH.read_text(encoding="utf-8")
    table = text[text.index("## Module map"):].split("\n## ")[0]
    rows = re.findall(r"^\| `([\w/]+)\.py` \|[^|]*\|(.*)\|\s*$", table, flags=re.M)
    missing = []
    for path, api in rows:
        module = path.replace("/", ".")
        for token in re.findall(r"`([^`]+)`", api):
            m = API_NAME.match(token)
            if not m or token.endswith(".py"):
                continue
            found = m.group(1) in _cli_commands() if module == "cli" else _names_something(module, m.group(1))
            if not found:
                missing.append(f"{path}.py: {token}")
    assert missing == []


def test_the_layers_table_is_the_import_contract():
    """The folders of the "Layers" table, bottom to top, are the layers of pyproject.toml's contract."""
    import tomllib

    text = ARCH.read_text(encoding="utf-8")
    table = text[text.index("## Layers"):].split("\n## ")[0]
    folders = re.findall(r"^\| `(\w+)/` \|", table, flags=re.M)
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    groups = [{f.strip() for f in layer.split("|")} for layer in reversed(layers)]   # bottom to top
    listed = folders + ["cli"]
    assert [set(listed[sum(map(len, groups[:i])):][:len(g)]) for i, g in enumerate(groups)] == groups
    assert {p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()} == set(folders)
