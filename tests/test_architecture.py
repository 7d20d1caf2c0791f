"""The import rules of ../shared/ARCHITECTURE.md, checked on every module: imports point
down the layer table, never up. A new module is classified by where it lives."""

import ast
from pathlib import Path

from tests.conftest import REPO

# Entry points that wire everything together.
COMPOSITION_ROOTS = {
    "app.app",
    "app.api",
    "app.cli",  # the `strata` command: the headless composition root
    "app.tables",  # every domain's tables, for Alembic's metadata
    "app.job_kinds",  # every domain's job kinds, for the web and the worker
    "jobs.worker",
}
# A domain's web-facing modules (and split-out ones such as oidc_api.py); everything else in a
# domain folder is its service layer (service.py and its split-out modules, tables.py, jobs.py, ...).
FRONT_MODULES = {"page", "state", "api", "deps"}
FRONT_SUFFIXES = tuple(f"_{name}" for name in FRONT_MODULES)
# Shared by every domain's pages and routes: the signed-in state and the caller dependencies.
SHARED_FRONT = {"app.auth.state", "app.auth.deps"}


def _modules() -> dict[str, Path]:
    found = {}
    for top in ("app", "jobs", "models"):
        for path in (REPO / top).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            imported.add(base)
            imported.update(f"{base}.{alias.name}" for alias in node.names)
    return {module for module in imported if module.split(".")[0] in ("app", "jobs", "models")}


def _is_package(module: str, known: set[str]) -> bool:
    return any(other.startswith(module + ".") for other in known)


def _domain(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "app" and len(parts) >= 2 and parts[1] not in ("core", "ui") and len(parts) >= 3:
        return parts[1]
    return None


def _is_front(module: str) -> bool:
    if _domain(module) is None:
        return False
    name = module.split(".")[2]
    return name in FRONT_MODULES or name.endswith(FRONT_SUFFIXES)


def _allowed(importer: str, imported: str, known: set[str]) -> bool:
    if imported not in known:  # `from app.x import name` also lists app.x.name: judge the module
        imported = imported.rsplit(".", 1)[0]
    # A package itself (`from app.knowledge import service`): its modules are judged one by one.
    if imported not in known or imported == importer or _is_package(imported, known):
        return True
    top = importer.split(".")[0]
    if importer in COMPOSITION_ROOTS:
        return True
    if top == "models":
        return imported.startswith("models")
    if importer.startswith("app.core"):
        return imported.startswith(("app.core", "models"))
    if top == "jobs":
        return imported.startswith(("app.core", "models", "jobs"))
    if importer.startswith("app.ui"):
        return imported.startswith(("app.core", "app.ui")) or imported == "app.auth.state"
    domain = _domain(importer)
    assert domain is not None, f"unclassified module {importer}"
    if imported.startswith(("app.core", "models")):
        return True
    if _is_front(importer):
        if imported.startswith("app.ui") or imported in SHARED_FRONT:
            return True
        if _domain(imported) == domain:
            return True
        return _domain(imported) is not None and not _is_front(imported)
    # The service layer: other domains' services and tables, the job machinery, never a page or route.
    if imported.startswith("jobs"):
        return imported != "jobs.worker"
    return _domain(imported) is not None and not _is_front(imported)


def test_imports_point_down_the_layer_table():
    modules = _modules()
    known = set(modules)
    violations = sorted(
        f"{importer} imports {imported}"
        for importer, path in modules.items()
        for imported in _imports(path, importer)
        if not _allowed(importer, imported, known)
    )
    assert violations == [], "\n".join(violations)


def test_the_rules_catch_an_upward_import():
    """The checker itself: each of these breaks a rule of the table."""
    known = {"app.core.db", "app.auth.service", "app.auth.api", "app.knowledge.page", "app.ui.layout", "jobs.service"}
    assert not _allowed("app.core.db", "app.auth.service", known)
    assert not _allowed("jobs.service", "app.auth.service", known)
    assert not _allowed("models.embedder", "app.core.db", known | {"models.embedder"})
    assert not _allowed("app.auth.service", "app.knowledge.page", known)
    assert not _allowed("app.ui.layout", "app.auth.service", known)
    assert _allowed("app.knowledge.page", "app.auth.service", known)
