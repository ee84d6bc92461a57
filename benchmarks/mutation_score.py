#!/usr/bin/env python3
"""Mutation score of the code that decides (comparisons, budgets, verdicts, calibration, the emulated
device's agreement, the float fallback, the contract), measured with mutmut.

mutmut's own configuration is ``[tool.mutmut]`` in pyproject.toml: the modules it mutates and the fast
tests it runs per mutant. This script runs it in a throwaway copy of the working tree (mutmut writes a
``mutants/`` tree; the checkout stays untouched and editable meanwhile), then scores each module over its
decision functions (all functions of a module unless DECISIONS names some) and writes the score and every
surviving mutant, with its diff, to benchmarks/results/mutation_score.json.

    python3 benchmarks/mutation_score.py            # ~10 min on 2 cores
    python3 benchmarks/mutation_score.py --keep DIR  # keep the copy to browse it: cd DIR && mutmut browse

mutmut pins a newer click than edgecnn does, so it lives in its own virtual environment
(.venv-mutation/, made on first use, sharing the installed packages); pass --mutmut to use another.
Score = killed (or timed out) / all mutants of the decision functions; a mutant no selected test reaches
counts as surviving.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "mutation_score.json"
MUTMUT_VERSION = "3.8.1"
VENV = ROOT / ".venv-mutation"
GOAL_PCT = 85.0
DETECTED = {"killed", "timeout"}

# Modules of mixed purpose: only these functions decide; the rest drive engines and is covered by the
# suite's slower tests. A module not listed here is scored over all of its functions.
DECISIONS = {
    "edgecnn/bench.py": ["combine_latency", "combine_runs", "versus_reference", "judge_budgets", "_budget",
                         "Deployable.exit_code", "Deployable.line", "Deployable.summary", "choose_deployable", "check", "_value",
                         "_needed"],
    "edgecnn/devices/emulated.py": ["agreement", "estimate"],
    "edgecnn/export/tflite.py": ["rank_sensitivity"],
}


def mutmut_binary(given: str | None) -> Path:
    """The mutmut to run: --mutmut, else the project's mutation venv, made on first use."""
    if given:
        return Path(given)
    exe = VENV / "bin" / "mutmut"
    if not exe.exists():
        print(f"creating {VENV.name}/ with mutmut {MUTMUT_VERSION} (once)")
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(VENV)], check=True, timeout=300)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", f"mutmut=={MUTMUT_VERSION}"], check=True,
                       timeout=900)
    return exe


