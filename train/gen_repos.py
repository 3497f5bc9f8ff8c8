#!/usr/bin/env python3
"""Generates small Python repositories (stdlib unittest, several modules and tests each) with one
planted bug, and a task file in the batch format (SWE-bench field names) for `m1 fix` / `m1 eval`.

Why the checks: a planted bug only teaches something if the tests see it, so every candidate is run
(tests pass on the clean code, at least one fails on the mutated code) and dropped otherwise.
Train and held-out sets never share a (domain, mutation) combination nor a seed.

  python3 train/gen_repos.py --out DIR --count N --seed S --split train|heldout
"""
import argparse
import ast
import hashlib
import json
import keyword
import os
import random
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from funcs import DOMAINS  # noqa: E402
from mutations import KINDS, mutate  # noqa: E402

PACKAGES = ["toolkit", "corelib", "utils", "helpers", "app", "lib", "common", "engine", "service", "kit"]
PREFIXES = ["acme", "tiny", "blue", "quick", "north", "simple", "micro", "open", "bright", "lumen"]


def combo_is_heldout(domain, kind):
    h = int(hashlib.sha256(f"{domain}/{kind}".encode()).hexdigest(), 16)
    return h % 5 == 0


def fill(obj, names):
    if isinstance(obj, str):
        return obj.format(**names) if "{" in obj else obj
    if isinstance(obj, list):
        return [fill(x, names) for x in obj]
    if isinstance(obj, tuple):
        return tuple(fill(x, names) for x in obj)
    if isinstance(obj, dict):
        return {fill(k, names): fill(v, names) for k, v in obj.items()}
    return obj


# Local names a repository may use instead of the template's: two pools combined give thousands of
# spellings, so the exact text of a line can't be recalled from training and must be read (copied)
# from what `view` shows, which is the skill a fix needs on code never seen before.
NAME_HEADS = ["val", "value", "num", "n", "m", "x", "y", "z", "acc", "total", "cnt", "count", "item", "elem",
              "entry", "rec", "row", "data", "seq", "arr", "lst", "nums", "vals", "limit", "cap", "low", "high",
              "lo", "hi", "start", "stop", "end", "first", "last", "cur", "prev", "key", "k", "v", "idx", "i", "j",
              "pos", "res", "out", "ret", "buf", "tmp", "w", "part", "piece", "chunk", "a", "b", "c", "p", "q",
              "amount", "size", "width", "step", "base", "unit", "score", "mark", "level", "rate", "price", "node"]
NAME_TAILS = ["", "", "", "_a", "_b", "1", "2", "_in", "_out", "_val", "_list", "s", "_now", "_max", "_min",
              "_sum", "_x", "_n", "_cur", "_all"]
RESERVED = set(dir(__builtins__)) | {"self", "cls"}


def rename_locals(src, rng):
    """Renames a function's parameters and local variables (consistently, never builtins, globals
    or names already used in it) to random names from the pools above."""
    tree = ast.parse(src)
    fn = tree.body[0]
    local = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.arg):
            local.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            local.add(node.id)
    used = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)} | {fn.name}
    mapping = {}
    for name in sorted(local):
        if name in RESERVED or rng.random() < 0.25:
            continue
        for _ in range(20):
            new = rng.choice(NAME_HEADS) + rng.choice(NAME_TAILS)
            if (new not in used and new not in RESERVED and new not in mapping.values() and new.isidentifier()
                    and not keyword.iskeyword(new)):
                mapping[name] = new
                used.add(new)
                break
    for node in ast.walk(fn):
        if isinstance(node, ast.arg) and node.arg in mapping:
            node.arg = mapping[node.arg]
        elif isinstance(node, ast.Name) and node.id in mapping:
            node.id = mapping[node.id]
    return ast.unparse(tree) + "\n"


