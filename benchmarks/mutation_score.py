#!/usr/bin/env python3
"""Mutation score of every module that decides, carries or reports a verdict, measured with mutmut.

mutmut's own configuration is ``[tool.mutmut]`` in pyproject.toml: the modules it mutates (the scope) and
the tests it runs per mutant (the fast set: every test not marked slow). This script runs it in a
throwaway copy of the working tree (mutmut writes a ``mutants/`` tree; the checkout stays untouched and
editable meanwhile), then scores each module over its decision functions (all functions of a module
unless DECISIONS names some) and writes, per module, the mutants, killed, timed out, survived and
equivalent counts and every surviving mutant with its diff to benchmarks/results/mutation_score.json
(mutation_per_module.json for --per-module).

    python3 benchmarks/mutation_score.py                          # the whole scope (hours on 2 cores)
    python3 benchmarks/mutation_score.py --only edgecnn/fleet.py  # some modules of the scope
    python3 benchmarks/mutation_score.py --keep DIR               # keep the copy: cd DIR && mutmut browse
    python3 benchmarks/mutation_score.py --keep DIR --rescore     # score a kept copy again (a run cut short
                                                                  # by --timeout scores what it checked)
    python3 benchmarks/mutation_score.py --sample 400 --seed 1    # a uniform random sample of the scope's
                                                                  # mutants: an estimate with its interval
    python3 benchmarks/mutation_score.py --per-module 30 --seed 4 # 30 drawn from each module (all of a smaller
                                                                  # one): every module's score with its interval

mutmut pins a newer click than edgecnn does, so it lives in its own virtual environment
(.venv-mutation/, made on first use, sharing the installed packages); pass --mutmut to use another.
Score = (killed + timed out) / (mutants - equivalent); a mutant no selected test reaches counts as
surviving. Equivalent mutants (no test can tell them apart: the same behaviour) are listed with the
reason in benchmarks/mutation_equivalent.json, matched by module and diff, and left out of the score.

With --sample N the mutants are generated for the whole scope, then N of them, drawn uniformly at random
(--seed), are run: each score is then an estimate of the whole scope's, printed and saved with its exact
(Clopper-Pearson) 95% interval; the mutants not drawn count as unchecked. Each module's interval is as
wide as its share of the draw makes it.

With --per-module N the draw is stratified: N mutants from each module (every mutant of a module with
fewer), so each module's score is estimated from N mutants with its exact 95% interval. The scope's score is
then the modules' scores weighted by their numbers of mutants, and its 95% interval is the weighted sum of
the modules' bounds each taken at confidence 1 - 0.05/k for k sampled modules (Bonferroni: all k hold at
once with probability at least 95%, so the weighted sum does too; a module drawn whole is known exactly).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "mutation_score.json"              # the scope, or a draw from it
RESULT_PER_MODULE = ROOT / "benchmarks" / "results" / "mutation_per_module.json"   # a draw from each module
EQUIVALENT = ROOT / "benchmarks" / "mutation_equivalent.json"
MUTMUT_VERSION = "3.8.1"
VENV = ROOT / ".venv-mutation"
GOAL_PCT = 90.0            # over the scope
MODULE_GOAL_PCT = 85.0     # per module
DETECTED = {"killed", "timeout"}
UNCHECKED = {"not checked"}    # a run cut short (--timeout): left out of the score, and counted

# Modules of mixed purpose: only these functions decide (or carry a verdict's numbers); the rest drives
# engines, boards or processes end to end and is covered by the suite's slow tests. A module not listed
# here is scored over all of its functions.
DECISIONS = {
    "edgecnn/export/tflite.py": ["rank_sensitivity"],
    "edgecnn/devices/base.py": ["DeviceOptions.parse", "OptionSpec.expects", "read_agent_result"],
    "edgecnn/devices/__init__.py": ["device_class", "devices_with", "check_request"],
    "edgecnn/devices/ssh.py": ["q", "remote_path", "ssh_error", "SSHTransport.__init__", "SSHTransport.options",
                               "SSHTransport.argv", "probe_command", "bounded", "local_path", "JetsonDevice.__init__",
                               "engine_build_request"],
    "edgecnn/devices/adb.py": ["parse_devices", "choose_device", "parse_benchmark_output", "benchmark_argv"],
    "edgecnn/devices/emulated.py": ["agreement", "estimate", "load_profile", "list_profiles"],
    "edgecnn/distribute.py": ["Cluster.__post_init__", "Cluster.from_option", "Cluster.from_tf_config",
                              "Cluster.from_env", "Cluster.tf_config", "weights_sha256", "setup_sha256", "digest_row",
                              "differing_rows", "in_worker_order", "peer_reason", "Replicas.shard",
                              "Replicas.describe"],   # the collectives need a cluster: tests/test_distribute.py
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
        env = shared_env()
        # its own process group: mutmut's forked workers end with it when the run is cut short
        r = subprocess.Popen([str(exe), "run", "--max-children", str(children), *globs], cwd=work, stdout=out,
                             stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            code = r.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(r.pid, signal.SIGTERM)
            r.wait()
            print(f"mutmut ran past --timeout {timeout:.0f} s: scoring the mutants it checked")
            return time.perf_counter() - t0
    if code != 0:
        sys.exit(f"Error: mutmut run failed (exit {code}); its output: {log}")
    return time.perf_counter() - t0


def generate(exe: Path, work: Path, children: int, timeout: float) -> None:
    """mutmut's mutants and per-test stats, without running any mutant: its run with a filter that matches
    no mutant stops (non-zero) right after both."""
    with open(work / "mutmut-generate.log", "w") as out:
        subprocess.run([str(exe), "run", "--max-children", str(children), "edgecnn.none.x_none__mutmut_0"],
                       cwd=work, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, env=shared_env())


def draw(exe: Path, work: Path, globs: list[str], n: int, seed: int) -> tuple[list[str], int]:
    """n mutant names drawn uniformly from those the globs select, and how many there were."""
    names = population(exe, work, globs)
    return sorted(random.Random(seed).sample(names, min(n, len(names)))), len(names)


def draw_per_module(exe: Path, work: Path, modules: list[str], n: int, seed: int) -> tuple[list[str], dict]:
    """n mutant names drawn uniformly from each module's (all of a module with fewer), and each module's
    number of mutants."""
    rng, picked, sizes = random.Random(seed), [], {}
    names = population(exe, work, mutant_globs(modules))
    for path in modules:
        own = [k for k in names if function_of(k)[0] == path]
        sizes[path] = len(own)
        picked += rng.sample(own, min(n, len(own)))
    return sorted(picked), sizes


def population(exe: Path, work: Path, globs: list[str]) -> list[str]:
    names = sorted(k for k in statuses(exe, work) if any(fnmatch.fnmatchcase(k, g) for g in globs))
    if not names:
        sys.exit("Error: mutmut generated no mutants of the scope (see mutmut-generate.log in --keep DIR)")
    return names


def earlier_wall_s(result: Path, drawn: dict | None) -> float:
    """The mutmut time of the run a rescore scores again (its saved result, when it is of the same draw)."""
    try:
        doc = json.loads(result.read_text())
    except (OSError, ValueError):
        return 0.0
    return float(doc.get("wall_s", 0.0)) if doc.get("sample") == drawn else 0.0


def interval(detected: int, n: int, confidence: float = 0.95) -> list[float] | None:
    """Exact (Clopper-Pearson) interval of a score estimated from n drawn mutants, in percent."""
    if n <= 0:
        return None
    from scipy.stats import beta
    tail = (1 - confidence) / 2
    lo = 0.0 if detected == 0 else beta.ppf(tail, detected, n - detected + 1)
    hi = 1.0 if detected == n else beta.ppf(1 - tail, detected + 1, n - detected)
    return [round(100 * float(lo), 1), round(100 * float(hi), 1)]


def stratified(per: dict, sizes: dict[str, int]) -> tuple[float | None, list[float] | None]:
    """The scope's score from a per-module draw: the modules' scores weighted by their numbers of mutants,
    and the Bonferroni-combined 95% interval (a module drawn whole contributes its exact score)."""
    scored = {p: m for p, m in per.items() if m["score_pct"] is not None}
    total = sum(sizes[p] for p in scored)
    if not total:
        return None, None
    sampled = [p for p, m in scored.items() if m["mutants"] < sizes[p]]
    confidence = 1 - 0.05 / max(1, len(sampled))
    est, lo, hi = 0.0, 0.0, 0.0
    for p, m in scored.items():
        w = sizes[p] / total
        a, b = (interval(m["detected"], m["mutants"] - m["equivalent"], confidence) if p in sampled
                else (m["score_pct"], m["score_pct"]))
        est, lo, hi = est + w * m["score_pct"], lo + w * a, hi + w * b
    return round(est, 1), [round(lo, 1), round(hi, 1)]


def shared_env() -> dict:
    # the copy is not beside ../shared: tests that read the shared datasets are pointed at them
    return dict(os.environ, EDGECNN_SHARED_DATA=os.environ.get("EDGECNN_SHARED_DATA",
                                                              str(ROOT.parent / "shared" / "data")))


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


def equivalents() -> list[dict]:
    """[{"module", "diff": [lines], "why"}]: mutants reviewed as equivalent (matched by module and diff)."""
    return json.loads(EQUIVALENT.read_text()) if EQUIVALENT.is_file() else []


def score(exe: Path, work: Path, modules: list[str]) -> dict:
    known = equivalents()
    per: dict[str, dict] = {}
    for key, status in sorted(statuses(exe, work).items()):
        path, func = function_of(key)
        wanted = DECISIONS.get(path)
        if path not in modules or (wanted is not None and func not in wanted):
            continue
        m = per.setdefault(path, {"functions": wanted or "all", "statuses": Counter(), "survivors": [],
                                  "equivalent_mutants": []})
        m["statuses"][status] += 1
        if status not in DETECTED and status not in UNCHECKED:
            diff = diff_of(exe, work, key)
            same = next((e for e in known if e["module"] == path and e["diff"] == diff), None)
            entry = {"mutant": key, "function": func, "status": status, "diff": diff}
            if same is not None:
                m["equivalent_mutants"].append({**entry, "why": same["why"]})
            else:
                m["survivors"].append(entry)
    for m in per.values():
        st = m["statuses"]
        unchecked = sum(st[s] for s in UNCHECKED)
        mutants = sum(st.values()) - unchecked
        equivalent = len(m["equivalent_mutants"])
        detected = sum(st[s] for s in DETECTED)
        m.update(mutants=mutants, killed=st["killed"], timed_out=st["timeout"], survived=len(m["survivors"]),
                 equivalent=equivalent, detected=detected, unchecked=unchecked, statuses=dict(st),
                 score_pct=round(100 * detected / (mutants - equivalent), 1) if mutants > equivalent else None,
                 score_ci95=interval(detected, mutants - equivalent))
    return per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mutmut", help="the mutmut executable (default: .venv-mutation/bin/mutmut, made if missing)")
    ap.add_argument("--children", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--timeout", type=float, default=12 * 3600, help="seconds for the whole mutmut run")
    ap.add_argument("--only", nargs="+", metavar="MODULE", help="score only these modules of the scope")
    ap.add_argument("--keep", type=Path, help="keep the copy (and its mutants/) in this folder")
    ap.add_argument("--sample", type=int, metavar="N", help="run N mutants drawn uniformly from the scope's")
    ap.add_argument("--per-module", type=int, metavar="N", help="run N mutants drawn from each module's")
    ap.add_argument("--seed", type=int, default=0, help="the draw's seed (--sample, --per-module)")
    ap.add_argument("--rescore", action="store_true",
                    help="only score the copy kept in --keep (e.g. after a run cut short by --timeout)")
    a = ap.parse_args()
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    modules = cfg["only_mutate"]
    if a.only:
        stray = sorted(set(a.only) - set(modules))
        if stray:
            sys.exit(f"Error: {stray[0]} is not in [tool.mutmut] only_mutate")
        modules = [m for m in modules if m in a.only]
    exe = mutmut_binary(a.mutmut)
    work = a.keep or Path(tempfile.mkdtemp(prefix="edgecnn-mutation-"))
    work.mkdir(parents=True, exist_ok=True)
    if a.sample and a.per_module:
        sys.exit("Error: --sample draws from the whole scope, --per-module from each module: give one")
    if a.rescore and a.keep is None:
        sys.exit("Error: --rescore needs --keep DIR (the copy a run left)")
    try:
        seconds, drawn = 0.0, None
        if not a.rescore:
            copy_tree(work)
            if a.sample or a.per_module:
                generate(exe, work, a.children, a.timeout)
        globs = mutant_globs(modules)
        if a.sample:          # the same draw again when rescoring: it depends only on the mutants and the seed
            globs, size = draw(exe, work, globs, a.sample, a.seed)
            drawn = {"n": len(globs), "seed": a.seed, "population": size}
        elif a.per_module:
            globs, sizes = draw_per_module(exe, work, modules, a.per_module, a.seed)
            drawn = {"n": len(globs), "seed": a.seed, "population": sum(sizes.values()),
                     "per_module": a.per_module, "populations": sizes}
        if a.rescore:
            seconds = earlier_wall_s(RESULT_PER_MODULE if a.per_module else RESULT, drawn)
        else:
            seconds = run_mutmut(exe, work, globs, a.children, a.timeout)
        per = score(exe, work, modules)
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    unchecked = sum(m["unchecked"] for m in per.values())
    mutants = sum(m["mutants"] for m in per.values())
    equivalent = sum(m["equivalent"] for m in per.values())
    detected = sum(m["detected"] for m in per.values())
    total_pct = round(100 * detected / (mutants - equivalent), 1) if mutants > equivalent else None
    total_ci = interval(detected, mutants - equivalent)
    if drawn and drawn.get("per_module"):
        for path, m in per.items():
            m["population"] = drawn["populations"][path]
        total_pct, total_ci = stratified(per, drawn["populations"])
    doc = {"tool": f"mutmut {MUTMUT_VERSION}", "command": "python3 benchmarks/mutation_score.py"
           + (f" --only {' '.join(modules)}" if a.only else "")
           + (f" --sample {a.sample} --seed {a.seed}" if a.sample else "")
           + (f" --per-module {a.per_module} --seed {a.seed}" if a.per_module and not a.sample else ""),
           "sample": drawn,
           "tests": cfg["pytest_add_cli_args_test_selection"], "pytest_args": cfg.get("pytest_add_cli_args", []),
           "scope": cfg["only_mutate"], "scored": modules,
           "wall_s": round(seconds, 1), "cpus": os.cpu_count(), "goal_pct": GOAL_PCT,
           "module_goal_pct": MODULE_GOAL_PCT,
           "mutants": mutants, "detected": detected, "equivalent": equivalent, "score_pct": total_pct,
           "score_ci95": total_ci,
           "unchecked": unchecked,
           "modules": per}
    result = RESULT_PER_MODULE if a.per_module else RESULT
    result.parent.mkdir(parents=True, exist_ok=True)
    tmp = result.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(result)
    print(f"{'module':32s} {'mutants':>7s} {'killed':>6s} {'timeout':>7s} {'survived':>8s} {'equiv':>5s} {'score':>7s}")
    for path, m in per.items():
        pct = "-" if m["score_pct"] is None else f"{m['score_pct']:.1f}%"
        low = "" if m["score_pct"] is None or m["score_pct"] >= MODULE_GOAL_PCT else "  < goal"
        ci = m["score_ci95"]
        print(f"{path:32s} {m['mutants']:7d} {m['killed']:6d} {m['timed_out']:7d} {m['survived']:8d} "
              f"{m['equivalent']:5d} {pct:>7s}{low}" + (f"  [{ci[0]}, {ci[1]}]" if drawn and ci else ""))
    print(f"{'scope' if not a.only else 'scored modules':32s} {mutants:7d} {'':6s} {'':7s} {'':8s} {equivalent:5d} "
          f"{'-' if total_pct is None else f'{total_pct:.1f}%':>7s}  (goal {GOAL_PCT}%, each module "
          f"{MODULE_GOAL_PCT}%; mutmut {seconds / 60:.1f} min)")
    for path, m in per.items():
        for sv in m["survivors"]:
            print(f"survivor {sv['mutant']} ({sv['status']}): " + " | ".join(sv["diff"])[:300])
    if drawn and drawn.get("per_module"):
        print(f"a draw of up to {drawn['per_module']} mutants from each module ({drawn['n']} of the scope's "
              f"{drawn['population']}, seed {drawn['seed']}): the scope's score, weighted by the modules' numbers of "
              f"mutants, is {total_pct}%, 95% interval {total_ci} (Bonferroni over the modules)")
    elif drawn:
        print(f"a draw of {drawn['n']} of the scope's {drawn['population']} mutants (seed {drawn['seed']}): the "
              f"scope's score is {total_pct}%, 95% interval {doc['score_ci95']}")
    elif unchecked:
        print(f"{unchecked} mutants were not checked (the run was cut short): not in the scores above")
    print(f"details: {result.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
