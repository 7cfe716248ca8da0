"""The package's one import rule: commands -> jobs -> core -> plumbing, training reading only the
prepared-set contract of data preparation, the analyzer neither, and no cycle. Every import counts,
the ones inside functions too."""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "emotion_analyzer"
PLUMBING = ("emotion_analyzer.config", "emotion_analyzer.errors", "emotion_analyzer.common")
CORE = ("emotion_analyzer.core",)
# What each job may import besides plumbing, the core and itself.
JOBS = {
    "emotion_analyzer.data": (),
    "emotion_analyzer.training": ("emotion_analyzer.data.prepared",),
    "emotion_analyzer.analysis": (),
    "emotion_analyzer.scale": ("emotion_analyzer.analysis",),
}
TOP = ("emotion_analyzer.commands", "emotion_analyzer.recognizer")


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path):
    """The package's modules that `path` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("emotion_analyzer"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in MODULES)
    return found - {module_name(path)}


def within(module, prefixes):
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def allowed(importer, imported):
    if within(imported, PLUMBING):
        return True
    if within(importer, PLUMBING):
        return False
    if within(imported, CORE):
        return True
    if within(importer, CORE):
        return False
    for job, extra in JOBS.items():
        if within(importer, (job,)):
            return within(imported, (job,) + extra)
    return within(importer, TOP) or importer == "emotion_analyzer"


GRAPH = {module: imports_of(path) for module, path in MODULES.items()}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_run_one_way(module):
    wrong = sorted(imported for imported in GRAPH[module] if not allowed(module, imported))
    assert not wrong, f"{module} imports {wrong}"


def test_the_rule_refuses_what_it_should():
    # The rule itself, on the imports it exists to stop.
    assert not allowed("emotion_analyzer.training.trainer", "emotion_analyzer.analysis.classify")
    assert not allowed("emotion_analyzer.training.trainer", "emotion_analyzer.data.arrays")
    assert allowed("emotion_analyzer.training.trainer", "emotion_analyzer.data.prepared")
    assert not allowed("emotion_analyzer.analysis.analyzer", "emotion_analyzer.training.recipe")
    assert not allowed("emotion_analyzer.core.model", "emotion_analyzer.training.recipe")
    assert not allowed("emotion_analyzer.common.cli", "emotion_analyzer.core.images")
    assert allowed("emotion_analyzer.commands.train", "emotion_analyzer.training.trainer")


def test_no_cycle():
    state, cycles = defaultdict(int), []

    def visit(module, path):
        state[module] = 1
        for imported in sorted(GRAPH.get(module, ())):
            if state[imported] == 1:
                cycles.append(path[path.index(imported):] + [imported] if imported in path else [module, imported])
            elif state[imported] == 0:
                visit(imported, path + [imported])
        state[module] = 2

    for module in sorted(GRAPH):
        if not state[module]:
            visit(module, [module])
    assert not cycles, " ; ".join(" -> ".join(cycle) for cycle in cycles)


def test_every_folder_says_what_it_is_for():
    for folder in sorted(p for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()):
        docstring = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
        assert docstring, f"{folder.name}/__init__.py has no one-line purpose"


TESTS = Path(__file__).resolve().parent


def test_test_folders_mirror_the_package_and_take_helpers_as_fixtures():
    folders = {path.name for path in TESTS.iterdir() if path.is_dir() and path.name != "__pycache__"}
    assert folders == {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    for path in TESTS.rglob("test_*.py"):
        tree = ast.parse(path.read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert "conftest" not in imported, f"{path.relative_to(TESTS)}: take conftest's helpers as fixtures"
    names = [path.name for path in TESTS.rglob("test_*.py")]
    assert len(names) == len(set(names))  # pytest imports test modules by their file names
