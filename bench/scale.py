"""The whole graph at several scales: a full run, 1 % change batches (`recent`, `uniform`), a no-op.

    .venv/bin/python bench/scale.py [--scales 1 10 100] [--keep DIR] [--x12]

For each scale both sample hospitals are generated (`rcm generate --scale N`; its X12 files are
set aside unless `--x12`: they have their own benchmark, `bench/x12_parse.py`), then one child
process materializes the layers in turn through Dagster (`rcm_assets.runs.materialize_all`, in
process, as `rcm run` does) and reports each layer: rows written (bronze rows appended, silver
versions inserted/closed/replaced, gold rows rebuilt), wall time, CPU time (user + system of
all its threads) and peak RSS (VmHWM, reset before each layer). The `process` row is the whole
child, start-up and definitions load included (its peak RSS is the largest layer's). Then the
same after a 1 % `recent` change batch, a 1 % `uniform` batch and with no change at all, with
each scenario's CPU as a share of the full run's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAYERS = ("bronze", "silver", "gold", "audit")
SCENARIOS = ("full", "recent 1%", "uniform 1%", "no-op")


def _peak_mib() -> float:
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))


def _child() -> None:
    """Materialize the layers in turn in this one process, as `rcm run` does; print each
    layer's rows written, wall and CPU seconds and peak RSS as JSON lines."""
    from dagster import DagsterInstance

    from rcm_assets.runs import load_definitions, materialize_all

    defs = load_definitions()
    with DagsterInstance.ephemeral() as instance:
        for layer in LAYERS:
            Path("/proc/self/clear_refs").write_text("5")  # restart the peak RSS count
            started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
            outcomes = materialize_all(defs, instance, layers=[layer])
            used = resource.getrusage(resource.RUSAGE_SELF)
            figures = {
                "layer": layer,
                "rows": sum(o.written or 0 for o in outcomes),
                "failed": sum(o.status != "materialized" for o in outcomes),
                "wall": time.perf_counter() - started,
                "cpu": used.ru_utime - cpu.ru_utime + used.ru_stime - cpu.ru_stime,
                "rss": _peak_mib(),
            }
            print(json.dumps(figures), flush=True)


def _measure(home: Path) -> tuple[list[dict], dict]:
    """Each layer's figures, and the whole process's (start-up and definitions load included)."""
    env = {**os.environ, "RCM_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, __file__, "--child"], env=env, capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    layers = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    total = {
        "rows": sum(layer["rows"] for layer in layers),
        "wall": wall,
        "cpu": after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime,
        # the layers' peaks: resetting VmHWM resets the kernel's ru_maxrss for the child too
        "rss": max((layer["rss"] for layer in layers), default=0.0),
    }
    return layers, total


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
    parser.add_argument(
        "--x12",
        action="store_true",
        help="keep the sample's 837/835 files (about 48 per 1M transactions, some 0.6 s each: "
        "bench/x12_parse.py measures them); by default they are set aside",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child()
        return
    print(
        f"{'scale':>6} {'scenario':<11} {'layer':<7} {'rows':>12} {'wall s':>8} {'cpu s':>8} "
        f"{'peak MiB':>9} {'cpu/full':>8}"
    )
    for scale in args.scales:
        root = args.keep or Path(tempfile.mkdtemp(prefix="rcm-scale-"))
        home = root / f"scale-{scale:g}"
        _rcm(home, "generate", "--scale", f"{scale:g}")
        if not args.x12:
            x12 = home / "landing" / "x12"
            shutil.move(x12, root / f"x12-set-aside-{scale:g}")
            x12.mkdir()
        full_cpu = 0.0
        for index, scenario in enumerate(SCENARIOS):
            if scenario.startswith(("recent", "uniform")):
                _mutate(home, scenario.split()[0], seed=100 + index)
            layers, total = _measure(home)
            for figures in layers:
                if figures["failed"]:
                    print(f"  {figures['layer']}: {figures['failed']} asset partition(s) failed")
                print(
                    f"{scale:>6g} {scenario:<11} {figures['layer']:<7} {figures['rows']:>12,} "
                    f"{figures['wall']:>8.1f} {figures['cpu']:>8.1f} {figures['rss']:>9.0f}"
                )
            full_cpu = total["cpu"] if scenario == "full" else full_cpu
            print(
                f"{scale:>6g} {scenario:<11} {'process':<7} {total['rows']:>12,} "
                f"{total['wall']:>8.1f} {total['cpu']:>8.1f} {total['rss']:>9.0f} "
                f"{total['cpu'] / full_cpu:>8.2f}"
            )


if __name__ == "__main__":
    main()
