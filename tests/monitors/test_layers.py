"""The monitors are the domain core: they import neither the store nor SQLAlchemy."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Protocol

import forewarn
import forewarn.ports as ports

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


def test_the_store_protocols_import_neither_the_store_nor_sqlalchemy() -> None:
    modules = sorted((PACKAGE / "ports").rglob("*.py"))
    assert [m.name for m in modules if m.name != "__init__.py"]  # the walk sees the package
    offenders = sorted(
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in modules
        for name in imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    )
    assert offenders == []


def test_every_protocol_is_documented_in_the_ports_package_and_nowhere_else() -> None:
    protocols = [
        obj
        for name in ports.__all__
        if inspect.isclass(obj := getattr(ports, name)) and Protocol in obj.__mro__[1:]
    ]
    assert len(protocols) >= 10
    assert [p.__name__ for p in protocols if not (p.__doc__ or "").strip()] == []
    assert {p.__module__.rsplit(".", 1)[0] for p in protocols} == {"forewarn.ports"}
    assert [p.name for p in PACKAGE.glob("*.py") if p.stem.endswith("ports")] == []


def test_the_walk_sees_an_import_of_the_store(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from forewarn.store.models import Alert\nimport sqlalchemy.orm\n")
    assert {"forewarn.store.models", "sqlalchemy.orm"} <= imports(probe)
