"""Mutation testing of the core: mutmut per module, each against its own tests.

Run through `python3 dev.py mutate [MODULE ...] [--sample N --seed S]`, which sets up
the virtualenv first; mutmut's settings are [tool.mutmut] in pyproject.toml.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from lapsync.devkit.postgres import scratch_postgres

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def say(message: str) -> None:
    """Print a progress line that stands out from mutmut's output."""
    print(f"==> {message}", flush=True)


# Each core module (a package ends in "/") and the tests that must pin it on their own:
# `mutate` runs the module's mutants against these tests only. One line per module.
MUTATE = {
    "lapsync/protocol/": ["tests/core/test_protocol*.py", "tests/core/test_protocol.py",
                            "tests/laptop/test_outbox.py"],
    "lapsync/hlc.py": ["tests/core/test_hlc.py"],
    "lapsync/roster_csv.py": ["tests/core/test_roster*.py"],
    "lapsync/authcore.py": ["tests/core/test_authcore.py"],
    "lapsync/text.py": ["tests/core/test_text.py"],
    "lapsync/runners.py": ["tests/core/test_runners.py"],
    "lapsync/errors.py": ["tests/core/test_errors.py"],
    "lapsync/web/": ["tests/core/test_web.py"],
    "lapsync/i18n.py": ["tests/core/test_web.py"],
    "sync/ledger.py": ["tests/central/test_ledger.py", "tests/central/test_push.py",
                       "tests/central/test_review.py"],
    "lapsync/laptop/db.py": ["tests/laptop/test_outbox_contract.py", "tests/laptop/test_laps.py",
                             "tests/laptop/test_outbox.py"],
    # Not test_client.py: its real-HTTP timeouts fail under mutmut's tracing on a busy machine.
    "lapsync/laptop/client/pull.py": ["tests/laptop/test_pull_apply.py"],
}
MUTANTS = ROOT / "mutants"
# mutmut's statuses counted as killed and as survived ("no tests": no test reaches the
# code); any other (suspicious, skipped, not checked) is neither and lowers the score.
KILLED = {"killed", "timeout", "caught by type check"}
SURVIVED = {"survived", "no tests"}
NOT_RUN = "not checked"  # left out of a sample


def module_name(module: str) -> str:
    """Return a module's dotted name, also its folder under mutants/ and mutmut's prefix of
    its mutants: lapsync/hlc.py -> lapsync.hlc, lapsync/protocol/ -> lapsync.protocol."""
    path = module.rstrip("/")
    return (path[:-3] if path.endswith(".py") else path).replace("/", ".")


def select_modules(names: list[str]) -> list[str]:
    """Return the MUTATE keys named by path, dotted name or unique last part (all when none)."""
    stems = [Path(m).stem for m in MUTATE]
    known = {stem: m for stem, m in zip(stems, MUTATE) if stems.count(stem) == 1}
    for m in MUTATE:
        known.update({m: m, module_name(m): m})
    unknown = [n for n in names if n not in known]
    if unknown:
        sys.exit(f"mutate: no core module {', '.join(unknown)} in MUTATE; choose from "
                 f"{', '.join(module_name(m) for m in MUTATE)}")
    return [known[n] for n in names] or list(MUTATE)


def module_tests(module: str) -> list[str]:
    """Return the module's test files (MUTATE's patterns expanded); exit when there are none."""
    for pattern in MUTATE[module]:
        if not any(ROOT.glob(pattern)):  # moved or renamed: MUTATE needs updating
            say(f"warning: no test file matches {pattern} (tests of {module})")
    tests = sorted({p.relative_to(ROOT).as_posix() for pattern in MUTATE[module]
                    for p in ROOT.glob(pattern)})
    if not tests:
        sys.exit(f"mutate: no test file matches {MUTATE[module]} for {module}")
    return tests


