"""The common package is shared by every service and imports none of them."""

from __future__ import annotations

import ast
from pathlib import Path

import services.common

COMMON = Path(services.common.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_common_imports_no_service():
    offending = {
        f"{path.relative_to(COMMON.parent.parent)}: {name}"
        for path in COMMON.rglob("*.py")
        for name in _imported_modules(path)
        if name.startswith("services.") and not name.startswith("services.common")
    }
    assert not offending, sorted(offending)
