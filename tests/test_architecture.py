"""The package's layering, checked on every module's imports (parsed with ast, never imported): those
inside functions (lazy imports) and relative ones count the same as the rest.

- core (errors, io, contract, artifact, metadata, protocol, images, discovery) imports nothing else of
  edgecnn; agent (what runs on a device) imports only core; both ship to a device as one zip;
- emulation never imports a device (nor cli, bench, fleet, report); devices never import cli, bench,
  fleet, report or train; nothing imports edgecnn.cli;
- no import cycles; no private name (_x) imported from another module;
- the wheel's package list (pyproject.toml) is the tree's.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.architecture import cycles     # the report's cycle finder (graphlib), checked below

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "edgecnn"


@dataclass(frozen=True)
class Imp:
    importer: str
    target: str        # the edgecnn module imported (the nearest existing module above a missing name)
    name: str | None   # the name taken from it (`from target import name`), None for `import target`
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def parse_imports(name: str, path: Path) -> list[Imp]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out: list[Imp] = []
    for node in ast.walk(tree):                      # every node: function bodies included
        if isinstance(node, ast.Import):
            out += [Imp(name, a.name, None, node.lineno) for a in node.names
                    if a.name == "edgecnn" or a.name.startswith("edgecnn.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert node.level <= len(here), f"{name}:{node.lineno}: relative import above the package"
                base = here[:len(here) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod == "edgecnn" or mod.startswith("edgecnn."):
                for a in node.names:
                    sub = f"{mod}.{a.name}"
                    out.append(Imp(name, sub, None, node.lineno) if sub in MODULES
                               else Imp(name, mod, a.name, node.lineno))
    return out


IMPORTS = [i for n, p in MODULES.items() for i in parse_imports(n, p)]


def graph() -> dict[str, set[str]]:
    g: dict[str, set[str]] = {n: set() for n in MODULES}
    for i in IMPORTS:
        if i.target != i.importer:
            g[i.importer].add(i.target)
    return g


def package_of(module: str) -> str:
    """edgecnn.<sub> for a subpackage's modules, else the top-level module itself."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else module


def imports_of(package: str) -> set[tuple[str, str, int]]:
    return {(i.importer, i.target, i.line) for i in IMPORTS
            if package_of(i.importer) == package and i.target != "edgecnn"}


# ----------------------------------------------------------------------------------- the parser itself
def test_the_parser_sees_lazy_and_relative_imports():
    """Checks on imports known to be there, so a parser that misses some cannot pass what follows."""
    found = {(i.importer, i.target) for i in IMPORTS}
    assert ("edgecnn.cli", "edgecnn.train") in found                   # lazy, relative, inside a command
    assert ("edgecnn.agent.runtimes.base", "edgecnn.core.contract") in found   # `from ...core.contract import`
    assert ("edgecnn.agent.run", "edgecnn.agent.tensorrt_build") in found      # lazy, inside a function
    assert ("edgecnn.core.artifact", "edgecnn") in found               # `from .. import __version__`
    assert len(MODULES) > 50 and len(IMPORTS) > 150


