"""The library's shape: each module one job and of a readable size, the model package free of the
archive's code, and no orchestration (Prefect, the flows) inside the library, so it can be used
and tested without them."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "orient_model"
MAX_LINES = 500
MODULES = sorted(LIBRARY.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> list[str]:
    """Every module a file imports, at any depth (lazy imports inside functions too), absolute."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module
            found.append(name)
            found += [f"{name}.{alias.name}" for alias in node.names]
    return found


def test_there_are_modules_to_check():
    assert len(MODULES) > 20 and LIBRARY / "model" / "registry.py" in MODULES


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_library_never_imports_prefect_or_the_flows(path: Path):
    bad = [n for n in imported_names(path) if n.split(".")[0] in ("prefect", "flows")]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def loaded_after_importing(names: list[str], prefixes: tuple[str, ...]) -> list[str]:
    """The modules in the packages ``prefixes`` a fresh interpreter holds after importing ``names``."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        f"prefixes = {prefixes!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules\n"
        "    if any(m == p or m.startswith(p + '.') for p in prefixes))))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_importing_every_library_module_loads_no_prefect():
    loaded = loaded_after_importing([module_name(p) for p in MODULES], ("prefect", "flows"))
    assert not loaded, f"importing orient_model loads {loaded[:10]}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_library_module_is_over_500_lines(path: Path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines; split it by concern"


def test_the_model_package_imports_nothing_from_the_archive():
    bad = {
        str(p.relative_to(ROOT)): [n for n in imported_names(p) if n.startswith("orient_model.archive")]
        for p in sorted((LIBRARY / "model").rglob("*.py"))
    }
    bad = {path: sorted(set(names)) for path, names in bad.items() if names}
    assert not bad, f"the model package reaches into orient_model.archive: {bad}"


def test_importing_the_model_package_loads_nothing_of_the_archive():
    model = [module_name(p) for p in MODULES if p.is_relative_to(LIBRARY / "model")]
    loaded = loaded_after_importing(model, ("orient_model.archive",))
    assert not loaded, f"importing orient_model.model loads {loaded}"


def test_the_flows_use_only_what_the_archive_package_names():
    import orient_model.archive as archive

    flows = sorted((ROOT / "flows").rglob("*.py"))
    reached = {
        str(p.relative_to(ROOT)): [
            n
            for n in imported_names(p)
            if n.startswith("orient_model.archive.")
            and n.removeprefix("orient_model.archive.") not in archive.__all__
        ]
        for p in flows
    }
    reached = {path: names for path, names in reached.items() if names}
    assert not reached, f"flows reach into orient_model.archive's modules: {reached}"
