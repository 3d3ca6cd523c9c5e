"""The shape of the code: imports flow one way (the import-linter contracts of pyproject.toml,
docs/ARCHITECTURE.md), no module imports itself around a cycle, and no function in archft/ is
longer than a screen."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 60  # of code, the docstring not counted


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "3 kept, 0 broken" in proc.stdout


def test_a_wrong_way_import_breaks_the_contract(tmp_path):
    """The contract can fail: the same check on a copy of archft where the bottom layer
    imports the top one."""
    import shutil

    copy = tmp_path / "repo"
    for name in ("archft", "steps", "pipelines"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy)
    with (copy / "archft" / "core" / "rng.py").open("a") as f:
        f.write("\nfrom archft.cli import main  # noqa: E402,F401\n")
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint)], cwd=copy, capture_output=True, text=True, timeout=300,
                          env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(copy)})
    assert proc.returncode != 0
    assert "archft imports flow one way BROKEN" in proc.stdout
    assert "archft.core.rng -> archft.cli" in proc.stdout


def _imports(path: Path, module: str) -> set[str]:
    """archft modules a file imports (at any depth of the file), resolved to module names."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("archft"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("archft"))
    return out


def test_no_import_cycle():
    files = {}
    for path in sorted((ROOT / "archft").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {m: {i for i in _imports(p, m) if i in files and i != m} for m, p in files.items()}
    # A package's __init__ re-exports its modules: an edge package -> own module is expected,
    # a module that imports its own package's __init__ closes a cycle.
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            assert state.get(n) != 1, "import cycle: " + " -> ".join(path + [n])
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_no_function_longer_than_a_screen():
    long = []
    for path in sorted((ROOT / "archft").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            body = node.body
            has_doc = (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                       and isinstance(body[0].value.value, str))
            start = body[1].lineno if has_doc and len(body) > 1 else body[0].lineno
            lines = node.end_lineno - start + 1
            if lines > MAX_FUNCTION_LINES:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines})")
    assert not long, long
