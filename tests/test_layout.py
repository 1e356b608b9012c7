"""The shape of the code: one package per stage of the flow, imports that only run down it (function-level
imports included), no import circle, small modules and functions."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "batchemo"

#: The stages, lowest first: a module may import its own package and the packages below it, never above.
#: ``training`` sits beside ``pipeline``: it reads sources and emotions, and nothing but the CLI and the
#: public API (``batchemo/__init__.py``) imports it.
STAGES = {"core": 0, "sources": 1, "faces": 2, "emotions": 3, "explain": 4, "people": 5, "pipeline": 6,
          "training": 6, "outputs": 7, "report": 8, "cli": 9, "__init__": 10}
#: The analysis side: it hands records to the edge and never imports the tables, the report or the CLI.
ANALYSIS = {"core", "sources", "faces", "emotions", "explain", "people", "pipeline", "training"}
#: What batchemo/ may hold besides the stage packages (the shipped templates live beside it, in templates/).
TOP_LEVEL_FILES = {"__init__.py"}
MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_PARAMETERS = 500, 60, 8


def _modules():
    mods = sorted(PACKAGE.rglob("*.py"))
    assert len(mods) > 40  # the walk found the package
    return [(p.relative_to(PACKAGE).as_posix(), p.read_text(), ast.parse(p.read_text())) for p in mods]


def _name(rel: str) -> str:
    """``emotions/model.py`` -> ``emotions.model``; a package's ``__init__.py`` -> the package."""
    return rel[:-3].replace("/", ".").removesuffix(".__init__")


def _imported(rel: str, tree: ast.AST, modules: set[str]) -> set[str]:
    """The batchemo modules ``rel`` imports anywhere in it (function-level imports too), as dotted names."""
    here = rel[:-3].split("/")
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level]
                name = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("batchemo"):
                name = node.module.removeprefix("batchemo").lstrip(".")
            else:
                continue
            subs = {f"{name}.{a.name}".lstrip(".") for a in node.names} & modules
            out.update(subs or {name})
        elif isinstance(node, ast.Import):
            out.update(a.name.removeprefix("batchemo").lstrip(".") for a in node.names if a.name.startswith("batchemo"))
    return {m for m in out if m}


def _stage(module: str) -> str:
    return module.split(".")[0] if module else "__init__"


def _graph():
    mods = _modules()
    names = {_name(rel) for rel, _, _ in mods}
    return {_name(rel): _imported(rel, tree, names) & names for rel, _, tree in mods}


def test_batchemo_holds_only_the_stage_packages():
    entries = sorted(p.name for p in PACKAGE.iterdir() if not p.name.startswith((".", "__pycache__")))
    assert set(entries) <= set(STAGES) | TOP_LEVEL_FILES, entries
    assert len(entries) <= 12


def test_imports_run_down_the_flow():
    """Every import, function-level ones too, goes to the module's own package or to a lower stage."""
    up = []
    for module, imports in _graph().items():
        for m in imports:
            a, b = _stage(module), _stage(m)
            if a != b and STAGES[b] >= STAGES[a]:
                up.append(f"{module} -> {m}")
    assert up == []


def test_analysis_never_imports_the_edge():
    bad = [f"{module} -> {m}" for module, imports in _graph().items() if _stage(module) in ANALYSIS
           for m in imports if _stage(m) in {"outputs", "report", "cli"}]
    assert bad == []


def test_only_the_cli_and_the_api_import_training():
    bad = [f"{module} -> {m}" for module, imports in _graph().items()
           if _stage(module) not in {"training", "cli", "__init__"} for m in imports if _stage(m) == "training"]
    assert bad == []


def test_no_import_circle_even_through_function_level_imports():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(n, path):
        if state.get(n) == 1:
            raise AssertionError(f"import circle: {' -> '.join(path + [n])}")
        if state.get(n) == 2:
            return
        state[n] = 1
        for m in sorted(graph[n]):
            if not n.startswith(m + "."):  # a package's own __init__ is not a circle
                visit(m, path + [n])
        state[n] = 2

    for n in sorted(graph):
        visit(n, [])
    assert "training.card" in graph["training.loop"]  # the graph was read


def test_modules_and_functions_are_small():
    over = []
    for rel, text, tree in _modules():
        if len(text.splitlines()) > MAX_MODULE_LINES:
            over.append(f"{rel}: {len(text.splitlines())} lines")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                params = [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]
                n = sum(p is not None and p.arg not in ("self", "cls") for p in params)
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES or n > MAX_PARAMETERS:
                    over.append(f"{rel}:{node.lineno} {node.name}: {lines} lines, {n} parameters")
    assert over == []


def test_the_public_api_names_resolve():
    import batchemo

    for name in batchemo.__all__:
        assert getattr(batchemo, name) is not None, name
    assert callable(batchemo.train) and callable(batchemo.run) and callable(batchemo.analyze)


def test_one_list_of_image_extensions():
    from batchemo.sources import labelled, walk

    assert labelled.IMAGE_EXTENSIONS is walk.IMAGE_EXTENSIONS
    assert {".jpg", ".png", ".gif", ".pgm"} <= set(walk.IMAGE_EXTENSIONS)


def test_importing_batchemo_loads_no_training_code():
    """``import batchemo`` and an analysis's imports stay small: the training package loads on first use."""
    import subprocess
    import sys

    code = ("import sys, batchemo, batchemo.pipeline.run; "
            "print(sorted(m for m in sys.modules if m.startswith(('batchemo.train', 'tensorflow', 'keras'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
