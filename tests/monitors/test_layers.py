"""The monitors are the domain core: they import neither the store nor SQLAlchemy."""

from __future__ import annotations

import ast
from pathlib import Path

import forewarn

PACKAGE = Path(forewarn.__file__).parent
FORBIDDEN = ("sqlalchemy", "forewarn.store")


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_no_module_of_the_monitors_imports_the_store_or_sqlalchemy() -> None:
    offenders = sorted(
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in (PACKAGE / "monitors").rglob("*.py")
        for name in imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    )
    assert offenders == []


def test_the_store_protocols_import_no_sqlalchemy_either() -> None:
    assert not [n for n in imports(PACKAGE / "ports.py") if n.startswith("sqlalchemy")]


def test_the_walk_sees_an_import_of_the_store(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from forewarn.store.models import Alert\nimport sqlalchemy.orm\n")
    assert {"forewarn.store.models", "sqlalchemy.orm"} <= imports(probe)
