"""Silver build benchmark: full build at scale 1 and 100, then an incremental run with 1% of the
rows changed, per table: rows, seconds, rows/s, peak memory, and the incremental/full ratio.

Each table build runs in a fresh spawned process so its peak RSS (VmHWM; about 250 MiB of it is
Python, Dagster and Polars) is its own. Usage: python bench/silver_build.py [--scales 1 100]
"""

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _load_bronze(home: str) -> int:
    os.environ["RCM_HOME"] = home
    from rcm_assets.bronze.emr import load_emr_table
    from rcm_assets.bronze.landing import files_to_ingest, ingest_landing_file
    from rcm_assets.metadata import load_metadata
    from rcm_assets.resources import EmrSourcesResource, LakeResource, LandingStoreResource

    metadata, lake, store = load_metadata(), LakeResource().addresses, LandingStoreResource()
    rows = 0
    for config in metadata.active_loads:
        source = EmrSourcesResource().open(metadata.databases[config.database], config.datasource)
        rows += load_emr_table(config, source, lake).rows
    for table in metadata.landing_tables.values():
        for datasource in metadata.landing_datasources(table.table) or [None]:
            for file in files_to_ingest(table, datasource, [], store, metadata):
                rows += ingest_landing_file(table, datasource, file, store, lake).rows
    return rows


def _build_one(home: str, table: str) -> tuple[int, float, float]:
    os.environ["RCM_HOME"] = home
    from rcm_assets.metadata import load_metadata
    from rcm_assets.resources import LakeResource
    from rcm_assets.silver.assets import build_silver_table

    metadata = load_metadata()
    started = time.perf_counter()
    build = build_silver_table(metadata.silver_tables[table], metadata, LakeResource().addresses)
    seconds = time.perf_counter() - started
    rows = build.inserted + build.closed + build.unchanged + build.retired + build.replaced
    return rows, seconds, _peak_rss_mib()


def _build_all(home: str, pool_context: multiprocessing.context.SpawnContext) -> dict:
    from rcm_assets.metadata import load_metadata

    results = {}
    for table in load_metadata().silver_tables:
        with pool_context.Pool(1) as pool:
            results[table] = pool.apply(_build_one, (home, table))
    return results


def _print(title: str, results: dict, full: dict | None = None) -> None:
    print(f"\n{title}")
    header = f"{'table':<14} {'rows':>11} {'seconds':>8} {'rows/s':>11} {'peak MiB':>9}"
    print(header + ("  incremental/full" if full else ""))
    for table, (rows, seconds, peak) in results.items():
        ratio = f"  {seconds / full[table][1]:>15.2f}" if full else ""
        print(
            f"{table:<14} {rows:>11,} {seconds:>8.2f} {rows / seconds:>11,.0f} {peak:>9.0f}{ratio}"
        )
    total = sum(s for _, s, _ in results.values())
    line = f"{'all':<14} {sum(r for r, _, _ in results.values()):>11,} {total:>8.2f}"
    if full:
        line += f"  {'':>21}  {total / sum(s for _, s, _ in full.values()):>15.2f}"
    print(line)


def bench(scale: float, context: multiprocessing.context.SpawnContext) -> None:
    from rcm_assets.sample_data import generate_sources, mutate_sources

    with tempfile.TemporaryDirectory(prefix="rcm-bench-") as home:
        generate_sources(Path(home), scale=scale, seed=1)
        with context.Pool(1) as pool:
            bronze_rows = pool.apply(_load_bronze, (home,))
        full = _build_all(home, context)
        _print(f"scale {scale:g}: full silver build from {bronze_rows:,} bronze rows", full)
        mutate_sources(Path(home), seed=2, update_share=0.01, insert_share=0.0)
        with context.Pool(1) as pool:
            changed = pool.apply(_load_bronze, (home,))
        incremental = _build_all(home, context)
        _print(
            f"scale {scale:g}: incremental build ({changed:,} changed bronze rows)",
            incremental,
            full,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", type=float, nargs="+", default=[1, 100])
    context = multiprocessing.get_context("spawn")  # delta-rs must not run in a forked child
    for scale in parser.parse_args().scales:
        bench(scale, context)


if __name__ == "__main__":
    main()
