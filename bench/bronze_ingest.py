"""Bronze EMR ingest benchmark: rows/s and peak memory per table at scale 1 and 100.

Each (datasource, table) load runs in a fresh spawned process so its peak RSS (which includes
about 240 MiB of Python, Dagster and Polars imports) is its own.
Usage: python bench/bronze_ingest.py [--scales 1 100]
"""

import argparse
import multiprocessing
import multiprocessing.pool
import tempfile
import time
from pathlib import Path


def _load_one(home: str, datasource: str, table: str) -> tuple[int, float, float]:
    import os

    os.environ["RCM_HOME"] = home
    from rcm_assets.bronze.emr import load_emr_table
    from rcm_assets.metadata import load_metadata
    from rcm_assets.resources import EmrSourcesResource, LakeResource

    metadata = load_metadata()
    config = metadata.bronze_tables()[table][datasource]
    source = EmrSourcesResource().open(metadata.databases[config.database], datasource)
    started = time.perf_counter()
    load = load_emr_table(config, source, LakeResource().addresses)
    seconds = time.perf_counter() - started
    return load.rows, seconds, _peak_rss_mib()


def _peak_rss_mib() -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork + exec.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_scale(scale: float, pool: multiprocessing.pool.Pool) -> None:
    from rcm_assets.metadata import load_metadata
    from rcm_assets.sample_data import generate_sources

    with tempfile.TemporaryDirectory(prefix="rcm-bench-") as home:
        started = time.perf_counter()
        generate_sources(Path(home), scale=scale, seed=1)
        print(f"\nscale {scale:g}: generated sources in {time.perf_counter() - started:.1f}s")
        print(f"{'datasource':<10} {'table':<14} {'rows':>11} {'seconds':>8} {'rows/s':>11} "
              f"{'peak MiB':>9}")  # fmt: skip
        total_rows, total_seconds = 0, 0.0
        for config in load_metadata().active_loads:
            rows, seconds, peak = pool.apply(_load_one, (home, config.datasource, config.table))
            total_rows, total_seconds = total_rows + rows, total_seconds + seconds
            print(f"{config.datasource:<10} {config.table:<14} {rows:>11,} {seconds:>8.2f} "
                  f"{rows / seconds:>11,.0f} {peak:>9.0f}")  # fmt: skip
        print(f"{'all':<10} {'':<14} {total_rows:>11,} {total_seconds:>8.2f} "
              f"{total_rows / total_seconds:>11,.0f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", type=float, nargs="+", default=[1, 100])
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")  # delta-rs must not run in a forked child
    for scale in args.scales:
        with context.Pool(1, maxtasksperchild=1) as pool:
            bench_scale(scale, pool)


if __name__ == "__main__":
    main()
