"""audit.load_logs: one row per (datasource, table) load attempt.

The watermark itself is never read from here: the next incremental load takes it from the bronze
table, whose append is a single atomic commit. So a crash after the bronze commit but before the
audit row is written cannot lose or duplicate data; `recover_missing` later restores the missing
audit row from the bronze commit's metadata.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import polars as pl

from rcm_assets.lake import delta

logger = logging.getLogger(__name__)

LOAD_LOG_SCHEMA = pl.Schema(
    {
        "data_source": pl.String,
        "tablename": pl.String,
        "numberofrowscopied": pl.Int64,
        "watermarkcolumnname": pl.String,
        "loaddate": pl.Datetime("us", "UTC"),
        "load_id": pl.String,
        "load_type": pl.String,
        "watermark_from": pl.String,
        "watermark_max": pl.String,
        "status": pl.String,
        "run_id": pl.String,
        "bronze_version": pl.Int64,
        "duration_seconds": pl.Float64,
        "error": pl.String,
        "source_file": pl.String,
        "content_hash": pl.String,
    }
)


@dataclass(frozen=True)
class LoadLog:
    data_source: str
    tablename: str
    numberofrowscopied: int
    watermarkcolumnname: str | None
    loaddate: datetime
    load_id: str
    load_type: str
    watermark_from: str | None
    watermark_max: str | None
    status: str  # success | failed | recovered
    run_id: str | None
    bronze_version: int | None
    duration_seconds: float | None
    error: str | None = None
    source_file: str | None = None  # landing loads only
    content_hash: str | None = None  # landing loads only: sha256 of the file


def append_logs(uri: str, logs: list[LoadLog], storage_options: dict | None = None) -> None:
    if logs:
        frame = pl.DataFrame([asdict(log) for log in logs], schema=LOAD_LOG_SCHEMA)
        delta.append(uri, frame, {"operation": "audit"}, storage_options)


def read_logs(uri: str, storage_options: dict | None = None) -> pl.DataFrame:
    if not delta.exists(uri, storage_options):
        return LOAD_LOG_SCHEMA.to_frame()
    return delta.scan(uri, storage_options).collect()


def recover_missing(
    uri: str,
    bronze_uri: str,
    datasource: str,
    table: str,
    storage_options: dict | None = None,
    log: logging.Logger | None = None,
) -> list[LoadLog]:
    """Write audit rows for bronze loads that committed but whose audit row never landed."""
    if not delta.exists(bronze_uri, storage_options):
        return []
    logged = set(
        read_logs(uri, storage_options)
        .filter((pl.col("data_source") == datasource) & (pl.col("tablename") == table))
        .get_column("load_id")
        .to_list()
    )
    missing = [
        LoadLog(
            data_source=datasource,
            tablename=table,
            numberofrowscopied=int(meta["rows"]),
            watermarkcolumnname=meta.get("watermark_column") or None,
            loaddate=datetime.fromtimestamp(commit["timestamp"] / 1000, tz=UTC),
            load_id=meta["load_id"],
            load_type=meta.get("load_type", ""),
            watermark_from=meta.get("watermark_from") or None,
            watermark_max=meta.get("watermark_max") or None,
            status="recovered",
            run_id=meta.get("run_id") or None,
            bronze_version=commit["version"],
            duration_seconds=None,
            source_file=meta.get("source_file") or None,
            content_hash=meta.get("content_hash") or None,
        )
        for commit in delta.commits(bronze_uri, storage_options)
        if (meta := commit["rcm"]).get("operation") == "load"
        and (meta.get("datasource"), meta.get("table")) == (datasource, table)
        and meta["load_id"] not in logged
    ]
    append_logs(uri, missing, storage_options)
    for recovered in missing:
        (log or logger).warning("Recovered the audit row of committed load %s", recovered.load_id)
    return missing