def copy_tree(dest: Path) -> None:
    """Tracked and untracked-but-not-ignored files, as they are now."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True, timeout=60).stdout.decode().split("\0")
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)


def mutant_globs(modules: list[str]) -> list[str]:
    """mutmut's mutant names of the decision functions: module.x_function__mutmut_N, and
    module.xǁClassǁmethod__mutmut_N for methods."""
    out = []
    for path in modules:
        dotted = path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        funcs = DECISIONS.get(path)
        if funcs is None:
            out.append(f"{dotted}.x*")
        for f in funcs or ():
            cls, _, meth = f.rpartition(".")
            out.append(f"{dotted}.xǁ{cls}ǁ{meth}__mutmut_*" if cls else f"{dotted}.x_{f}__mutmut_*")
    return out


def run_mutmut(exe: Path, work: Path, globs: list[str], children: int, timeout: float) -> float:
    t0 = time.perf_counter()
    log = work / "mutmut-run.log"
    with open(log, "w") as out:
        # the copy is not beside ../shared: tests that read the shared datasets are pointed at them
        env = dict(os.environ, EDGECNN_SHARED_DATA=os.environ.get("EDGECNN_SHARED_DATA",
                                                                  str(ROOT.parent / "shared" / "data")))
        r = subprocess.run([str(exe), "run", "--max-children", str(children), *globs], cwd=work, stdout=out,
                           stderr=subprocess.STDOUT, timeout=timeout, env=env)
    if r.returncode != 0:
        sys.exit(f"Error: mutmut run failed (exit {r.returncode}); its output: {log}")
    return time.perf_counter() - t0


def statuses(exe: Path, work: Path) -> dict[str, str]:
    out = subprocess.run([str(exe), "results", "--all", "true"], cwd=work, capture_output=True, text=True,
                         check=True, timeout=300).stdout
    return dict(re.findall(r"^\s+(\S+): (.+)$", out, flags=re.M))


def function_of(key: str) -> tuple[str, str]:
    """'edgecnn.bench.x_check__mutmut_3' -> ('edgecnn/bench.py', 'check');
    'edgecnn.bench.xǁDeployableǁline__mutmut_1' -> ('edgecnn/bench.py', 'Deployable.line')."""
    dotted, mangled = key.rsplit(".x", 1)
    name = mangled.rsplit("__mutmut_", 1)[0]
    func = ".".join(filter(None, name.split("ǁ"))) if name.startswith("ǁ") else name.removeprefix("_")
    path = dotted.replace(".", "/")
    return (path + "/__init__.py" if (ROOT / path).is_dir() else path + ".py"), func


def diff_of(exe: Path, work: Path, key: str) -> list[str]:
    out = subprocess.run([str(exe), "show", key], cwd=work, capture_output=True, text=True, timeout=120).stdout
    return [ln for ln in out.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]


def score(exe: Path, work: Path, modules: list[str]) -> dict:
    per: dict[str, dict] = {}
    for key, status in sorted(statuses(exe, work).items()):
        path, func = function_of(key)
        wanted = DECISIONS.get(path)
        if path not in modules or (wanted is not None and func not in wanted):
            continue
        m = per.setdefault(path, {"functions": wanted or "all", "counts": Counter(), "survivors": []})
        m["counts"][status] += 1
        if status not in DETECTED:
            m["survivors"].append({"mutant": key, "function": func, "status": status,
                                   "diff": diff_of(exe, work, key)})
    for m in per.values():
        total = sum(m["counts"].values())
        detected = sum(m["counts"][s] for s in DETECTED)
        m.update(total=total, detected=detected, score_pct=round(100 * detected / total, 1) if total else None,
                 counts=dict(m["counts"]))
    return per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mutmut", help="the mutmut executable (default: .venv-mutation/bin/mutmut, made if missing)")
    ap.add_argument("--children", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--timeout", type=float, default=3 * 3600, help="seconds for the whole mutmut run")
    ap.add_argument("--keep", type=Path, help="keep the copy (and its mutants/) in this folder")
    a = ap.parse_args()
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    exe = mutmut_binary(a.mutmut)
    work = a.keep or Path(tempfile.mkdtemp(prefix="edgecnn-mutation-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        copy_tree(work)
        seconds = run_mutmut(exe, work, mutant_globs(cfg["only_mutate"]), a.children, a.timeout)
        per = score(exe, work, cfg["only_mutate"])
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    total = sum(m["total"] for m in per.values())
    detected = sum(m["detected"] for m in per.values())
    doc = {"tool": f"mutmut {MUTMUT_VERSION}", "command": "python3 benchmarks/mutation_score.py",
           "tests": cfg["pytest_add_cli_args_test_selection"], "pytest_args": cfg.get("pytest_add_cli_args", []),
           "wall_s": round(seconds, 1), "cpus": os.cpu_count(), "goal_pct": GOAL_PCT,
           "total": total, "detected": detected, "score_pct": round(100 * detected / total, 1) if total else None,
           "modules": per}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(RESULT)
    print(f"{'module':34s} {'mutants':>8s} {'killed':>7s} {'score':>7s}")
    for path, m in per.items():
        print(f"{path:34s} {m['total']:8d} {m['detected']:7d} {m['score_pct']:6.1f}%")
    print(f"{'all decision code':34s} {total:8d} {detected:7d} {doc['score_pct']:6.1f}%  (goal {GOAL_PCT}%, "
          f"mutmut {seconds / 60:.1f} min); survivors with diffs in {RESULT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
