"""Before and after in the same run: bench/remote.py on an earlier commit and on this tree, alternately.

Run: `python bench/compare.py [BEFORE] [--rounds N]` (BEFORE: a commit, default the parent of HEAD).
The earlier commit is checked out into a temporary git worktree (sharing this tree's virtualenv);
each side's own bench/remote.py runs N times, the sides taking turns (before, after, before, ...) so
a machine that gets busier or quieter during the run weighs on both alike. Prints each run's headline
figures, then the median per side against the goals of issue 20. Same environment for both sides
(DATABASE_URL / REDIS_URL as for the app; SQLite and the filesystem broker when unset).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# figure: (goal, "max" when the figure must stay at or below the goal)
GOALS = {
    "added_ms_p50": 50.0,
    "ratio_1s": 1.05,
    "fanout_ratio_8": 1.3,
    "sse_p99_ms": 100.0,
}


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def run_bench(tree: Path) -> dict:
    """One run of `tree`'s bench/remote.py; its last line is the JSON of the headline figures."""
    done = subprocess.run(
        [sys.executable, "bench/remote.py"], cwd=tree, capture_output=True, text=True, timeout=1800
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"bench/remote.py failed in {tree} (exit {done.returncode})")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", nargs="?", default="HEAD~1", help="the earlier commit")
    parser.add_argument("--rounds", type=int, default=2, help="runs per side (default 2)")
    args = parser.parse_args()
    before = git("rev-parse", "--verify", f"{args.before}^{{commit}}")
    after = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    with tempfile.TemporaryDirectory(prefix="amsw-before-") as tmp:
        old = Path(tmp) / "tree"
        git("worktree", "add", "--detach", str(old), before)
        (old / ".venv").symlink_to(ROOT / ".venv")  # the same interpreter and packages
        try:
            results: dict[str, list[dict]] = {"before": [], "after": []}
            for turn in range(args.rounds):
                for side, tree in (("before", old), ("after", ROOT)):
                    figures = run_bench(tree)
                    results[side].append(figures)
                    print(f"{side} #{turn + 1}: {json.dumps(figures)}", flush=True)
        finally:
            git("worktree", "remove", "--force", str(old))
    label = f"{after[:10]}{' + uncommitted changes' if dirty else ''}"
    print(f"\nbefore = {before[:10]}, after = {label}; median of {args.rounds} runs each")
    print(f"{'figure':<16}{'before':>10}{'after':>10}{'goal':>8}  verdict")
    failed = False
    for key in results["after"][0]:
        old_value = _median([r.get(key) for r in results["before"]])
        new_value = _median([r.get(key) for r in results["after"]])
        goal = GOALS.get(key)
        verdict = ""
        if goal is not None:
            verdict = _verdict(old_value, new_value, goal)
            failed = failed or verdict != "within"
        shown = f"{goal:>8}" if goal is not None else " " * 8
        print(f"{key:<16}{old_value:>10.3f}{new_value:>10.3f}{shown}  {verdict}")
    if failed:
        raise SystemExit("a figure is over its goal or missing on one side")


def _median(values: list) -> float:
    """The median of one side's runs; NaN when any run lacks the figure (a run that lost SSE
    events reports NaN), so a missing measurement is never averaged away."""
    if not values or any(v is None or math.isnan(v) for v in values):
        return math.nan
    return statistics.median(values)


def _verdict(old_value: float, new_value: float, goal: float) -> str:
    """within / OVER against a goal, or MISSING when either side did not measure it (NaN compares
    False with everything, so it must be asked about first)."""
    if math.isnan(old_value) or math.isnan(new_value):
        return "MISSING"
    return "within" if max(old_value, new_value) <= goal else "OVER"


if __name__ == "__main__":
    main()
