"""The package's shape: lines per package, the longest functions, the import graph between packages
and its cycles (module level and package level).

    python benchmarks/architecture.py                   # seconds; writes benchmarks/results/architecture.json
    python benchmarks/architecture.py --out NAME.json   # another file under benchmarks/results/

Every module of `edgecnn/` is parsed with `ast` (nothing is imported): every import counts, those
inside functions (lazy imports) and relative ones included. A package is a subpackage of `edgecnn`
(`edgecnn.core`, `edgecnn.devices`, ...); the modules directly under `edgecnn/` are grouped as
"edgecnn (top level)" for the line counts, and stand each as itself in the import graph (`edgecnn.bench`),
since they are the units that import each other. The generated flatbuffers module is counted apart
(`generated_lines`), not in its package's lines.
"""

from __future__ import annotations

import argparse
import ast
import graphlib
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "edgecnn"
TOP = "edgecnn (top level)"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The edgecnn modules `name` imports anywhere in its file (resolved to modules that exist)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    base = name.split(".") if is_package(path) else name.split(".")[:-1]
    found: set[str] = set()

    def add(target: str) -> None:
        # `from pkg import mod` names a module when pkg.mod exists; otherwise the nearest module above
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "edgecnn" or a.name.startswith("edgecnn."):
                    add(a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join(anchor + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not (mod == "edgecnn" or mod.startswith("edgecnn.")):
                continue
            for a in node.names:
                sub = f"{mod}.{a.name}"
                add(sub if sub in known else mod)
    return found


def module_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {n: imports_of(n, p, known) for n, p in mods.items()}


def unit_of(module: str) -> str:
    """The module's package in the package graph: edgecnn.<sub> for a subpackage's modules, the module
    itself for a module directly under edgecnn/ (and `edgecnn` for the package's __init__)."""
    parts = module.split(".")
    if len(parts) == 1:
        return module
    sub = PACKAGE / parts[1]
    return ".".join(parts[:2]) if sub.is_dir() else module


def group_of(module: str) -> str:
    unit = unit_of(module)
    return unit if (PACKAGE / unit.split(".")[-1]).is_dir() and "." in unit else TOP


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for m, deps in graph.items():
        u = unit_of(m)
        out.setdefault(u, set())
        for d in deps:
            if unit_of(d) != u:
                out[u].add(unit_of(d))
    return dict(out)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles, each as a path back to its start, found by the standard library's topological sorter
    (graphlib): it names one cycle when the graph has any; that cycle's last edge is set aside and the
    search repeats, so every cycle that does not share its last edge with one found before is named."""
    g = {v: set(ws) for v, ws in graph.items()}
    found: list[list[str]] = []
    while True:
        try:
            graphlib.TopologicalSorter(g).prepare()
            return found
        except graphlib.CycleError as e:
            cycle = list(reversed(e.args[1]))      # graphlib lists a module before its importer: reversed, each imports the next
            found.append(cycle)
            g[cycle[-2]].discard(cycle[-1])


def lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def functions(name: str, path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[tuple[str, int]] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                q = f"{prefix}.{child.name}"
                out.append((q, child.end_lineno - child.lineno + 1))
                walk(child, q)
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}.{child.name}")

    walk(tree, name)
    return out


def measure() -> dict:
    mods = modules()
    per_package: dict[str, dict] = defaultdict(lambda: {"modules": 0, "lines": 0, "generated_lines": 0})
    funcs: list[tuple[str, int]] = []
    for n, p in mods.items():
        g = per_package[group_of(n)]
        g["modules"] += 1
        if p.name.endswith("_generated.py"):
            g["generated_lines"] += lines(p)
            continue
        g["lines"] += lines(p)
        funcs += functions(n, p)
    graph = module_graph()
    pkgs = package_graph(graph)
    edges = sorted([a, b] for a, ds in pkgs.items() for b in ds)
    return {
        "lines_per_package": dict(sorted(per_package.items(), key=lambda kv: -kv[1]["lines"])),
        "total_lines": sum(g["lines"] for g in per_package.values()),
        "longest_functions": [{"function": q, "lines": n}
                              for q, n in sorted(funcs, key=lambda t: (-t[1], t[0]))[:10]],
        "package_edges": edges,
        "package_cycles": cycles(pkgs),
        "module_cycles": cycles(graph),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="architecture.json", help="file name under benchmarks/results/")
    args = ap.parse_args()
    r = measure()
    print("lines per package:")
    for k, v in r["lines_per_package"].items():
        gen = f" (+{v['generated_lines']} generated)" if v["generated_lines"] else ""
        print(f"  {k:24s} {v['lines']:6d} lines in {v['modules']:2d} modules{gen}")
    print(f"  {'total':24s} {r['total_lines']:6d}")
    print("ten longest functions:")
    for f in r["longest_functions"]:
        print(f"  {f['lines']:4d}  {f['function']}")
    print("package import edges:")
    for a, b in r["package_edges"]:
        print(f"  {a} -> {b}")
    print("package cycles:", "none" if not r["package_cycles"] else "")
    for c in r["package_cycles"]:
        print("  " + " -> ".join(c))
    print("module cycles:", "none" if not r["module_cycles"] else "")
    for c in r["module_cycles"]:
        print("  " + " -> ".join(c))
    out = ROOT / "benchmarks" / "results" / args.out
    out.write_text(json.dumps(r, indent=1) + "\n", encoding="utf-8")
    print(f"saved {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
