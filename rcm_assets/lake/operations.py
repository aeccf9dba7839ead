"""Housekeeping over every Delta table of the lake: vacuum and compaction.

- `vacuum_tables` deletes data files no version newer than the retention window still needs
  (default 168 hours, delta-rs's own default). delta-rs refuses a retention below a table's
  configured minimum (`delta.deletedFileRetentionDuration`, 7 days unless set); `force` lifts
  that check (`enforce_retention_duration=False`). Going below it makes older versions
  unreadable (no time travel or restore to them) and can break a reader still on an old
  snapshot, so it is an explicit choice. Every table is checked (a dry run) before any is
  vacuumed, so a refusal leaves the whole lake untouched.
- `optimize_tables` compacts small files (`optimize.compact()`); the content and its version
  lineage stay the same, the replaced files are left for vacuum.

Restore lives in `lake.restore`, patient erasure in `lake.erasure`.
"""

from __future__ import annotations

from dataclasses import dataclass

from deltalake import CommitProperties

from rcm_assets.errors import RcmError
from rcm_assets.lake import delta
from rcm_assets.lake.addresses import LakeAddresses
from rcm_assets.lake.inventory import open_table, table_names

DEFAULT_RETENTION_HOURS = 168


@dataclass(frozen=True)
class VacuumResult:
    table: str
    files_removed: int
    dry_run: bool


@dataclass(frozen=True)
class OptimizeResult:
    table: str
    files_added: int
    files_removed: int
    version: int


def _properties(operation: str) -> CommitProperties:
    return CommitProperties(custom_metadata={f"{delta.COMMIT_PREFIX}operation": operation})


def vacuum_table(
    lake: LakeAddresses,
    name: str,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    dry_run: bool = False,
    force: bool = False,
    full: bool = False,
) -> VacuumResult:
    """Vacuum one table; `full` also removes files the log never mentioned (e.g. left by a
    killed writer), not only files it removed."""
    if retention_hours < 0:
        raise RcmError(f"--retention-hours must be 0 or more, not {retention_hours}")
    table = open_table(lake, name)
    try:
        removed = table.vacuum(
            retention_hours=retention_hours,
            dry_run=dry_run,
            enforce_retention_duration=not force,
            full=full,
            commit_properties=None if dry_run else _properties("vacuum"),
        )
    except Exception as error:  # delta-rs raises a bare DeltaError for the retention check
        if "retention" in str(error).lower():
            raise RcmError(
                f"{name}: {error}. Pass --force to go below the table's minimum; versions older "
                "than the retention then cannot be read or restored."
            ) from None
        raise RcmError(f"{name}: vacuum failed: {error}") from None
    return VacuumResult(name, len(removed), dry_run)


def vacuum_tables(
    lake: LakeAddresses,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    dry_run: bool = False,
    force: bool = False,
) -> list[VacuumResult]:
    names = table_names(lake)
    planned = [vacuum_table(lake, name, retention_hours, True, force) for name in names]
    if dry_run:
        return planned
    return [vacuum_table(lake, name, retention_hours, False, force) for name in names]


def optimize_table(lake: LakeAddresses, name: str) -> OptimizeResult:
    table = open_table(lake, name)
    try:
        metrics = table.optimize.compact(
            commit_properties=_properties("optimize"), writer_properties=delta.WRITER_PROPERTIES
        )
    except Exception as error:  # e.g. a concurrent writer won the commit
        raise RcmError(f"{name}: optimize failed: {error}") from None
    return OptimizeResult(
        name,
        int(metrics.get("numFilesAdded", 0)),
        int(metrics.get("numFilesRemoved", 0)),
        table.version(),
    )


def optimize_tables(lake: LakeAddresses, names: list[str] | None = None) -> list[OptimizeResult]:
    return [optimize_table(lake, name) for name in names or table_names(lake)]
