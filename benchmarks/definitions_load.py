"""How long building every Dagster definition takes, the YAML sources' components included
(issue 18's measure: under 2 s with every YAML source).

Each sample is a fresh interpreter that has already imported Dagster, so the figure is the
project's own work: the catalogue, the defs folder's components, assets, checks and schedules.
Prints the median and the spread of `--runs` samples (default 5) and the YAML sources counted.

    .venv/bin/python benchmarks/definitions_load.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 2.0
SCRIPT = (
    "import time, dagster\n"
    "from ingestion_pipelines.definitions import build_definitions\n"
    "t = time.perf_counter(); build_definitions(); print(time.perf_counter() - t)\n"
)


def sample() -> float:
    """Seconds one fresh process takes to build the definitions."""
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    """Print the figures; exit 1 when the median misses the goal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    yaml_sources = sorted(
        p.parent.name for p in (ROOT / "ingestion_pipelines/defs").glob("*/defs.yaml")
    )
    seconds = sorted(sample() for _ in range(args.runs))
    median = statistics.median(seconds)
    print(f"YAML sources: {len(yaml_sources)} ({', '.join(yaml_sources)})")
    print(
        f"build_definitions(): median {median:.2f} s, min {seconds[0]:.2f} s, max {seconds[-1]:.2f} s"
    )
    print(f"goal < {GOAL_S:.1f} s: {'met' if median < GOAL_S else 'missed'}")
    return 0 if median < GOAL_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
