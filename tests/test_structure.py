"""The codebase's shape: no import loop inside ``pyramid/``, selectors independent of training, no
selector name hard-coded under ``app/``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "pyramid"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every pyramid module ``path`` imports, at module level or inside functions."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            if t in known and t != name:
                out.add(t)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(path, name, known) for name, path in mods.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        colour[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if colour.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if colour.get(m) is None:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        colour[n] = 2
        return None

    for n in sorted(graph):
        if colour.get(n) is None:
            found = visit(n)
            if found:
                return found
    return None


def test_no_module_of_pyramid_imports_another_in_a_loop():
    graph = _graph()
    # A package's __init__ importing its own submodules is how packages work, not a loop; a submodule
    # importing its package back would be one.
    for name in list(graph):
        if (PKG / Path(*name.split(".")[1:]) / "__init__.py").exists():
            graph[name] = {m for m in graph[name] if not m.startswith(name + ".")}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_loop_detector_finds_a_loop():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


ALLOWED_FOR_SELECTORS = {"pyramid.core.selectors.base", "pyramid.core.artifacts", "pyramid.core.attention", "pyramid.core.loading",
                         "pyramid.core.selectors", "pyramid.core.jit"}  # jit: compiled loops (numba, any install)


def test_selector_files_import_only_the_base_artifacts_the_kernel_and_loading():
    graph = _graph()
    for name, deps in graph.items():
        if name.startswith("pyramid.core.selectors.") and name != "pyramid.core.selectors.base":
            # a selector may build on another selector's file (core-set pooling on core-set)
            extra = {d for d in deps if d not in ALLOWED_FOR_SELECTORS and not d.startswith("pyramid.core.selectors.")}
            assert not extra, f"{name} imports {sorted(extra)}"


def test_importing_a_selector_does_not_import_training():
    code = ("import sys, pyramid.core.selectors.coreset; "
            "print(','.join(sorted(m for m in sys.modules if m.startswith('pyramid.'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = set(out.stdout.strip().split(","))
    assert not {m for m in loaded if m.startswith("pyramid.training")}, loaded
    assert not loaded & {"pyramid.core.encoder", "pyramid.classifier", "pyramid.analysis.evaluation"}, loaded


def test_no_selector_name_is_hard_coded_under_app():
    from pyramid.core.selectors import SELECTORS

    offenders = []
    for path in list((ROOT / "app").rglob("*.py")) + [ROOT / "streamlit_app.py"]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in SELECTORS:
                offenders.append(f"{path.name}:{node.lineno} {node.value!r}")
    assert not offenders, offenders


def test_every_selector_is_one_registry_line_and_one_file():
    from pyramid.core.selectors import REGISTRY, SELECTORS, _ENTRIES

    assert len(_ENTRIES) == len(REGISTRY) == len(SELECTORS)
    for entry, cls in zip(_ENTRIES, REGISTRY):
        module = entry.split(":")[0]
        assert (PKG / "core" / "selectors" / f"{module}.py").is_file()
        assert cls.__module__ == f"pyramid.core.selectors.{module}"
    colours = [info.color for info in SELECTORS.values()]
    assert len(set(colours)) == len(colours)  # no two selectors share a colour
    for info in SELECTORS.values():
        assert info.label and info.short and info.description and info.cls.__doc__
        # the class is the algorithm only: its display text lives in the descriptor beside it
        assert not {"label", "short", "description", "color"} & set(vars(info.cls))


@pytest.mark.parametrize("trainer", ["train", "train-adapler", "train-trbert", "train-token-dropping"])
def test_trainer_commands_come_from_their_settings(trainer):
    import dataclasses

    from pyramid.cli import build_parser
    from pyramid.training import TRAINERS

    t = next(t for t in TRAINERS if t.name == trainer)
    parser = build_parser()
    args = parser.parse_args([trainer])
    for f in dataclasses.fields(t.settings):
        if f.metadata.get("cli"):
            assert getattr(args, f.name) == f.default, f.name  # each default lives in the settings only


def test_every_routing_is_one_registry_line_and_one_file():
    from pyramid.core.routing import ROUTINGS, _ENTRIES
    from pyramid.core.selectors import SELECTORS

    assert len(_ENTRIES) == len(ROUTINGS)
    for entry in _ENTRIES:
        module, cls = entry.split(":")
        assert (PKG / "core" / "routing" / f"{module}.py").is_file()
        assert ROUTINGS[getattr(__import__(f"pyramid.core.routing.{module}", fromlist=[cls]), cls).name]
    assert {info.routing for info in SELECTORS.values()} <= set(ROUTINGS)  # every selector names a known routing


def test_the_encoder_loop_has_no_selector_flags():
    """Routing lives in routing objects: the encoder asks the selector only what it reads and how it routes."""
    source = (PKG / "core" / "encoder.py").read_text(encoding="utf-8")
    for flag in ("rejoin_at_last_layer", "cross_layer_after_selection", "needs_attention_probs",
                 "accepts_significance", "significance_includes_self", "parked ="):
        assert flag not in source, flag


def test_no_trainer_reads_an_evaluation_file_as_training_input():
    """No evaluation text in any training input: every trainer's default training files (its ``data`` and
    ``--init``-like inputs) are disjoint from the files the result files and model cards measure on."""
    import dataclasses
    import json
    import os

    from pyramid.core.artifacts import ASSETS_DIR
    from pyramid.training import TRAINERS
    from pyramid.training.common import DEFAULT_DEV, EVALUATION_FILES

    measured = {os.path.normpath(f) for f in EVALUATION_FILES} | {os.path.normpath(DEFAULT_DEV)}
    for meta in (ASSETS_DIR / "results").glob("*.meta.json"):
        data = json.loads(meta.read_text(encoding="utf-8")).get("data")
        if data:
            measured.add(os.path.normpath(data))
    assert any("imdb" in m for m in measured) and any("sst2/dev" in m for m in measured)
    for trainer in TRAINERS:
        for f in dataclasses.fields(trainer.settings):
            if f.name not in ("data", "train", "texts"):
                continue
            default = f.default
            files = default if isinstance(default, (tuple, list)) else (default,)
            for path in files:
                assert os.path.normpath(str(path)) not in measured, f"{trainer.name} --{f.name} reads {path}"
                assert not os.path.basename(str(path)).startswith("dev."), f"{trainer.name} --{f.name} reads {path}"


# ---- guards of the encoder's interface with selectors (issue 41) ----------------------------------------------------

SELECTOR_INTERFACE = {"fixed_length", "selects_after", "reads", "routing", "select", "selection_flops"}
"""What the encoder loop and its observers may read from a selector: its facts and its two verbs."""

SELECTOR_BASE_PUBLIC = {"name", "fixed_length", "reads", "routing", "uses_retention", "uses_start_layer", "info",
                        "short", "label", "artifacts", "head", "selects_after", "select", "selection_flops"}
"""The public attributes of :class:`Selector`: the algorithm's facts, its verbs and its registry entry."""


