"""Run every benchmark in turn (`make bench`), each in its own process, printing its markdown tables.

The media and near-duplicate benchmarks need nothing; the claim and realtime benchmarks need PostgreSQL and
Redis. Those are checked first: a benchmark whose services are not reachable is skipped with a line
saying what it needs, and the others still run. The exit status is non-zero if any benchmark that ran failed.

Run: python -m benchmarks.run [--quick | --full] [--only claim,realtime]
  --quick (the default) uses small sizes so the whole run takes a few minutes on 2 cores;
  --full uses each benchmark's own defaults (the sizes docs/benchmarks.md reports; tens of minutes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from benchmarks.services import BENCH_DATABASE_URL, BENCH_REDIS_URL, machine_line, postgres_reachable, redis_reachable

# name: (arguments with --quick, services it needs)
BENCHMARKS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "ingest": (["--images", "2", "--rounds", "1"], ()),
    # A 10 s 720p clip and a 600-frame GIF (--full: 60 s and 3,000 frames), beside decode-and-hash-every-frame.
    "motion_ingest": (["--seconds", "10", "--gif-frames", "600"], ()),
    "neardup_eval": (["--variants", "1", "--distractors", "2000", "--among", "200"], ()),
    "neardup_heldout": (["--synthetic", "12", "--real", "6", "--distractors", "2000", "--among", "200"], ()),
    "lookup": (["--sizes", "100000", "--queries", "100", "--baseline-queries", "20", "--adds", "200"], ()),
    "claim": (["--items", "2000", "--rounds", "1", "--open-seconds", "5", "--history-days", "5"],
              ("postgres", "redis")),
    "realtime": (["--consoles", "200", "--baseline-consoles", "50", "--rounds", "10", "--web", "2", "--at-once"],
                 ("postgres", "redis")),
    # Through HTTP on the stack as deployed (python -m config.stack): 200 moderators claiming every 4 s = 50/s.
    "http_load": (["--moderators", "200", "--period", "4", "--seconds", "20", "--raw-claims", "2000", "--warmup", "10"],
                  ("postgres", "redis")),
}

NEEDS = {
    "postgres": "PostgreSQL at {db} (VEIL_BENCH_DATABASE_URL names another; the benchmark recreates that database)",
    "redis": "Redis at {redis} (VEIL_BENCH_REDIS_URL names another)",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", default=True, help="small sizes (default)")
    size.add_argument("--full", action="store_true", help="each benchmark's own default sizes")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    args = parser.parse_args()
    database_url = os.environ.get("VEIL_BENCH_DATABASE_URL", BENCH_DATABASE_URL)
    redis_url = os.environ.get("VEIL_BENCH_REDIS_URL", BENCH_REDIS_URL)
    available = {"postgres": postgres_reachable(database_url), "redis": redis_reachable(redis_url)}
    wanted = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = set(wanted) - set(BENCHMARKS)
    if unknown:
        sys.exit(f"unknown benchmarks: {', '.join(sorted(unknown))} (known: {', '.join(BENCHMARKS)})")

    print(machine_line(("python -m benchmarks.run " + " ".join(sys.argv[1:])).strip()))
    for service, up in available.items():
        where = database_url if service == "postgres" else redis_url
        print(f"- {service}: {'reachable' if up else 'NOT reachable'} at {where}")
    failed: list[str] = []
    skipped: list[str] = []
    for name in wanted:
        quick_args, needs = BENCHMARKS[name]
        missing = [s for s in needs if not available[s]]
        print(f"\n## {name}\n", flush=True)
        if missing:
            reasons = "; ".join(NEEDS[s].format(db=database_url, redis=redis_url) for s in missing)
            print(f"Skipped: needs {reasons}.", flush=True)
            skipped.append(name)
            continue
        command = [sys.executable, "-m", f"benchmarks.{name}", *([] if args.full else quick_args)]
        print(f"`{' '.join(command[1:])}`\n", flush=True)
        started = time.monotonic()
        # A benchmark that hangs must not hold up `make bench` for ever.
        try:
            code = subprocess.run(command, check=False, timeout=3600).returncode
        except subprocess.TimeoutExpired:
            code = -1
        print(f"\n({name}: {time.monotonic() - started:.0f} s, exit status {code})", flush=True)
        if code != 0:
            failed.append(name)
    print(f"\nRan {len(wanted) - len(skipped)}, skipped {len(skipped)} ({', '.join(skipped) or 'none'}), "
          f"failed {len(failed)} ({', '.join(failed) or 'none'}).")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
