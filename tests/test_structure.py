"""The layout rules (README "Layout", docs/ARCHITECTURE.md), enforced."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from voxgate import errors

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "voxgate"

# The sans-I/O cores: bytes/JSON in, events and bytes out, no I/O, no event loop, no clock.
SANS_IO_CORES = [
    "codecs",
    "bridge/rtp",
    "bridge/sip",
    "bridge/carriers",
    "bridge/botlink",
    "bridge/events.py",
    "bridge/wire.py",
    "bridge/dialect.py",
    "bridge/call.py",
    "bridge/playout.py",
    "bridge/reorder.py",
]
FORBIDDEN_IN_CORES = {
    "asyncio",
    "websockets",
    "starlette",
    "uvicorn",
    "uvloop",
    "aiortc",
    "socket",
    "selectors",
    "ssl",
    "time",  # time is passed in
}


def _top_level_names() -> set[str]:
    names = {"voxgate"}
    for entry in ROOT.iterdir():
        if entry.suffix == ".py":
            names.add(entry.stem)
        elif (entry / "__init__.py").exists():
            names.add(entry.name)
    return names


def test_no_top_level_module_shadows_the_standard_library() -> None:
    shadowing = sorted(_top_level_names() & sys.stdlib_module_names)
    assert shadowing == []


def _core_modules() -> list[Path]:
    modules = []
    for core in SANS_IO_CORES:
        path = PACKAGE / core
        modules.extend([path] if path.suffix == ".py" else sorted(path.rglob("*.py")))
    return modules


def _imported_modules(path: Path) -> set[str]:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module)
    return imported


def test_there_are_cores_to_check() -> None:
    modules = _core_modules()
    assert all(path.exists() for path in modules)
    assert {"codecs", "carriers", "botlink", "bridge"} <= {path.parent.name for path in modules}


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_sans_io_core_imports_no_io(path: Path) -> None:
    tops = {name.split(".")[0] for name in _imported_modules(path)}
    assert tops.isdisjoint(FORBIDDEN_IN_CORES), sorted(tops & FORBIDDEN_IN_CORES)


def test_importing_the_cores_loads_no_io_library() -> None:
    modules = [
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in _core_modules()
    ]
    program = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", program], check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout.split()
    io_libraries = FORBIDDEN_IN_CORES - {"time", "socket", "selectors", "ssl"}
    assert io_libraries.isdisjoint(loaded), sorted(io_libraries & set(loaded))


def test_every_error_is_a_voxgate_error() -> None:
    classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, Exception)
    ]
    assert len(classes) > 1
    assert all(issubclass(cls, errors.VoxgateError) for cls in classes)


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\]\(([^)\s]+)\)")  # a Markdown link's target
_UP = re.compile(r"(?:\.\./)+[\w.-][\w./-]*")  # a relative path that climbs


def _doc_references(doc: Path) -> list[str]:
    text = doc.read_text()
    links = [
        target.split("#")[0]
        for target in _LINK.findall(text)
        if not target.startswith(("http://", "https://", "mailto:", "#"))
    ]
    return [*links, *_UP.findall(text)]


def test_there_are_docs_to_check() -> None:
    assert {"README.md", "ARCHITECTURE.md", "PROTOCOL.md", "CONFIG.md"} <= {d.name for d in DOCS}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_point_only_inside_the_repository(doc: Path) -> None:
    """The docs stand alone: every relative link or path exists in the repository."""
    for reference in _doc_references(doc):
        target = (doc.parent / reference).resolve()
        assert target.is_relative_to(ROOT), f"{reference} points outside the repository"
        assert target.exists(), f"{reference} does not exist"


SOURCES = sorted(
    path
    for folder in ("voxgate", "tests", "bench", "scripts")
    for path in (ROOT / folder).rglob("*")
    if path.is_file() and path.suffix in {".py", ".md", ".toml", ".conf", ""}
)


_WORKBENCH = re.compile(r"\.\./shared\b")  # the team's notes beside the checkout


def test_no_project_file_points_into_the_workbench() -> None:
    """Code, tests and scripts stand alone too: users have no workbench beside their copy."""
    pointing = [
        str(path.relative_to(ROOT))
        for path in SOURCES
        if _WORKBENCH.search(path.read_text(errors="replace"))
    ]
    assert pointing == []
