"""SCD2 merge benchmark: create, second datasource, incremental and no-op merges of a silver table.

A synthetic patients table of N keys per datasource (14 columns), two datasources. Phases, in
order, against one table:
  create      first load of hos-a into a missing table (write, no merge)
  second ds   first load of hos-b into the existing table (merge, every key new)
  snapshot    hos-a full snapshot with 1% changed + 0.5% new keys (merge)
  no-op       the same snapshot again (change detection only, no commit)
  slice       hos-a incremental slice: only another 1% changed + 0.5% new keys (merge)
Each phase runs in a fresh spawned process (delta-rs must not run in a forked child), so its peak
RSS (VmHWM; it includes the imports and the batch read from Parquet) is its own. Batches are
generated up front into Parquet files; only the scd2_merge call is timed.
Usage: python bench/scd2_merge.py [--rows 1000000]
"""

import argparse
import multiprocessing
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

CHANGED, NEW = 0.01, 0.005
T0 = datetime(2024, 1, 1, tzinfo=UTC)
COMPARE = ["first_name", "last_name", "gender", "date_of_birth", "city", "zip", "phone",
           "insurance", "balance", "visit_count"]  # fmt: skip


def patients(datasource: str, first: int, count: int, load: int) -> pl.DataFrame:
    """`count` patients with source ids from `first`; attribute values depend on the id only."""
    noise = (pl.col("id") * 7919) % 104_729
    return pl.select(id=pl.int_range(first, first + count, dtype=pl.Int64)).select(
        patient_key=pl.format(
            "PAT{}-{}", pl.col("id").cast(pl.String).str.zfill(8), pl.lit(datasource)
        ),
        datasource=pl.lit(datasource),
        first_name=pl.format("First{}", noise % 5000),
        last_name=pl.format("Last{}", noise % 20000),
        gender=pl.when(noise % 2 == 0).then(pl.lit("F")).otherwise(pl.lit("M")),
        date_of_birth=pl.date(1940, 1, 1) + pl.duration(days=noise % 25000),
        city=pl.format("City{}", noise % 900),
        zip=(noise % 99999).cast(pl.String).str.zfill(5),
        phone=pl.when(noise % 10 == 0).then(None).otherwise(pl.format("555-{}", noise)),
        insurance=pl.format("PLAN{}", noise % 40),
        balance=(noise % 100_000) / 100,
        visit_count=(noise % 60).cast(pl.Int32),
        source_modified_at=pl.lit(T0 + timedelta(days=load), dtype=pl.Datetime("us", "UTC")),
        load_id=pl.lit(f"{datasource}-L{load}"),
    )


def changed(snapshot: pl.DataFrame, every: int, offset: int, load: int) -> pl.DataFrame:
    """Every `every`-th row (from `offset`) with a new city, stamped as a later load."""
    return snapshot.gather_every(every, offset).with_columns(
        city=pl.format("Moved{}", pl.lit(load)),
        source_modified_at=pl.lit(T0 + timedelta(days=load), dtype=pl.Datetime("us", "UTC")),
        load_id=pl.lit(f"hos-a-L{load}"),
    )


def write_batches(folder: Path, rows: int) -> None:
    every, new = round(1 / CHANGED), round(rows * NEW)
    base = patients("hos-a", 0, rows, 0)
    base.write_parquet(folder / "create.parquet")
    patients("hos-b", 0, rows, 0).write_parquet(folder / "second.parquet")
    moved = changed(base, every, 0, 1)
    snapshot = pl.concat(
        [base.join(moved, on="patient_key", how="anti"), moved, patients("hos-a", rows, new, 1)]
    )
    snapshot.write_parquet(folder / "snapshot.parquet")
    pl.concat([changed(snapshot, every, every // 2, 2), patients("hos-a", rows + new, new, 2)]
              ).write_parquet(folder / "slice.parquet")  # fmt: skip


def _peak_rss_mib() -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork + exec.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_phase(table: str, batch_file: str, day: int) -> tuple[int, float, float, str]:
    from rcm_assets.lake.scd2 import scd2_merge

    batch = pl.read_parquet(batch_file)
    started = time.perf_counter()
    stats = scd2_merge(
        table,
        batch,
        key="patient_key",
        datasource=batch.get_column("datasource")[0],
        compare=COMPARE,
        order_by=["source_modified_at", "load_id"],
        loaded_at=T0 + timedelta(days=day),
        commit_metadata={"consumed_load_ids": batch.get_column("load_id").unique().to_list()},
    )
    seconds = time.perf_counter() - started
    outcome = (f"+{stats.inserted:,} closed {stats.closed:,} unchanged {stats.unchanged:,} "
               f"v{stats.version}")  # fmt: skip
    return batch.height, seconds, _peak_rss_mib(), outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="keys per datasource")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")  # delta-rs must not run in a forked child
    phases = [("create", "create", 0), ("second ds", "second", 0), ("snapshot", "snapshot", 1),
              ("no-op", "snapshot", 2), ("slice", "slice", 3)]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="rcm-bench-scd2-") as folder:
        started = time.perf_counter()
        write_batches(Path(folder), args.rows)
        print(f"generated batches in {time.perf_counter() - started:.1f}s")
        print(f"{'phase':<10} {'rows':>11} {'seconds':>8} {'rows/s':>11} {'peak MiB':>9}  outcome")
        seconds_of = {}
        for name, batch, day in phases:
            with context.Pool(1) as pool:
                rows, seconds, peak, outcome = pool.apply(
                    run_phase, (f"{folder}/patients", f"{folder}/{batch}.parquet", day)
                )
            seconds_of[name] = seconds
            print(f"{name:<10} {rows:>11,} {seconds:>8.2f} {rows / seconds:>11,.0f} {peak:>9.0f}  "
                  f"{outcome}")  # fmt: skip
    for name in ("snapshot", "no-op", "slice"):
        print(f"{name} / create time: {seconds_of[name] / seconds_of['create']:.2f}")


if __name__ == "__main__":
    main()
