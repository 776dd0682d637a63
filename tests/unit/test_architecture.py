"""The layers stay honest: these fail when the shape of the code erodes (docs/ARCHITECTURE.md).

- the core (``bot/``) imports discord only in the one wiring module, and never imports ``cogs``
  outside it;
- SQL text lives in ``bot/store/`` only;
- cogs never reach past the core into the store or the fal client;
- no import cycle among the modules of ``bot/`` and ``cogs/`` (every import counts, also the ones
  inside functions or under ``TYPE_CHECKING``: a lazy import still ties two modules together).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "cogs")
#: The composition root: the one core module that knows Discord and the cogs.
WIRING = {"bot.app"}
SQL = re.compile(
    r"^\s*(SELECT\s.+\sFROM\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|"
    r"CREATE\s+(TABLE|INDEX)\s|PRAGMA\s+\w+|BEGIN(\s+IMMEDIATE)?\s*$)",
    re.IGNORECASE | re.DOTALL,
)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            found[module_name(path, root)] = path
    return found


def imports_of(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import statement anywhere in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            yield base, node.lineno
            for alias in node.names:  # `from bot.store import jobs` imports bot.store.jobs
                yield f"{base}.{alias.name}", node.lineno


def project_imports(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the project modules it imports (resolved to modules that exist).

    ``from cogs.edits import render`` runs ``cogs/edits/__init__.py`` first, so it depends on
    the package as well as on the module.
    """
    known = modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        graph[name] = {t for t, _ in imports_of(name, path) if t in known and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path a -> b -> ... -> a, or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def violations_of_layers(root: Path = ROOT) -> list[str]:
    """Every import that crosses a layer the wrong way, as 'file:line: what'."""
    found = []
    for name, path in modules(root).items():
        rel = path.relative_to(root)
        for target, line in imports_of(name, path):
            top = target.split(".")[0]
            if name.startswith("bot") and name not in WIRING:
                if top == "discord":
                    found.append(f"{rel}:{line}: the core imports discord")
                if top == "cogs":
                    found.append(f"{rel}:{line}: the core imports the Discord layer ({target})")
            if name.startswith("cogs") and (
                target.startswith("bot.store") or target.startswith("bot.fal")
            ):
                found.append(f"{rel}:{line}: a cog reaches past the core into {target}")
    return found


def sql_outside_store(root: Path = ROOT) -> list[str]:
    """String constants that read as SQL, in modules outside bot/store/."""
    found = []
    for name, path in modules(root).items():
        if name.startswith("bot.store"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and SQL.match(node.value)
            ):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {node.value[:40]!r}")
    return found


def test_the_core_knows_no_discord_outside_the_wiring_module() -> None:
    assert [v for v in violations_of_layers() if "the core" in v] == []


def test_cogs_never_reach_into_the_store_or_the_fal_client() -> None:
    assert [v for v in violations_of_layers() if "a cog" in v] == []


def test_sql_lives_in_the_store_only() -> None:
    assert sql_outside_store() == []


def test_no_import_cycles() -> None:
    assert find_cycle(project_imports()) is None


def test_database_connection_stays_inside_the_store() -> None:
    """``Database.conn`` is the store's business; the rest of the code goes through repositories."""
    found = []
    for name, path in modules().items():
        if name.startswith("bot.store"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr == "conn":
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def undeclared_imports(root: Path = ROOT) -> dict[str, str]:
    """Third-party modules imported by bot/ or cogs/ whose distribution pyproject.toml does not
    declare as a runtime dependency, as {module: distribution}."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    declared = {
        re.split(r"[<>=!~\[ ;]", dep, maxsplit=1)[0].lower().replace("_", "-")
        for dep in project["dependencies"]
    }
    owners = importlib.metadata.packages_distributions()
    found = {}
    for name, path in modules(root).items():
        for target, _ in imports_of(name, path):
            top = target.split(".")[0]
            if not top or top in PACKAGES or top in sys.stdlib_module_names:
                continue
            for dist in owners.get(top, [top]):
                if dist.lower().replace("_", "-") not in declared:
                    found[top] = dist
    return found


def test_every_runtime_import_is_a_declared_dependency() -> None:
    assert undeclared_imports() == {}


# -- the checks themselves fail on a deliberate violation ------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "bot" / "store").mkdir()
    (tmp_path / "bot" / "store" / "__init__.py").write_text("")
    return tmp_path


def test_a_discord_import_in_the_core_is_caught(tree: Path) -> None:
    (tree / "bot" / "pricing.py").write_text("import discord\n")
    (tree / "bot" / "app.py").write_text("import discord\nfrom cogs import edit\n")
    assert violations_of_layers(tree) == ["bot/pricing.py:1: the core imports discord"]


def test_a_cog_importing_the_store_is_caught(tree: Path) -> None:
    (tree / "cogs" / "edit.py").write_text("def f():\n    from bot.store import jobs\n")
    assert violations_of_layers(tree) == [
        "cogs/edit.py:2: a cog reaches past the core into bot.store",
        "cogs/edit.py:2: a cog reaches past the core into bot.store.jobs",
    ]


def test_sql_in_the_engine_is_caught(tree: Path) -> None:
    (tree / "bot" / "engine.py").write_text('Q = "SELECT id FROM jobs WHERE state = ?"\n')
    (tree / "bot" / "store" / "jobs.py").write_text('Q = "SELECT id FROM jobs"\n')
    assert sql_outside_store(tree) == ["bot/engine.py:1: 'SELECT id FROM jobs WHERE state = ?'"]


def test_a_lazy_import_cycle_is_caught(tree: Path) -> None:
    (tree / "bot" / "app.py").write_text("from bot.cli import main\n")
    (tree / "bot" / "cli.py").write_text("def run():\n    from bot import app\n")
    assert find_cycle(project_imports(tree)) == ["bot.app", "bot.cli", "bot.app"]


def test_an_undeclared_import_is_caught(tree: Path) -> None:
    (tree / "pyproject.toml").write_text('[project]\ndependencies = ["httpx>=0.28"]\n')
    (tree / "bot" / "fetch.py").write_text("import json\nimport httpx\nimport yarl\n")
    assert undeclared_imports(tree) == {"yarl": "yarl"}