def _selector_reads(source: str) -> set[str]:
    """Every attribute read from a selector in ``source``: on names ``sel``/``selector`` and on ``self.selector``,
    ``run.selector`` (the encoder's and the observers' ways to hold it), and every ``getattr`` on them."""
    names = set()

    def is_selector(node) -> bool:
        return (isinstance(node, ast.Name) and node.id in ("sel", "selector")) or (
            isinstance(node, ast.Attribute) and node.attr == "selector")

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and is_selector(node.value):
            names.add(node.attr)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr" and node.args and \
                is_selector(node.args[0]):
            names.add("getattr")
    return names


def test_the_encoder_reads_only_the_selector_interface():
    for path in (PKG / "core" / "encoder.py", PKG / "core" / "observers.py"):
        extra = _selector_reads(path.read_text(encoding="utf-8")) - SELECTOR_INTERFACE
        assert not extra, f"{path.name} reads {sorted(extra)} from a selector: put it in the selector's routing or " \
                          "descriptor, or in LayerReads"


def test_the_interface_guard_catches_a_new_flag():
    assert _selector_reads("x = self.selector.needs_keys\ny = sel.reads") == {"needs_keys", "reads"}
    assert "getattr" in _selector_reads("getattr(run.selector, 'new_flag', False)")


def test_the_selector_base_class_holds_the_algorithm_only():
    from pyramid.core.selectors import LearnedSelector, Selector

    public = {n for n in vars(Selector) if not n.startswith("_")}
    assert public == SELECTOR_BASE_PUBLIC, f"new on Selector: {sorted(public - SELECTOR_BASE_PUBLIC)}; gone: " \
                                           f"{sorted(SELECTOR_BASE_PUBLIC - public)}"
    learned = {n for n in vars(LearnedSelector) if not n.startswith("_")}
    assert learned <= SELECTOR_BASE_PUBLIC | {"load", "check_shape"}, sorted(learned)
    from pyramid.core.selectors import REGISTRY

    for cls in REGISTRY:  # no deployment or prose on a method's class either
        for banned in ("unavailable", "prediction_head", "bind_head", "bound_head", "notice", "score_label"):
            assert not hasattr(cls, banned), f"{cls.__name__}.{banned}"


def test_the_encoder_loop_is_short():
    """``PyramidEncoder.forward`` is at most 50 lines besides its docstring (signature and loop)."""
    source = ast.parse((PKG / "core" / "encoder.py").read_text(encoding="utf-8"))
    forward = next(n for n in ast.walk(source) if isinstance(n, ast.FunctionDef) and n.name == "forward")
    doc = forward.body[0]
    assert isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant), "forward has a docstring"
    lines = forward.end_lineno - forward.lineno + 1 - (doc.end_lineno - doc.lineno + 1)
    assert lines <= 50, lines


def test_no_function_of_the_library_is_over_80_lines_outside_trainers_and_drawing():
    """Trainers (pyramid/training) and pages' drawing code (app/) are exempt; the library's functions stay short."""
    long = []
    for path in PKG.rglob("*.py"):
        if "training" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})")
    assert not long, long


LAYERS = {"core": 0, "analysis": 2, "training": 3, "present": 4, "cli": 5, "grid": 5, "__main__": 5}
"""Each module's layer (the front at the top of pyramid/ is 1): a module imports only its own layer and those below
(docs/architecture.md)."""


def _layer(module: str) -> int:
    parts = module.split(".")
    return 1 if len(parts) == 1 else LAYERS.get(parts[1], 1)


def test_every_module_imports_only_its_layer_and_those_below():
    upward = [f"{m} -> {d}" for m, deps in _graph().items() for d in deps
              if d != "pyramid" and _layer(d) > _layer(m)]
    assert not upward, upward
    core = [f"{m} -> {d}" for m, deps in _graph().items() if m.startswith("pyramid.core")
            for d in deps if not d.startswith("pyramid.core")]
    assert not core, core  # the core imports nothing else of pyramid