def build_module(domain, rng, nfuncs, rename=False):
    d = DOMAINS[domain]
    names = {k: rng.choice(v) for k, v in d["vocab"].items()}
    chosen = rng.sample(d["funcs"], min(nfuncs, len(d["funcs"])))
    parts, tests = [], []
    for name_t, src_t, cases in chosen:
        fn_name = name_t.format(**names)
        src = src_t.format(**names)
        if rename and rng.random() < 0.75:  # (no draw when off: seeds keep their repositories)
            src = rename_locals(src, rng)
        if rng.random() < 0.4:  # some repos document their functions
            lines = src.strip("\n").split("\n")
            lines.insert(1, f'    """{fn_name.replace("_", " ").capitalize()}."""')
            src = "\n".join(lines) + "\n"
        parts.append(src.strip("\n"))
        tests.append((fn_name, fill(cases, names)))
    header = f'"""{domain.capitalize()} helpers."""\n' if rng.random() < 0.5 else ""
    source = ast.unparse(ast.parse(header + "\n\n".join(parts))) + "\n"
    return source, tests


def expected_values(module_src, tests):
    ns = {}
    exec(compile(module_src, "<module>", "exec"), ns)
    out = []
    for fn_name, cases in tests:
        for args in cases:
            out.append((fn_name, args, ns[fn_name](*args)))
    return out


def test_source(pkg, mod, expectations, rng):
    cls = "Test" + "".join(p.capitalize() for p in mod.split("_"))
    lines = ["import unittest", "", f"from {pkg} import {mod}", "", "", f"class {cls}(unittest.TestCase):"]
    counters = {}
    ids = {}
    for fn_name, args, value in expectations:
        i = counters.get(fn_name, 0)
        counters[fn_name] = i + 1
        test = f"test_{fn_name}_{i}"
        call = f"{mod}.{fn_name}({', '.join(repr(a) for a in args)})"
        assert_fn = "assertAlmostEqual" if isinstance(value, float) else "assertEqual"
        lines += ["", f"    def {test}(self):", f"        self.{assert_fn}({call}, {value!r})"]
        ids[f"tests.test_{mod}.{cls}.{test}"] = (fn_name, args, value)
    lines += ["", "", "if __name__ == '__main__':", "    unittest.main()", ""]
    return "\n".join(lines), ids


def run_tests(repo):
    """Returns the set of failing test ids (unittest verbose output parsed)."""
    p = subprocess.run([sys.executable, "-m", "unittest", "-v"], cwd=repo, capture_output=True, text=True,
                       timeout=60)
    failed = set()
    def test_id(name, where):  # Python < 3.11 prints the class, >= 3.11 the full id
        return where if where.endswith("." + name) else f"{where}.{name}"
    for m in re.finditer(r"^(test_\w+) \(([\w.]+)\)\S* \.\.\. (FAIL|ERROR)", p.stderr, re.M):
        failed.add(test_id(m.group(1), m.group(2)))
    for m in re.finditer(r"^(FAIL|ERROR): (test_\w+) \(([\w.]+)\)", p.stderr, re.M):
        failed.add(test_id(m.group(2), m.group(3)))
    if p.returncode != 0 and not failed:
        failed.add("<collection error>")
    return failed


def describe_failure(module_src, fn_name, args, expected):
    ns = {}
    exec(compile(module_src, "<module>", "exec"), ns)
    try:
        got = repr(ns[fn_name](*args))
    except Exception as e:  # the mutated code may raise
        got = f"an exception ({type(e).__name__}: {e})"
    return got


ISSUE_TEMPLATES = [
    "`{call}` returns {got}, but it should return {want}.",
    "Bug: calling `{call}` gives {got} instead of {want}.",
    "{fn} is wrong: `{call}` should be {want}, we get {got}. Please fix it.",
    "The tests for {fn} fail. For example `{call}` yields {got} (expected {want}).",
]


