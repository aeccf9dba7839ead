"""One record of a bronze load, for every loader (EMR extract, landing file, reference extract).

A load appends its rows to bronze in ONE Delta commit whose `rcm.*` metadata describes the load
(so `audit.recover_missing` can rebuild a lost audit row from it), then writes its audit row. A
load that fails anywhere writes no bronze rows and a `failed` audit row, so the watermark (the
maximum in bronze) cannot move. `LoadAttempt` is that one path; the loaders only compute rows.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import polars as pl
from dagster import DataVersion, MetadataValue

from rcm_assets.errors import RcmError
from rcm_assets.lake import audit, delta
from rcm_assets.lake.addresses import AuditTable, LakeAddresses
from rcm_assets.staging import Staged


def data_version(
    lake: LakeAddresses, bronze_uri: str, datasource: str, appended: str | None = None
) -> DataVersion:
    """The newest load a bronze partition holds: unchanged by a load that appended nothing, so
    Dagster's automation sets off nothing below it (`automation.conditions.on_new_data`).

    `appended` is the load id this run committed, if any; only without one is the table's
    history read for the previous load."""
    newest = appended or delta.last_load_id(bronze_uri, datasource, lake.storage_options)
    return DataVersion(newest or "empty")


def new_load_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LoadRecord:
    """What one load did; the audit row, the commit metadata and the asset metadata."""

    datasource: str
    table: str  # as audit.load_logs names it (the source table name for EMR extracts)
    load_type: str  # Full | Incremental | File | Api
    load_id: str
    run_id: str | None
    loaded_at: datetime
    bronze_uri: str
    rows: int = 0
    watermark_column: str | None = None
    watermark_from: str | None = None
    watermark_max: str | None = None
    query: str = ""  # the source SQL of an EMR extract
    source_file: str | None = None
    content_hash: str | None = None
    bronze_version: int | None = None
    duration_seconds: float = 0.0
    table_rows: int = 0  # rows in the bronze table after the load
    details: Mapping[str, object] = field(default_factory=dict)  # loader-specific asset metadata

    @property
    def appended_load_id(self) -> str | None:
        """This load's id when it committed rows to bronze, else None."""
        return self.load_id if self.bronze_version is not None else None

    def audit_row(self, status: str, error: Exception | str | None = None) -> audit.LoadLog:
        return audit.LoadLog(
            data_source=self.datasource,
            tablename=self.table,
            numberofrowscopied=self.rows,
            watermarkcolumnname=self.watermark_column,
            loaddate=self.loaded_at,
            load_id=self.load_id,
            load_type=self.load_type,
            watermark_from=self.watermark_from,
            watermark_max=self.watermark_max,
            status=status,
            run_id=self.run_id,
            bronze_version=self.bronze_version,
            duration_seconds=self.duration_seconds,
            error=str(error) if error else None,
            source_file=self.source_file,
            content_hash=self.content_hash,
        )

    def commit_metadata(self) -> dict[str, object]:
        return {
            "operation": "load",
            "load_id": self.load_id,
            "run_id": self.run_id or "",
            "datasource": self.datasource,
            "table": self.table,
            "load_type": self.load_type,
            "rows": self.rows,
            "extract_date": self.loaded_at.date().isoformat(),
            "watermark_column": self.watermark_column or "",
            "watermark_from": self.watermark_from or "",
            "watermark_max": self.watermark_max or "",
            "source_file": self.source_file or "",
            "content_hash": self.content_hash or "",
        }

    def asset_metadata(self) -> dict[str, object]:
        extract: dict[str, object] = {}
        if self.query:
            extract = {
                "watermark_column": self.watermark_column or "",
                "watermark_from": self.watermark_from or "(first load)",
                "watermark_to": self.watermark_max or "",
                "source_query": MetadataValue.md(f"```sql\n{self.query}\n```"),
            }
        return {
            "dagster/row_count": self.table_rows,
            "rows_loaded": self.rows,
            "load_type": self.load_type,
            "load_id": self.load_id,
            "extract_date": self.loaded_at.date().isoformat(),
            **extract,
            **self.details,
            "bronze_table": MetadataValue.path(self.bronze_uri),
            "bronze_version": self.bronze_version if self.bronze_version is not None else -1,
            "duration_seconds": round(self.duration_seconds, 3),
        }


