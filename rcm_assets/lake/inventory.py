"""What the lake holds: its Delta tables, their versions and history, time-travel reads.

A table is named by its path relative to the lake root (`silver/patients`,
`bronze/hosa/patients`); its layer is the first part. On a local lake the tables are found by
walking the folders for `_delta_log`; an object-store lake cannot be walked cheaply, so there the
tables the metadata implies (every layer's known paths) are probed instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from deltalake import DeltaTable

from rcm_assets.errors import RcmError
from rcm_assets.lake import delta
from rcm_assets.lake.addresses import LakeAddresses, expected_table_names
from rcm_assets.metadata import Metadata, load_metadata


@dataclass(frozen=True)
class TableInfo:
    """One Delta table as `rcm lake tables` lists it."""

    name: str
    layer: str
    version: int
    rows: int
    size_bytes: int
    files: int
    last_write: datetime


@dataclass(frozen=True)
class HistoryEntry:
    """One commit of a table: Delta's own facts plus the `rcm.*` metadata we wrote with it."""

    version: int
    time: datetime
    operation: str
    added: int | None
    updated: int | None
    deleted: int | None
    rcm: Mapping[str, str] = field(default_factory=dict)

    @property
    def run_id(self) -> str | None:
        return self.rcm.get("run_id") or None

    @property
    def load_ids(self) -> str | None:
        return self.rcm.get("load_id") or self.rcm.get("consumed_load_ids") or None

    @property
    def rcm_operation(self) -> str | None:
        return self.rcm.get("operation") or None


def timestamp(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


def open_table(lake: LakeAddresses, name: str) -> DeltaTable:
    uri = lake.named(name)
    if not delta.exists(uri, lake.storage_options):
        raise RcmError(f"unknown table {name!r}: no Delta table at {uri} (see `rcm lake tables`)")
    return DeltaTable(uri, storage_options=dict(lake.storage_options or {}))


def table_names(lake: LakeAddresses, metadata: Metadata | None = None) -> list[str]:
    """Every Delta table under the lake root, by name, sorted."""
    root = lake.local_root()
    if root is None:
        candidates = expected_table_names(metadata or load_metadata())
        return sorted(
            name for name in candidates if delta.exists(lake.named(name), lake.storage_options)
        )
    names = []
    for folder, subfolders, _ in os.walk(root):
        if "_delta_log" in subfolders:
            if Path(folder) != root:
                names.append(Path(folder).relative_to(root).as_posix())
            subfolders.clear()  # a table's partition folders are not tables
        else:
            subfolders[:] = [name for name in subfolders if not name.startswith((".", "_"))]
    return sorted(names)


def table_info(lake: LakeAddresses, name: str) -> TableInfo:
    table = open_table(lake, name)
    files = pl.DataFrame(table.get_add_actions(flatten=True))
    records = files.get_column("num_records") if "num_records" in files.columns else None
    if records is None or records.null_count():
        # Files written without statistics: count the rows themselves.
        rows = pl.scan_delta(table).select(pl.len()).collect().item()
    else:
        rows = int(records.sum())
    return TableInfo(
        name=name,
        layer=name.split("/")[0],
        version=table.version(),
        rows=rows,
        size_bytes=int(files.get_column("size_bytes").sum()) if files.height else 0,
        files=files.height,
        last_write=timestamp(table.history(limit=1)[0]["timestamp"]),
    )


def list_tables(lake: LakeAddresses, metadata: Metadata | None = None) -> list[TableInfo]:
    return [table_info(lake, name) for name in table_names(lake, metadata)]


def _first_metric(metrics: Mapping[str, Any], *names: str) -> int | None:
    for name in names:
        if metrics.get(name) is not None:
            return int(metrics[name])
    return None


def history_entry(commit: Mapping[str, Any]) -> HistoryEntry:
    """A commit as `delta.commits` returns it (rcm keys already unprefixed)."""
    metrics = commit.get("operationMetrics") or {}
    return HistoryEntry(
        version=int(commit["version"]),
        time=timestamp(commit["timestamp"]),
        operation=str(commit.get("operation", "")),
        added=_first_metric(metrics, "num_added_rows", "num_target_rows_inserted"),
        updated=_first_metric(metrics, "num_target_rows_updated", "num_updated_rows"),
        deleted=_first_metric(metrics, "num_deleted_rows", "num_target_rows_deleted"),
        rcm=dict(commit.get("rcm") or {}),
    )


def table_history(lake: LakeAddresses, name: str, limit: int | None = None) -> list[HistoryEntry]:
    """Commits of a table, newest first."""
    open_table(lake, name)  # names the table when it does not exist
    commits = delta.commits(lake.named(name), lake.storage_options)
    return [history_entry(commit) for commit in commits[:limit]]


def as_utc(moment: datetime) -> datetime:
    """A naive time is taken as UTC, the time zone every commit time is shown in."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def open_version(
    lake: LakeAddresses, name: str, version: int | None = None, as_of: datetime | None = None
) -> DeltaTable:
    """The table at `version`, or at the newest version committed at or before `as_of`."""
    table = open_table(lake, name)
    latest = table.version()
    if version is not None:
        if not 0 <= version <= latest:
            raise RcmError(f"{name} has versions 0 to {latest}; there is no version {version}")
        target: int | datetime = version
    elif as_of is not None:
        target = as_utc(as_of)
        first = timestamp(table.history()[-1]["timestamp"])
        if target < first:
            raise RcmError(
                f"{name} did not exist at {target.isoformat()}; its oldest version in the log "
                f"was written at {first.isoformat()}"
            )
    else:
        return table
    try:
        table.load_as_version(target)
    except Exception as error:  # delta-rs raises a bare DeltaError for a cleaned-up log
        raise RcmError(f"{name}: cannot read version {target}: {error}") from None
    return table


def read_table(
    lake: LakeAddresses, name: str, version: int | None = None, as_of: datetime | None = None
) -> pl.LazyFrame:
    return pl.scan_delta(open_version(lake, name, version, as_of))


def format_table(rows: list[dict[str, Any]]) -> str:
    """Rows as aligned text columns: numbers right-aligned, the rest left-aligned."""
    if not rows:
        return "(none)"
    columns = list(rows[0])
    cells = [[_cell(row[column]) for column in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    numeric = [
        all(isinstance(row[c], int | float) or row[c] is None for row in rows) for c in columns
    ]

    def line(values: list[str]) -> str:
        padded = (
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        )
        return "  ".join(padded).rstrip()

    return "\n".join([line(columns), *(line(values) for values in cells)])


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)