def test_every_import_names_a_module_or_a_name_in_one():
    missing = []
    for i in IMPORTS:
        if i.target not in MODULES:
            missing.append(f"{i.importer}:{i.line} imports {i.target}, which does not exist")
        elif i.name is not None and i.name != "*":
            tree = ast.parse(MODULES[i.target].read_text(encoding="utf-8"))
            defined = {t.id for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign))
                       for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
            defined |= {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))}
            defined |= {(a.asname or a.name).split(".")[0] for n in tree.body
                        if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
            if i.name not in defined:
                missing.append(f"{i.importer}:{i.line} imports {i.name} from {i.target}, which has none")
    assert not missing, "\n".join(missing)


# ----------------------------------------------------------------------------------- cycles
def test_no_import_cycles():
    """None among modules, lazy imports included (a lazy import hides a cycle from Python, not from the reader)."""
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_the_cycle_finder_finds_a_cycle():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(g) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# ----------------------------------------------------------------------------------- layers
LAYERS = {
    # package: (what it may import besides itself and the root package, or None, what it must not import)
    "edgecnn.core": ({"edgecnn.core"}, None),
    "edgecnn.agent": ({"edgecnn.agent", "edgecnn.core"}, None),
    "edgecnn.emulation": (None, {"edgecnn.devices", "edgecnn.cli", "edgecnn.bench", "edgecnn.fleet",
                                 "edgecnn.report"}),
    "edgecnn.devices": (None, {"edgecnn.cli", "edgecnn.bench", "edgecnn.fleet", "edgecnn.report",
                               "edgecnn.train"}),
}


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_layering(package):
    allowed, forbidden = LAYERS[package]
    bad = []
    for importer, target, line in sorted(imports_of(package)):
        p = package_of(target)
        if (allowed is not None and p not in allowed) or (forbidden is not None and p in forbidden):
            bad.append(f"{importer}:{line} imports {target}")
    assert not bad, f"{package} reaches outside its layer:\n" + "\n".join(bad)


def test_the_root_package_imports_nothing_of_edgecnn():
    """Every layer may import the root package (__version__): it must stay empty of imports."""
    assert not [i for i in IMPORTS if i.importer == "edgecnn"]


def test_nothing_imports_the_cli():
    bad = [f"{i.importer}:{i.line}" for i in IMPORTS
           if package_of(i.target) == "edgecnn.cli" and i.importer != "edgecnn.cli"]
    assert not bad, "edgecnn.cli imported by " + ", ".join(bad)


def test_only_the_cli_builds_the_report_page():
    """The page is a pure reader of a run: train, export and bench never import it; the CLI calls it after them."""
    bad = [f"{i.importer}:{i.line}" for i in IMPORTS
           if i.target == "edgecnn.report" and i.importer not in ("edgecnn.cli", "edgecnn.report")]
    assert not bad, "edgecnn.report imported by " + ", ".join(bad)


def test_no_private_name_imported_across_modules():
    bad = [f"{i.importer}:{i.line} imports {i.name} from {i.target}" for i in IMPORTS
           if i.name and i.name.startswith("_") and not i.name.startswith("__") and i.target != i.importer]
    bad += [f"{i.importer}:{i.line} imports the private module {i.target}" for i in IMPORTS
            if any(part.startswith("_") and not part.startswith("__") for part in i.target.split("."))]
    assert not bad, "\n".join(bad)


# ----------------------------------------------------------------------------------- what ships
def closure(start: str) -> set[str]:
    g, seen, todo = graph(), set(), [start]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += g[m]
            # importing a submodule runs its packages' __init__ first
            parts = m.split(".")
            todo += [".".join(parts[:k]) for k in range(1, len(parts))]
    return seen


def test_the_agent_zip_carries_everything_the_agent_imports(tmp_path):
    from edgecnn.devices.base import agent_zip
    z = tmp_path / "agent.pyz"
    z.write_bytes(agent_zip())
    names = set(zipfile.ZipFile(z).namelist())
    needed = closure("edgecnn.agent.run")
    missing = [m for m in sorted(needed)
               if MODULES[m].relative_to(ROOT).as_posix() not in names]
    assert not missing, f"the agent zip lacks {missing}"
    assert {package_of(m) for m in needed} <= {"edgecnn", "edgecnn.agent", "edgecnn.core"}
    # it runs alone: isolated from this checkout (-I: no PYTHONPATH, no user site), from another folder
    p = subprocess.run([sys.executable, "-I", str(z), "--help"], capture_output=True, text=True, cwd=tmp_path,
                       timeout=120)
    assert p.returncode == 0 and "--request" in p.stdout, p.stderr[-2000:]


def test_the_wheel_lists_every_package_of_the_tree():
    tomllib = pytest.importorskip("tomllib")
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = cfg["package-dir"]
    tree = {module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py")}
    tree |= set(mapped)
    assert sorted(cfg["packages"]) == sorted(tree)
    for pkg, folder in mapped.items():
        assert (ROOT / folder / "__init__.py").is_file() and pkg in cfg["package-data"], pkg
    assert mapped == {"edgecnn.recipes": "recipes", "edgecnn.calibration": "calibration"}


def test_builtin_data_is_read_through_the_package():
    from edgecnn import recipe
    from edgecnn.paths import builtin
    assert set(recipe.available()) == {"crop_disease", "products", "traffic_signs"}
    assert {p.name for p in builtin("calibration").glob("*.txt")} == {
        "crop_disease.txt", "products.txt", "traffic_signs.txt"}
    assert not (PACKAGE / "recipes").exists() and not (PACKAGE / "calibration").exists()
