"""The layering promise and the public surface."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import stream_core

FORBIDDEN = ("livekit", "requests", "aiohttp", "sqlalchemy", "adapters", "stream_engine",
             "stream_devstack", "google", "jwt")


def test_import_stream_core_pulls_in_no_io_library():
    code = (
        "import sys, stream_core, stream_core.diagrams;"
        "mods = {m.split('.')[0] for m in sys.modules};"
        f"bad = sorted(mods & set({FORBIDDEN!r}));"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""


def test_every_core_module_imports_only_stdlib_transitions_marshmallow():
    allowed = set(sys.stdlib_module_names) | {"transitions", "marshmallow", "stream_core"}
    for info in pkgutil.walk_packages(stream_core.__path__, "stream_core."):
        module = importlib.import_module(info.name)
        source = open(module.__file__, encoding="utf-8").read()  # type: ignore[arg-type]
        for line in source.splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] in ("import", "from"):
                top = words[1].split(".")[0]
                assert top in allowed, f"{info.name} imports {top}"


def test_public_exports_match_all():
    assert sorted(set(stream_core.__all__)) == sorted(stream_core.__all__)
    for name in stream_core.__all__:
        assert hasattr(stream_core, name), name
    public = {n for n in vars(stream_core) if n.startswith("UTD")}
    assert public <= set(stream_core.__all__)


def test_each_module_declares_all():
    for info in pkgutil.walk_packages(stream_core.__path__, "stream_core."):
        module = importlib.import_module(info.name)
        if info.name.endswith("__main__"):
            continue
        assert hasattr(module, "__all__"), info.name


def test_default_client_without_backend_explains_itself(monkeypatch):
    import stream_core.client as client_mod

    monkeypatch.setattr(client_mod, "entry_points", lambda **_: [])
    try:
        stream_core.UTDStreamClient(app_id="a", app_key="k")
    except stream_core.UTDStreamException as exc:
        assert exc.code == "unavailable" and "utd-stream[livekit]" in exc.message
    else:  # pragma: no cover
        raise AssertionError("expected UTDStreamException")


def _imports(package: str) -> dict[str, set[str]]:
    """Every module of ``package`` (by file) and the top-level names it imports."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / package
    found: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(root.parent))] = names
    return found


def test_nothing_on_the_client_side_imports_the_server():
    """Adapters (fakes, real backends, CLI, demo) and the dev stack run the engine as a
    process or as the core's service: none of them imports the server package."""
    for package in ("adapters", "stream_devstack"):
        for module, names in _imports(package).items():
            assert "stream_engine" not in names, module


def test_the_wheel_installs_only_project_named_packages():
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    tops = {name.rstrip("*") for name in include}
    assert tops == {"stream_core", "adapters", "stream_engine", "stream_devstack"}
    assert "engine" not in tops  # a generic name would collide in a user's environment
