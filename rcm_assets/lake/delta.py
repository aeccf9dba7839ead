"""Thin, typed wrappers over delta-rs used by every layer.

Each commit carries `rcm.*` custom metadata (load id, run id, ...) so a table version can be
traced to the load and Dagster run that wrote it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl
from deltalake import CommitProperties, DeltaTable

COMMIT_PREFIX = "rcm."


def exists(uri: str, storage_options: Mapping[str, str] | None = None) -> bool:
    return DeltaTable.is_deltatable(uri, storage_options=dict(storage_options or {}))


def _commit(metadata: Mapping[str, Any]) -> CommitProperties:
    return CommitProperties(
        custom_metadata={f"{COMMIT_PREFIX}{key}": str(value) for key, value in metadata.items()}
    )


def append(
    uri: str,
    frame: pl.DataFrame,
    commit_metadata: Mapping[str, Any],
    storage_options: Mapping[str, str] | None = None,
    partition_by: list[str] | None = None,
) -> int:
    """Append in one atomic commit (new columns merge into the schema); return the new version."""
    options = {"schema_mode": "merge", "commit_properties": _commit(commit_metadata)}
    if partition_by and not exists(uri, storage_options):
        options["partition_by"] = partition_by
    frame.write_delta(
        uri, mode="append", storage_options=dict(storage_options or {}), delta_write_options=options
    )
    return DeltaTable(uri, storage_options=dict(storage_options or {})).version()


def overwrite_where(
    uri: str,
    frame: pl.DataFrame,
    predicate: str,
    commit_metadata: Mapping[str, Any],
    storage_options: Mapping[str, str] | None = None,
) -> int:
    """Replace the rows matching `predicate` with `frame` in one atomic commit."""
    frame.write_delta(
        uri,
        mode="overwrite",
        storage_options=dict(storage_options or {}),
        delta_write_options={
            "predicate": predicate,
            "schema_mode": "merge",
            "commit_properties": _commit(commit_metadata),
        },
    )
    return DeltaTable(uri, storage_options=dict(storage_options or {})).version()


def scan(uri: str, storage_options: Mapping[str, str] | None = None) -> pl.LazyFrame:
    return pl.scan_delta(uri, storage_options=dict(storage_options or {}))


def row_count(
    uri: str, storage_options: Mapping[str, str] | None = None, where: pl.Expr | None = None
) -> int:
    """Rows in the table (matching `where`); 0 while the table does not exist."""
    if not exists(uri, storage_options):
        return 0
    rows = scan(uri, storage_options)
    return (rows if where is None else rows.filter(where)).select(pl.len()).collect().item()


def delete(
    uri: str,
    predicate: str,
    commit_metadata: Mapping[str, Any],
    storage_options: Mapping[str, str] | None = None,
) -> int:
    """Delete the rows matching a SQL predicate in one commit; return how many were deleted."""
    table = DeltaTable(uri, storage_options=dict(storage_options or {}))
    metrics = table.delete(predicate, commit_properties=_commit(commit_metadata))
    return int(metrics.get("num_deleted_rows", 0))


def commits(uri: str, storage_options: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Commit history, newest first, with the `rcm.` prefix stripped from our own keys."""
    history = DeltaTable(uri, storage_options=dict(storage_options or {})).history()
    return [
        {
            **{k: v for k, v in entry.items() if not k.startswith(COMMIT_PREFIX)},
            "rcm": {
                k.removeprefix(COMMIT_PREFIX): v
                for k, v in entry.items()
                if k.startswith(COMMIT_PREFIX)
            },
        }
        for entry in history
    ]
