"""Thin, typed wrappers over delta-rs used by every layer.

Each commit carries `rcm.*` custom metadata (load id, run id, ...) so a table version can be
traced to the load and Dagster run that wrote it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import polars as pl
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError

from rcm_assets.errors import RcmError

if TYPE_CHECKING:  # pyarrow imports numpy: not at definitions load
    import pyarrow as pa

COMMIT_PREFIX = "rcm."
# Rows per Parquet row group in every file the lake writes. A reader decodes a row group at a
# time, so this bounds a streamed scan's memory; delta-rs's default (about 1M rows) made a 10M
# transaction table cost a row group of 1M rows times every column in each reader. Snappy as
# delta-rs's default (WriterProperties without a compression writes uncompressed files).
ROW_GROUP_ROWS = 131_072
WRITER_PROPERTIES = WriterProperties(max_row_group_size=ROW_GROUP_ROWS, compression="SNAPPY")
CONFLICT_ATTEMPTS = 4
T = TypeVar("T")


class ConcurrentWriteError(RcmError):
    """Another writer kept committing to the same rows of a table first."""


def retry_on_conflict(
    write: Callable[[], T],
    table: str,
    log: logging.Logger | None = None,
    attempts: int = CONFLICT_ATTEMPTS,
) -> T:
    """Run `write` (which must re-read what it writes from) again after a commit conflict.

    delta-rs refuses a commit when a concurrent one changed the rows it read (optimistic
    concurrency), and writes nothing; reading again and retrying is then safe. Writes to
    different partitions, and blind appends, do not conflict.
    """
    log = log or logging.getLogger(__name__)
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except CommitFailedError as error:
            reason = str(error).splitlines()[0]
            if attempt == attempts:
                raise ConcurrentWriteError(
                    f"{table}: a concurrent writer committed first {attempts} times ({reason}); "
                    "nothing was written by this run, re-run it"
                ) from None
            log.warning(
                "%s: commit conflict with a concurrent writer (%s); retry %d of %d",
                table,
                reason,
                attempt,
                attempts - 1,
            )
            time.sleep(random.uniform(0.1, 0.5) * attempt)
    raise AssertionError("unreachable")


def exists(uri: str, storage_options: Mapping[str, str] | None = None) -> bool:
    return DeltaTable.is_deltatable(uri, storage_options=dict(storage_options or {}))


def commit_properties(metadata: Mapping[str, Any]) -> CommitProperties:
    return CommitProperties(
        custom_metadata={f"{COMMIT_PREFIX}{key}": str(value) for key, value in metadata.items()}
    )


def append(
    uri: str,
    rows: pl.DataFrame | pa.RecordBatchReader,
    commit_metadata: Mapping[str, Any],
    storage_options: Mapping[str, str] | None = None,
    partition_by: list[str] | None = None,
) -> int:
    """Append in one atomic commit (new columns merge into the schema); return the new version.

    `rows` is a frame, or a stream of batches (`rcm_assets.staging`) that is never held whole.
    """
    options = {
        "schema_mode": "merge",
        "commit_properties": commit_properties(commit_metadata),
        "writer_properties": WRITER_PROPERTIES,
    }
    if partition_by and not exists(uri, storage_options):
        options["partition_by"] = partition_by
    if isinstance(rows, pl.DataFrame):
        rows.write_delta(
            uri,
            mode="append",
            storage_options=dict(storage_options or {}),
            delta_write_options=options,
        )
    else:
        write_deltalake(
            uri, rows, mode="append", storage_options=dict(storage_options or {}), **options
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
            "commit_properties": commit_properties(commit_metadata),
            "writer_properties": WRITER_PROPERTIES,
        },
    )
    return DeltaTable(uri, storage_options=dict(storage_options or {})).version()


def overwrite_with(
    uri: str,
    parts: Iterable[pl.LazyFrame],
    schema: pl.Schema,
    commit_metadata: Mapping[str, Any],
    storage_options: Mapping[str, str] | None = None,
) -> None:
    """Replace the table (its schema too) with the rows of `parts` in one atomic commit. The
    parts are streamed one after another, so a part that holds its rows (a sort, a unique)
    holds only its own. (delta-rs does not keep the rows' order in the files it writes.)"""
    import pyarrow as pa

    arrow_schema = pl.DataFrame(schema=schema).to_arrow().schema

    def batches() -> Iterator[pa.RecordBatch]:
        for part in parts:
            for batch in part.collect_batches(maintain_order=False):
                yield from batch.to_arrow().cast(arrow_schema).to_batches()

    write_deltalake(
        uri,
        pa.RecordBatchReader.from_batches(arrow_schema, batches()),
        mode="overwrite",
        schema_mode="overwrite",
        commit_properties=commit_properties(commit_metadata),
        writer_properties=WRITER_PROPERTIES,
        storage_options=dict(storage_options or {}),
    )


def version(uri: str, storage_options: Mapping[str, str] | None = None) -> int:
    return DeltaTable(uri, storage_options=dict(storage_options or {})).version()


def scan(
    uri: str, storage_options: Mapping[str, str] | None = None, version: int | None = None
) -> pl.LazyFrame:
    """The table lazily, at its newest version or at `version`."""
    return pl.scan_delta(uri, version=version, storage_options=dict(storage_options or {}))


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
    metrics = table.delete(predicate, commit_properties=commit_properties(commit_metadata))
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


def last_load_id(
    uri: str, datasource: str, storage_options: Mapping[str, str] | None = None
) -> str | None:
    """The load id of the newest `load` commit of `datasource`; None before its first load."""
    if not exists(uri, storage_options):
        return None
    return next(
        (
            commit["rcm"]["load_id"]
            for commit in commits(uri, storage_options)
            if commit["rcm"].get("operation") == "load"
            and commit["rcm"].get("datasource") == datasource
        ),
        None,
    )
