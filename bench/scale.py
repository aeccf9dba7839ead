"""The whole graph at several scales: a full run, 1 % change batches (`recent`, `uniform`), a no-op.

    .venv/bin/python bench/scale.py [--scales 1 10 100] [--keep DIR]

For each scale both sample hospitals are generated (`rcm generate --scale N`), then every layer
is materialized through Dagster (`rcm_assets.runs.materialize_all`, in process, as `rcm run`
does), one layer per child process, so each figure is that layer's own: rows written (bronze
rows appended, silver versions inserted/closed/replaced, gold rows rebuilt), wall
time, CPU time (user + system of the child and its threads) and peak RSS (the child's
VmHWM; runs are in process, so it is the whole process tree). Then the same after a
1 % `recent` change batch, a 1 % `uniform` batch and with no change at all, with each
scenario's CPU as a share of the full run's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAYERS = ("bronze", "silver", "gold", "audit")
SCENARIOS = ("full", "recent 1%", "uniform 1%", "no-op")


def _child(layer: str) -> None:
    """Materialize one layer's assets (every partition) and print the rows written as JSON."""
    from dagster import DagsterInstance

    from rcm_assets.runs import load_definitions, materialize_all

    defs = load_definitions()
    with DagsterInstance.ephemeral() as instance:
        outcomes = materialize_all(defs, instance, layers=[layer])
    failed = [o for o in outcomes if o.status != "materialized"]
    peak = next(
        int(line.split()[1]) / 1024
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    rows = sum(o.written or 0 for o in outcomes)
    print(json.dumps({"rows": rows, "failed": len(failed), "rss": peak}))


def _measure(home: Path, layer: str) -> dict[str, float]:
    env = {**os.environ, "RCM_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, __file__, "--child", layer],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    reported = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "rows": reported["rows"],
        "failed": reported["failed"],
        "wall": wall,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "rss": reported["rss"],
    }


def _rcm(home: Path, *args: str) -> None:
    env = {**os.environ, "RCM_HOME": str(home)}
    rcm = Path(sys.executable).parent / "rcm"
    subprocess.run([str(rcm), *args], env=env, check=True, capture_output=True)


def _mutate(home: Path, profile: str, seed: int) -> None:
    from rcm_assets.sample_data import mutate_sources
    from rcm_assets.sample_data.mutate import ChangeProfile

    mutate_sources(
        home,
        seed=seed,
        update_share=0.01,
        insert_share=0.0,
        change_profile=ChangeProfile(profile),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[1, 10, 100])
    parser.add_argument("--keep", type=Path, help="keep each scale's RCM_HOME under this folder")
    parser.add_argument("--child", choices=LAYERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    print(
        f"{'scale':>6} {'scenario':<11} {'layer':<7} {'rows':>12} {'wall s':>8} {'cpu s':>8} "
        f"{'peak MiB':>9} {'cpu/full':>8}"
    )
    for scale in args.scales:
        root = args.keep or Path(tempfile.mkdtemp(prefix="rcm-scale-"))
        home = root / f"scale-{scale:g}"
        _rcm(home, "generate", "--scale", f"{scale:g}")
        full_cpu = 0.0
        for index, scenario in enumerate(SCENARIOS):
            if scenario.startswith(("recent", "uniform")):
                _mutate(home, scenario.split()[0], seed=100 + index)
            totals = {"rows": 0, "wall": 0.0, "cpu": 0.0, "rss": 0.0}
            for layer in LAYERS:
                figures = _measure(home, layer)
                if figures["failed"]:
                    print(f"  {layer}: {figures['failed']} asset partition(s) failed")
                for name in ("rows", "wall", "cpu"):
                    totals[name] += figures[name]
                totals["rss"] = max(totals["rss"], figures["rss"])
                print(
                    f"{scale:>6g} {scenario:<11} {layer:<7} {figures['rows']:>12,} "
                    f"{figures['wall']:>8.1f} {figures['cpu']:>8.1f} {figures['rss']:>9.0f}"
                )
            if scenario == "full":
                full_cpu = totals["cpu"]
            print(
                f"{scale:>6g} {scenario:<11} {'all':<7} {totals['rows']:>12,} "
                f"{totals['wall']:>8.1f} {totals['cpu']:>8.1f} {totals['rss']:>9.0f} "
                f"{totals['cpu'] / full_cpu:>8.2f}"
            )


if __name__ == "__main__":
    main()
