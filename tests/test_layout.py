"""Issue 23, point 4: code shared by test modules lives in tests/helpers/, and shared fixtures are registered for
every module in tests/conftest.py (pytest_plugins). So no module under tests/ imports a test module or conftest,
and none imports a fixture by name. Read with ast: imports inside functions count, strings and comments do not."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = (TESTS.name, *path.relative_to(TESTS).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> Iterator[tuple[str, Path]]:
    for path in sorted(TESTS.rglob("*.py")):
        if "__pycache__" not in path.parts:
            yield module_name(path), path


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imported(tree: ast.AST, importer: str, package: bool = False) -> Iterator[tuple[int, str]]:
    """Every module (or module.name) an import statement reaches, relative imports resolved against `importer`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = importer.split(".") if package else importer.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, node.module] if node.module else parts)
            else:
                base = node.module or ""
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"  # `from tests import test_x` imports the module test_x


def is_test_module(name: str) -> bool:
    parts = name.split(".")
    if parts[0] == TESTS.name:
        parts = parts[1:]
    elif len(parts) > 1:
        return False  # another package's modules (django.test, ...)
    return any(part == "conftest" or part.startswith("test_") for part in parts)


def imports_of_test_modules(source: str, importer: str = "tests.test_example", package: bool = False) -> set[str]:
    return {f"line {line}: {name}" for line, name in imported(ast.parse(source), importer, package)
            if is_test_module(name)}


def fixtures_of(tree: ast.AST) -> set[str]:
    """The names of the functions a module decorates with pytest.fixture (as the module spells them)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if ast.unparse(target) in {"pytest.fixture", "fixture"}:
                    names.add(node.name)
    return names


def fixtures_imported(tree: ast.AST, fixtures: dict[str, set[str]]) -> set[str]:
    """`from tests.helpers.x import a_fixture`, or `from tests.helpers import x` and then `x.a_fixture`."""
    found = set()
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            for alias in node.names:
                if alias.name in fixtures.get(node.module, set()):
                    found.add(f"line {node.lineno}: {node.module}.{alias.name}")
                if f"{node.module}.{alias.name}" in fixtures:
                    bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in fixtures:
                    bound[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            owner = ast.unparse(node.value)
            module = bound.get(owner) or (owner if owner in fixtures else None)
            if module and node.attr in fixtures[module]:
                found.add(f"line {node.lineno}: {module}.{node.attr}")
    return found


def test_no_module_under_tests_imports_a_test_module_or_conftest() -> None:
    offences = {}
    for name, path in sources():
        found = imports_of_test_modules(path.read_text(), name, is_package(path))
        if found:
            offences[str(path.relative_to(TESTS.parent))] = sorted(found)
    assert offences == {}, "move what is shared to tests/helpers/ (fixtures: register them in tests/conftest.py)"


def test_no_module_under_tests_imports_a_fixture_by_name() -> None:
    trees = {name: ast.parse(path.read_text()) for name, path in sources()}
    fixtures = {name: found for name, tree in trees.items() if not name.endswith("conftest")
                and (found := fixtures_of(tree))}
    assert {"live_daphne", "peer_fixture", "fast_passwords"} <= set().union(*fixtures.values())
    offences = {name: sorted(found) for name, tree in trees.items()
                if (found := fixtures_imported(tree, {m: f for m, f in fixtures.items() if m != name}))}
    assert offences == {}, "request the fixture by its name; register it in tests/conftest.py (pytest_plugins)"


def spelled(source: str) -> str:
    """The snippets below write the package as `pkg`, so that grepping the tree for such imports finds none here."""
    return source.replace("pkg", TESTS.name)


def test_the_checks_see_every_way_of_importing() -> None:
    forbidden = {
        "from pkg.test_browser import new_page": "tests.test_browser",
        "import pkg.test_realtime": "tests.test_realtime",
        "import pkg.test_realtime as rt": "tests.test_realtime",
        "from tests import test_hma_api": "tests.test_hma_api",
        "from pkg.conftest import TEST_REDIS_URL": "tests.conftest",
        "from tests import conftest": "tests.conftest",
        "import conftest": "conftest",
        "from . import conftest": "tests.conftest",
        "from .test_matching import jpeg": "tests.test_matching",
        "def f():\n    if True:\n        from pkg.test_realtime import run": "tests.test_realtime",
    }
    for source, module in forbidden.items():
        assert any(found.endswith(module) for found in imports_of_test_modules(spelled(source))), source
    assert imports_of_test_modules("from .. import test_x", "tests.helpers.browser") == {"line 1: tests.test_x"}
    assert imports_of_test_modules("from . import conftest", "tests", package=True) == {"line 1: tests.conftest"}
    for allowed in ("from tests.helpers.browser import new_page", "from tests import helpers",
                    "from tests.helpers import factories", "import pytest", "from django.test import Client",
                    "from . import helpers", "SOURCE = 'from pkg.test_browser import new_page'",
                    "# from pkg.conftest import TEST_REDIS_URL"):
        assert imports_of_test_modules(spelled(allowed)) == set(), allowed

    helper = ast.parse("import pytest\n@pytest.fixture(name='peer')\ndef peer_fixture(): ...\n"
                       "@pytest.fixture\ndef live(): ...\ndef plain(): ...\n")
    fixtures = {"tests.helpers.x": fixtures_of(helper)}
    assert fixtures["tests.helpers.x"] == {"peer_fixture", "live"}
    for source in ("from tests.helpers.x import plain, live  # noqa: F401",
                   "from tests.helpers import x\nlive = x.live",
                   "from tests.helpers import x as y\nfixture = y.peer_fixture",
                   "import tests.helpers.x\nlive = tests.helpers.x.live"):
        assert fixtures_imported(ast.parse(source), fixtures), source
    for source in ("from tests.helpers.x import plain", "from tests.helpers import x\nx.plain()"):
        assert fixtures_imported(ast.parse(source), fixtures) == set(), source