def mutmut_workdir(module: str, tests: list[str]) -> Path:
    """Make a fresh mutants/MODULE/: the repository by symlinks, and pyproject.toml's
    [tool.mutmut] plus this module as only_mutate and its tests as the test selection."""
    workdir = MUTANTS / module_name(module)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    for entry in ROOT.iterdir():
        if not entry.name.startswith(".") and entry.name not in ("mutants", "instance",
                                                                 "pyproject.toml"):
            (workdir / entry.name).symlink_to(entry)
    only = module + "*" if module.endswith("/") else module
    selection = (f"only_mutate = {json.dumps([only])}\n"
                 f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n")
    text = mutmut_source_paths((ROOT / "pyproject.toml").read_text(encoding="utf-8"), module)
    if "[tool.mutmut]\n" not in text:
        sys.exit("dev.py: pyproject.toml has no [tool.mutmut] table")
    (workdir / "pyproject.toml").write_text(
        text.replace("[tool.mutmut]\n", "[tool.mutmut]\n" + selection, 1), encoding="utf-8")
    return workdir


def mutmut_source_paths(text: str, module: str) -> str:
    """Return pyproject.toml's text with the module's top directory (e.g. sync/) among
    mutmut's source_paths and out of also_copy (mutmut mutates only source_paths)."""
    top = module.split("/")[0]
    for key, keep in (("source_paths", True), ("also_copy", False)):
        match = re.search(rf"^{key} = (\[.*\])$", text, re.M)
        if match is None:
            continue
        paths = [p for p in json.loads(match.group(1)) if p != top] + ([top] if keep else [])
        text = text[:match.start(1)] + json.dumps(paths) + text[match.end(1):]
    return text


# Runs inside the venv, in mutants/NAME/: mutmut's own first step (copy the sources,
# write the mutants) without running any test, so that a sample can be drawn from the
# names `mutmut results` then lists. mutmut 3.8.1's internals (pinned).
GENERATE_MUTANTS = """
import os
from mutmut.__main__ import copy_also_copy_files, copy_src_dir, create_mutants, setup_source_paths
os.makedirs("mutants", exist_ok=True)
copy_src_dir()
copy_also_copy_files()
setup_source_paths()
create_mutants(1)
"""
def mutmut_statuses(workdir: Path) -> dict[str, str]:
    """Return {mutant name: status} from `mutmut results --all true` in workdir."""
    result = subprocess.run([str(PYTHON), "-m", "mutmut", "results", "--all", "true"],
                            cwd=workdir, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"mutate: mutmut results failed in {workdir}:\n{result.stdout}{result.stderr}")
    pairs = (line.strip().rpartition(": ") for line in result.stdout.splitlines())
    return {name: status for name, colon, status in pairs if colon}


def score_table(rows: list[tuple[str, dict[str, str]]]) -> str:
    """Return the Markdown table module | mutants (run / total) | killed | survived | score;
    mutants a sample left out ("not checked") count in total only, the score is of those run."""
    lines = ["| module | mutants (run / total) | killed | survived | score |",
             "|---|--:|--:|--:|--:|"]
    for module, statuses in rows:
        total = len(statuses)
        ran = sum(s != NOT_RUN for s in statuses.values())
        killed = sum(s in KILLED for s in statuses.values())
        survived = sum(s in SURVIVED for s in statuses.values())
        score = f"{100 * killed / ran:.1f} %" if ran else "-"
        lines.append(f"| `{module}` | {ran} / {total} | {killed} | {survived} | {score} |")
    return "\n".join(lines)


def sample_mutants(workdir: Path, size: int, seed: int) -> list[str]:
    """Write the module's mutants without testing them; return SIZE of their names, drawn
    with SEED (the same seed and source give the same sample)."""
    result = subprocess.run([str(PYTHON), "-c", GENERATE_MUTANTS], cwd=workdir,
                            capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"mutate: could not write the mutants in {workdir}:\n{result.stderr}")
    names = sorted(mutmut_statuses(workdir))
    return sorted(random.Random(seed).sample(names, min(size, len(names))))


@contextlib.contextmanager
def mutation_postgres() -> Iterator[None]:
    """Start one embedded PostgreSQL for the run and set DATABASE_URL (unless it is set).

    Central's tests and the laptop's tests against a live central use it through
    DATABASE_URL, so that no mutant pays a server start.
    """
    if os.environ.get("DATABASE_URL"):
        yield
        return
    with scratch_postgres() as url:
        say("one embedded PostgreSQL for this run (DATABASE_URL for mutmut's workers)")
        os.environ["DATABASE_URL"] = url
        try:
            yield
        finally:
            del os.environ["DATABASE_URL"]


def cmd_mutate(args: argparse.Namespace) -> int:
    """Run mutmut on the chosen core modules, each against its own tests; print the table."""
    modules = select_modules(args.modules)
    with mutation_postgres():
        rows = mutate_modules(modules, args.sample, args.seed)
    say("mutants not killed are listed above; see one with: cd mutants/MODULE && "
        "../../.venv/bin/mutmut show MUTANT  (e.g. mutants/lapsync.hlc)")
    sampled = f", a sample of {args.sample} per module, seed {args.seed}" if args.sample else ""
    print(f"\nMutation score, {time.strftime('%Y-%m-%d')} (`python3 dev.py mutate`{sampled}):\n")
    print(score_table(rows), flush=True)
    return 0


def mutate_modules(modules: list[str], sample: int | None, seed: int) -> list:
    """Run mutmut on each module (all its mutants, or a sample); return (module, statuses)."""
    rows = []
    for module in modules:
        tests = module_tests(module)
        workdir = mutmut_workdir(module, tests)
        say(f"mutmut: {module} against {' '.join(tests)} (in {workdir.relative_to(ROOT)})")
        names = sample_mutants(workdir, sample, seed) if sample else []
        if names:
            say(f"a sample of {len(names)} mutants (seed {seed})")
        if subprocess.run([str(PYTHON), "-m", "mutmut", "run", *names],
                          cwd=workdir).returncode != 0:
            sys.exit(f"mutate: mutmut run failed for {module}")
        statuses = mutmut_statuses(workdir)
        rows.append((module, statuses))
        for name, status in sorted(statuses.items()):
            if status not in KILLED and status != NOT_RUN:
                print(f"    {status}: {name}")
    return rows


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of `dev.py mutate`'s arguments."""
    parser = argparse.ArgumentParser(
        prog="dev.py mutate",
        description="Run mutmut (configured in pyproject.toml) on each chosen core module in "
                    "mutants/MODULE/, every mutant against that module's own tests (MUTATE in "
                    "lapsync/devkit/mutate.py), and print the mutants not killed and the "
                    "Markdown table module | mutants | killed | survived | score.")
    parser.add_argument("modules", nargs="*", metavar="MODULE",
                        help="path, dotted name or unique last part, e.g. lapsync/hlc.py, "
                             "lapsync.hlc or hlc (default: every module in MUTATE)")
    parser.add_argument("--sample", type=int, metavar="N",
                        help="run only N mutants per module, drawn at random "
                             "(the table says how many of how many)")
    parser.add_argument("--seed", type=int, default=1, help="seed of --sample's draw (default 1)")
    return parser


if __name__ == "__main__":
    sys.exit(cmd_mutate(build_parser().parse_args()))
