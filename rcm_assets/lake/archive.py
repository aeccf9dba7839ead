"""Move old bronze loads to `lake/archive/...`, where they stay readable as Delta tables.

Nothing is deleted from the lake: rows are appended to the archive table first and only then
removed from bronze. A crash in between leaves the rows in both places; the next archive run
sees their load ids already archived and only finishes the removal. The newest load of a table
always stays in bronze because the next incremental load takes its watermark from there.
"""

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from rcm_assets.lake import delta
from rcm_assets.lake.predicates import column_in


@dataclass(frozen=True)
class Archived:
    bronze_uri: str
    archive_uri: str
    load_ids: tuple[str, ...]
    rows: int


def loads_to_archive(bronze: pl.LazyFrame, cutoff: datetime) -> list[str]:
    """Load ids ingested before `cutoff`, never the newest load."""
    loads = (
        bronze.group_by("load_id")
        .agg(pl.col("ingested_at").max())
        .sort("ingested_at", "load_id")
        .collect()
    )
    older = loads.head(max(loads.height - 1, 0)).filter(pl.col("ingested_at") < cutoff)
    return older.get_column("load_id").to_list()


def archive_loads(
    bronze_uri: str,
    archive_uri: str,
    cutoff: datetime,
    storage_options: dict | None = None,
    dry_run: bool = False,
) -> Archived:
    if not delta.exists(bronze_uri, storage_options):
        return Archived(bronze_uri, archive_uri, (), 0)
    bronze = delta.scan(bronze_uri, storage_options)
    load_ids = loads_to_archive(bronze, cutoff)
    moving = bronze.filter(pl.col("load_id").is_in(load_ids))
    rows = moving.select(pl.len()).collect().item() if load_ids else 0
    if dry_run or not load_ids:
        return Archived(bronze_uri, archive_uri, tuple(load_ids), rows)
    done: set[str] = set()
    if delta.exists(archive_uri, storage_options):
        done = set(
            delta.scan(archive_uri, storage_options)
            .filter(pl.col("load_id").is_in(load_ids))
            .select(pl.col("load_id").unique())
            .collect()
            .get_column("load_id")
            .to_list()
        )
    pending = [load_id for load_id in load_ids if load_id not in done]
    commit = {"operation": "archive", "load_ids": ",".join(load_ids)}
    if pending:
        delta.append(
            archive_uri,
            moving.filter(pl.col("load_id").is_in(pending)).collect(),
            commit,
            storage_options,
        )
    delta.delete(bronze_uri, column_in("load_id", load_ids), commit, storage_options)
    return Archived(bronze_uri, archive_uri, tuple(load_ids), rows)
