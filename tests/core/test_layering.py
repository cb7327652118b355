"""The house rules of the code: import-linter's contracts (pyproject.toml), no import
hidden inside a function, no module over 500 lines.

The contracts are checked on the real tree, and on a copy with bad imports added, to
show that each contract really fails when broken and names the import that broke it.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("lapsync", "sync")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
MAX_LINES = 500
CONTRACTS = {
    "central": "Central (sync) imports neither the laptop app nor the devkit",
    "laptop": "The laptop app (lapsync.laptop) imports neither central (sync) nor the devkit",
    "core": "The core (lapsync without laptop and devkit) imports no app and no devkit",
    "cycles": "No import cycles between sibling modules or packages, at any depth",
}


def lint(root: Path) -> subprocess.CompletedProcess:
    """Run lint-imports on the tree at root (its pyproject.toml, its packages first on the path)."""
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
                          cwd=root, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
                          capture_output=True, text=True, timeout=120)


def python_files() -> list[Path]:
    """Return every Python module of lapsync/ and sync/."""
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py")
                  if "__pycache__" not in p.parts)


def function_imports(path: Path) -> list[str]:
    """Return 'path:line: statement' for each import inside a function body of a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    found.add(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return sorted(found)


def test_the_import_contracts_hold():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in CONTRACTS.values():
        assert f"{name} KEPT" in result.stdout, result.stdout


def copy_tree(target: Path) -> Path:
    """Copy the packages and pyproject.toml to target (Python files only); return target."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, target / package,
                        ignore=lambda folder, names: [n for n in names if n == "__pycache__" or (
                            not n.endswith(".py") and not (Path(folder) / n).is_dir())])
    shutil.copyfile(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def broken_section(stdout: str, contract: str) -> str:
    """Return the linter's report on one broken contract (up to the next contract's)."""
    section = stdout.split("Broken contracts", 1)[1].split(f"\n{CONTRACTS[contract]}\n", 1)[1]
    later = [section.index(f"\n{name}\n") for name in CONTRACTS.values() if f"\n{name}\n" in section]
    return section[:min(later, default=len(section))]


# shown: what the report must say; the last item may be alternatives (a cycle is
# reported by the edge the linter would remove, either one of the two).
BAD_IMPORTS = [
    ("sync/health.py", "import lapsync.laptop", "central", ["sync.health -> lapsync.laptop"]),
    ("sync/health.py", "import lapsync.devkit.postgres", "central",
     ["sync.health -> lapsync.devkit.postgres"]),
    ("lapsync/laptop/db.py", "import sync.db", "laptop", ["lapsync.laptop.db -> sync.db"]),
    ("lapsync/hlc.py", "import lapsync.laptop.db", "core", ["lapsync.hlc -> lapsync.laptop.db"]),
    ("lapsync/text.py", "import sync.db", "core", ["lapsync.text -> sync.db"]),
    ("sync/db.py", "from sync import health", "cycles",
     ["No cycles are allowed in sync.", (".db -> .health", ".health -> .db")]),
]


@pytest.fixture(scope="module")
def broken_report(tmp_path_factory) -> subprocess.CompletedProcess:
    """Lint a copy of the tree with every bad import of BAD_IMPORTS added (one linter run)."""
    root = copy_tree(tmp_path_factory.mktemp("bad-imports"))
    for module, statement, _, _ in BAD_IMPORTS:
        with open(root / module, "a", encoding="utf-8") as file:
            file.write(f"\n{statement}  # a bad import under test\n")
    return lint(root)


@pytest.mark.parametrize("module, statement, contract, shown", BAD_IMPORTS)
def test_a_bad_import_breaks_its_contract(broken_report, module, statement, contract, shown):
    result = broken_report
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{CONTRACTS[contract]} BROKEN" in result.stdout, result.stdout
    section = broken_section(result.stdout, contract)
    for expected in shown:
        alternatives = expected if isinstance(expected, tuple) else (expected,)
        assert any(text in section for text in alternatives), result.stdout


def test_no_import_is_hidden_inside_a_function():
    offenders = [line for path in python_files() for line in function_imports(path)]
    assert offenders == [], "imports inside functions (move them to the top; a cycle they " \
                            "dodge must be broken instead):\n" + "\n".join(offenders)


def test_no_module_is_longer_than_500_lines():
    scripts = [p for room in ("lapsync", "sync") for p in (ROOT / room).rglob("*.js")
               if "vendor" not in p.parts]
    assert scripts  # the pages' own scripts count as modules too
    lengths = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
               for p in [*python_files(), *scripts]}
    too_long = {path: n for path, n in lengths.items() if n > MAX_LINES}
    assert too_long == {}, f"modules over {MAX_LINES} lines: {too_long}"