def git(repo, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="m1", GIT_AUTHOR_EMAIL="m1@example.invalid",
               GIT_COMMITTER_NAME="m1", GIT_COMMITTER_EMAIL="m1@example.invalid",
               GIT_AUTHOR_DATE="2026-01-01T00:00:00Z", GIT_COMMITTER_DATE="2026-01-01T00:00:00Z")
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def make_task(seed, split, out_dir, rename=False):
    rng = random.Random(seed)
    domains = list(DOMAINS)
    for _ in range(50):
        domain = rng.choice(domains)
        kind = rng.choice(KINDS)
        if combo_is_heldout(domain, kind) == (split == "heldout"):
            break
    else:
        return None
    pkg = rng.choice(PREFIXES) + "_" + rng.choice(PACKAGES)
    others = rng.sample([d for d in domains if d != domain], rng.randint(1, 2))
    modules = {}
    for dom in [domain] + others:
        src, tests = build_module(dom, rng, rng.randint(2, 4), rename)
        modules[dom] = (src, tests)
    target_fn = rng.choice(modules[domain][1])[0]
    mutated = mutate(modules[domain][0], target_fn, kind, rng)
    if mutated is None:
        return None
    new_src, desc, _ = mutated

    repo = os.path.join(out_dir, f"{split}-{seed:05d}")
    shutil.rmtree(repo, ignore_errors=True)
    os.makedirs(os.path.join(repo, pkg))
    os.makedirs(os.path.join(repo, "tests"))
    open(os.path.join(repo, pkg, "__init__.py"), "w").write("")
    open(os.path.join(repo, "tests", "__init__.py"), "w").write("")
    all_ids = {}
    for dom, (src, tests) in modules.items():
        try:
            exp = expected_values(src, tests)
        except Exception:
            return None
        open(os.path.join(repo, pkg, f"{dom}.py"), "w").write(src)
        tsrc, ids = test_source(pkg, dom, exp, rng)
        open(os.path.join(repo, "tests", f"test_{dom}.py"), "w").write(tsrc)
        all_ids.update(ids)
    open(os.path.join(repo, "README.md"), "w").write(
        f"# {pkg}\n\nSmall helpers ({', '.join(modules)}). Run the tests with `python3 -m unittest`.\n")
    if run_tests(repo):
        return None  # the clean code must pass
    open(os.path.join(repo, pkg, f"{domain}.py"), "w").write(new_src)
    failing = run_tests(repo)
    if not failing or "<collection error>" in failing:
        return None
    # Bytecode caches from the checks above must not ship: a stale .pyc with the same size and
    # second as an edited source makes Python run the old code.
    for root, dirs, _ in os.walk(repo):
        for d in list(dirs):
            if d == "__pycache__":
                shutil.rmtree(os.path.join(root, d))
                dirs.remove(d)
    open(os.path.join(repo, ".gitignore"), "w").write("__pycache__/\n*.pyc\n")
    # Gold patch: the diff from buggy to clean code.
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Initial version")
    base = git(repo, "rev-parse", "HEAD")
    open(os.path.join(repo, pkg, f"{domain}.py"), "w").write(modules[domain][0])
    patch = git(repo, "diff") + "\n"
    git(repo, "checkout", "-q", "--", ".")

    fid = sorted(failing)[0]
    fn_name, args, want = all_ids[fid]
    got = describe_failure(new_src, fn_name, args, want)
    call = f"{fn_name}({', '.join(repr(a) for a in args)})"
    statement = rng.choice(ISSUE_TEMPLATES).format(call=call, got=got, want=repr(want), fn=fn_name)
    return {
        "instance_id": f"{pkg}-{split}-{seed}",
        "repo": os.path.relpath(repo, out_dir),
        "base_commit": base,
        "problem_statement": statement,
        "FAIL_TO_PASS": sorted(failing),
        "PASS_TO_PASS": sorted(set(all_ids) - failing),
        "test_cmd": "python3 -m unittest",
        "patch": patch,
        "meta": {"domain": domain, "mutation": kind, "change": desc, "file": f"{pkg}/{domain}.py",
                 "function": target_fn, "seed": seed, "split": split},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0, help="first seed; held-out seeds should not overlap train")
    ap.add_argument("--split", choices=["train", "heldout"], default="train")
    ap.add_argument("--rename-locals", action="store_true",
                    help="random parameter/local names in 3 of 4 functions (an experiment: see README.md)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    tasks, seed = [], a.seed
    # Written as they come, so a long run that is stopped keeps what it made.
    with open(os.path.join(a.out, "tasks.jsonl"), "w") as f:
        while len(tasks) < a.count and seed < a.seed + a.count * 20:
            t = make_task(seed, a.split, a.out, a.rename_locals)
            if t:
                tasks.append(t)
                f.write(json.dumps(t) + "\n")
                f.flush()
            seed += 1
    kinds = {}
    for t in tasks:
        kinds[t["meta"]["mutation"]] = kinds.get(t["meta"]["mutation"], 0) + 1
    print(json.dumps({"tasks": len(tasks), "seeds_tried": seed - a.seed, "mutations": kinds}))


if __name__ == "__main__":
    main()