class ConcurrentLoadError(RcmError):
    """Another run loaded the same datasource's table from the same watermark meanwhile."""


class LoadAttempt:
    """A load in progress: recovers missing audit rows first, then commits or records failure."""

    def __init__(self, record: LoadRecord, lake: LakeAddresses, log: logging.Logger) -> None:
        self.record, self.lake, self.log = record, lake, log
        self.started = time.monotonic()
        self.audit_uri = lake.audit(AuditTable.LOAD_LOGS)
        audit.recover_missing(
            self.audit_uri,
            record.bronze_uri,
            record.datasource,
            record.table,
            lake.storage_options,
            log,
        )

    @classmethod
    def start(
        cls,
        lake: LakeAddresses,
        log: logging.Logger,
        *,
        datasource: str,
        table: str,
        load_type: str,
        bronze_uri: str,
        run_id: str | None,
        **fields: object,
    ) -> LoadAttempt:
        now = datetime.now(UTC)
        record = LoadRecord(
            datasource, table, load_type, new_load_id(now), run_id, now, bronze_uri, **fields
        )
        return cls(record, lake, log)

    def update(self, **fields: object) -> LoadRecord:
        self.record = replace(self.record, **fields)
        return self.record

    def _elapsed(self) -> float:
        return time.monotonic() - self.started

    def log_status(
        self, status: str, error: Exception | str | None = None, **fields: object
    ) -> None:
        """An audit row of this attempt with another status (duplicate, rejected, superseded)."""
        row = replace(self.record, duration_seconds=self._elapsed(), **fields)
        audit.append_logs(self.audit_uri, [row.audit_row(status, error)], self.lake.storage_options)

    def commit(self, rows: pl.DataFrame | Staged, read_version: int | None = None) -> LoadRecord:
        """Append the rows (lineage already on them) in one commit; then the success row.

        `read_version` is the bronze version the extract's watermark was read at: a load of
        the same datasource committed since (a second run at the same time) read the same
        watermark, so this extract overlaps it and is not appended (`ConcurrentLoadError`).
        """
        options = self.lake.storage_options
        count = rows.height if isinstance(rows, pl.DataFrame) else rows.rows
        record = self.update(rows=count)
        if count:
            if read_version is not None:
                self._refuse_overlap(read_version)
            data = rows if isinstance(rows, pl.DataFrame) else rows.reader()
            version = delta.append(record.bronze_uri, data, record.commit_metadata(), options)
            record = self.update(bronze_version=version)
        self.update(
            duration_seconds=self._elapsed(),
            table_rows=delta.row_count(record.bronze_uri, options),
        )
        audit.append_logs(self.audit_uri, [self.record.audit_row("success")], options)
        return self.record

    def _refuse_overlap(self, read_version: int) -> None:
        uri, options = self.record.bronze_uri, self.lake.storage_options
        if not delta.exists(uri, options) or delta.version(uri, options) == read_version:
            return
        overlapping = [
            commit["rcm"]
            for commit in delta.commits(uri, options)
            if commit["version"] > read_version
            and commit["rcm"].get("operation") == "load"
            and commit["rcm"].get("datasource") == self.record.datasource
        ]
        if overlapping:
            other = overlapping[-1]
            raise ConcurrentLoadError(
                f"datasource {self.record.datasource}: {self.record.table} was loaded by another "
                f"run while this one extracted (load {other.get('load_id')}, run "
                f"{other.get('run_id')}), from the same watermark: this extract overlaps it and "
                "was not appended, so nothing is loaded twice; the next run continues from there"
            )

    @contextmanager
    def failure_recorded(self) -> Iterator[LoadAttempt]:
        """A failure before the bronze commit leaves a `failed` audit row, then re-raises.

        After the commit the load has happened: a missing success row is restored from the
        commit's metadata by the next attempt's `recover_missing`, never recorded as failed.
        """
        try:
            yield self
        except Exception as error:
            if self.record.bronze_version is None:
                self.log_status("failed", error, rows=0)
            raise
