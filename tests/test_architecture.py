"""Issue 23, point 1: the apps run one way (docs/architecture.md), and import-linter's layers contract in
`make lint` fails on a back-import. Checked on copies of the source tree: as it is (kept), and with one
back-import added at a time (broken, naming the import)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "core", "intake", "wellbeing", "review", "integrations", "oversight", "demo", "benchmarks",
            "tests")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _tree(to: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, to / name, ignore=shutil.ignore_patterns("__pycache__", "migrations", "*.mo"))
    shutil.copy(ROOT / "pyproject.toml", to / "pyproject.toml")
    return to


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)})


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tree(tmp_path_factory.mktemp("veil"))


def test_the_tree_as_it_is_keeps_every_contract(tree: Path) -> None:
    run = _lint(tree)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Veil's apps run one way" in run.stdout and "0 broken" in run.stdout


@pytest.mark.parametrize(("module", "back_import", "complaint"), [
    ("intake/models.py", "from review import services as _back", "intake is not allowed to import review"),
    ("wellbeing/selectors.py", "from review.models import Claim as _Back", "wellbeing is not allowed to import review"),
    ("core/audit.py", "from intake import services as _back", "core is not allowed to import intake"),
    ("review/services.py", "from integrations import webhooks as _back",
     "review is not allowed to import integrations"),
    ("oversight/reports.py", "from demo import content as _back", "oversight is not allowed to import demo"),
])
def test_a_back_import_breaks_the_layers_contract(tree: Path, module: str, back_import: str, complaint: str) -> None:
    path = tree / module
    before = path.read_text()
    try:
        path.write_text(before + f"\n{back_import}  # a back-import\n")
        run = _lint(tree)
    finally:
        path.write_text(before)
    assert run.returncode != 0
    assert complaint in " ".join(run.stdout.split()), run.stdout
