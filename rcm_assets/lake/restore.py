"""`rcm lake restore`: roll a Delta table back to an earlier version, and its downstream with it.

The table is rolled back with delta-rs `restore(N)`: a new version whose content is version N,
committed with `rcm.operation=restore`, `rcm.restored_version=N` and `rcm.load_id=<restore id>`,
plus a row in `audit/load_logs` (status `restored`, load type `Restore`, tablename the table
name, load id the restore id). The restore is refused, naming the tables, when downstream tables
were built from data it takes back; `--cascade` repairs them instead. The rules:

bronze → silver
    The silver tables reading a bronze table are those whose bronze slices
    (`LakeAddresses.bronze_slices`) point at it, per datasource. The restore takes back the load
    ids present now but absent from version N (the loads appended after N; archived loads are in
    neither and do not count). A silver table is stale for a datasource when a commit still in
    effect for that datasource recorded one of them in `rcm.consumed_load_ids`. "In effect"
    follows the lineage: a Delta RESTORE commit sends the walk back to the version it restored,
    and so does our own per-datasource rollback commit, for its datasource.

    Cascade rolls back only that datasource's rows (silver commits are per datasource, and the
    other hospitals' later loads must survive) to the version just before the first commit that
    consumed a removed load: one overwrite commit scoped to `datasource = '…'`, with
    `rcm.operation=restore`, `rcm.restored_version` and `rcm.datasource`, and an audit row. It
    records no consumed load ids. The removed loads are gone from bronze, whose watermark went
    back with them, so the next incremental extract reads those source rows again under new load
    ids, which silver then consumes.

    A rollback that would also take back a load bronze keeps (consumed in the same commit as a
    removed one) is refused even with `--cascade`: silver keeps that load id recorded as consumed
    and would never read it again. Restore bronze to a version before that load instead.

silver → gold, gold → gold
    The downstream are the gold assets below the table in the Dagster asset graph. One is stale
    when its last commit is at or after the commit of version N+1, the first version the restore
    takes back, i.e. it was built from newer data. (Gold below a silver table rolled back by a
    bronze cascade is timed the same way, from the first silver commit rolled back.) Cascade
    rebuilds them by materializing those gold assets through Dagster; gold is always rebuilt
    whole from silver.

audit and archive tables have no downstream.

Restoring a silver table itself cannot un-record the load ids consumed by the commits it takes
back (they stay in the Delta log, which is where silver reads consumption from), so those loads
are not read again; the result lists them so the operator can rebuild silver if they matter.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import polars as pl
from deltalake import CommitProperties, DeltaTable

from rcm_assets.errors import RcmError
from rcm_assets.lake import audit, delta
from rcm_assets.lake.addresses import AuditTable, LakeAddresses
from rcm_assets.lake.inventory import open_table, open_version, read_table, timestamp
from rcm_assets.lake.predicates import column_equals
from rcm_assets.lake.scd2 import CONSUMED_LOAD_IDS, DATASOURCE
from rcm_assets.metadata import Metadata, load_metadata

RESTORE = "restore"
ANY_DATASOURCE = "*"


class GoldGraph(Protocol):
    """What a restore needs from the asset graph; the Dagster layer provides it (`runs.py`)."""

    def gold_below(self, name: str) -> list[str]:
        """Gold assets anywhere below the asset `name` (`silver/patients`)."""
        ...

    def rebuild(self, names: list[str]) -> str:
        """Materialize these gold assets in one run; return its run id."""
        ...


@dataclass(frozen=True)
class SilverRollback:
    """One datasource of a silver table that consumed loads a bronze restore takes back."""

    table: str  # silver/patients
    datasource: str
    to_version: int  # -1: back to before the datasource's first commit (no rows)
    first_taken_back: datetime  # commit time of the first commit rolled back
    removed_load_ids: tuple[str, ...]
    lost_load_ids: tuple[str, ...]  # kept in bronze, but consumed by a commit rolled back

    def describe(self) -> str:
        return (
            f"{self.table} ({self.datasource} consumed load(s) "
            f"{', '.join(self.removed_load_ids)} that the restored version no longer has)"
        )


@dataclass(frozen=True)
class RestorePlan:
    table: str
    version: int
    latest: int
    silver: tuple[SilverRollback, ...] = ()
    gold: tuple[str, ...] = ()
    untracked_load_ids: tuple[str, ...] = ()  # silver restores only, see the module docstring

    @property
    def downstream(self) -> list[str]:
        return [r.describe() for r in self.silver] + [
            f"{name} (rebuilt from newer data)" for name in self.gold
        ]


@dataclass(frozen=True)
class RestoreResult:
    plan: RestorePlan
    restore_id: str
    new_version: int
    rows: int
    silver_versions: dict[str, int] = field(default_factory=dict)  # "silver/x (ds)" -> version
    gold_run_id: str | None = None


def _properties(metadata: Mapping[str, Any]) -> CommitProperties:
    return CommitProperties(
        custom_metadata={f"{delta.COMMIT_PREFIX}{k}": str(v) for k, v in metadata.items()}
    )


def consumed(commit: Mapping[str, Any]) -> set[str]:
    return set(filter(None, commit["rcm"].get(CONSUMED_LOAD_IDS, "").split(",")))


def effective_commits(commits: list[dict[str, Any]], datasource: str) -> list[dict[str, Any]]:
    """The commits whose changes are still in effect for one datasource, newest first.

    A Delta RESTORE commit makes the table equal to the version it restored, so the walk jumps
    there; our per-datasource rollback commit does the same for its datasource only.
    """
    by_version = {int(c["version"]): c for c in commits}
    version, effective = max(by_version, default=-1), []
    while version in by_version:
        commit = by_version[version]
        meta = commit["rcm"]
        if commit.get("operation") == "RESTORE":
            restored = (commit.get("operationParameters") or {}).get("version")
            if restored is None:  # restored by timestamp: the lineage cannot be followed
                break
            version = int(restored)
        elif meta.get("operation") == RESTORE and meta.get(DATASOURCE) == datasource:
            version = int(meta["restored_version"])
        else:
            effective.append(commit)
            version -= 1
    return effective


def _load_ids(table: DeltaTable, where: pl.Expr | None) -> set[str]:
    scan = pl.scan_delta(table)
    if "load_id" not in scan.collect_schema().names():
        return set()
    scan = scan.filter(where) if where is not None else scan
    return set(scan.select(pl.col("load_id").unique()).collect().get_column("load_id").to_list())


def _silver_rollback(
    lake: LakeAddresses, silver: str, datasource: str, removed: set[str]
) -> SilverRollback | None:
    uri = lake.named(silver)
    if not delta.exists(uri, lake.storage_options):
        return None
    lineage = effective_commits(delta.commits(uri, lake.storage_options), datasource)
    own = [c for c in lineage if c["rcm"].get(DATASOURCE) == datasource and consumed(c)]
    stale = [c for c in own if consumed(c) & removed]
    if not stale:
        return None
    first = min(stale, key=lambda c: int(c["version"]))
    taken_back = set().union(*(consumed(c) for c in own if c["version"] >= first["version"]))
    return SilverRollback(
        table=silver,
        datasource=datasource,
        to_version=int(first["version"]) - 1,
        first_taken_back=timestamp(first["timestamp"]),
        removed_load_ids=tuple(sorted(taken_back & removed)),
        lost_load_ids=tuple(sorted(taken_back - removed)),
    )


def _stale_silver(
    lake: LakeAddresses, metadata: Metadata, name: str, version: int
) -> list[SilverRollback]:
    uri = lake.named(name)
    now, then = open_table(lake, name), open_version(lake, name, version)
    rollbacks = []
    for silver in metadata.silver_tables.values():
        for piece in lake.bronze_slices(silver, metadata):
            if piece.uri.rstrip("/") != uri.rstrip("/"):
                continue
            removed = _load_ids(now, piece.where) - _load_ids(then, piece.where)
            if not removed:
                continue
            rollback = _silver_rollback(lake, f"silver/{silver.table}", piece.datasource, removed)
            if rollback is not None:
                rollbacks.append(rollback)
    return rollbacks


def _last_write(lake: LakeAddresses, name: str) -> datetime | None:
    uri = lake.named(name)
    if not delta.exists(uri, lake.storage_options):
        return None
    return timestamp(open_table(lake, name).history(limit=1)[0]["timestamp"])


def _stale_gold(
    lake: LakeAddresses, graph: GoldGraph, upstream: str, cutoff: datetime
) -> list[str]:
    """Gold below `upstream` last written at or after `cutoff`."""
    return [
        gold
        for gold in graph.gold_below(upstream)
        if (written := _last_write(lake, gold)) is not None and written >= cutoff
    ]


def _commit_time(lake: LakeAddresses, name: str, version: int) -> datetime:
    commits = delta.commits(lake.named(name), lake.storage_options)
    return timestamp(next(c["timestamp"] for c in commits if int(c["version"]) == version))


def _untracked(lake: LakeAddresses, name: str, version: int) -> tuple[str, ...]:
    """Load ids consumed only by the silver commits a restore to `version` takes back."""
    commits = delta.commits(lake.named(name), lake.storage_options)
    datasources = {c["rcm"].get(DATASOURCE) for c in commits} - {None}
    taken_back: set[str] = set()
    for datasource in datasources:
        lineage = effective_commits(commits, datasource)
        own = [c for c in lineage if c["rcm"].get(DATASOURCE) == datasource]
        taken_back |= set().union(*(consumed(c) for c in own if int(c["version"]) > version))
    return tuple(sorted(taken_back))


def check_version(lake: LakeAddresses, name: str, version: int) -> int:
    """The table's latest version; refuses an unknown table or a version it cannot restore."""
    latest = open_table(lake, name).version()
    if version == latest:
        raise RcmError(f"{name} is already at version {version}; nothing to restore")
    if not 0 <= version < latest:
        raise RcmError(f"{name} has versions 0 to {latest}; cannot restore to version {version}")
    open_version(lake, name, version)  # fails clearly when the log no longer has it
    return latest


def plan_restore(
    lake: LakeAddresses,
    name: str,
    version: int,
    metadata: Metadata | None = None,
    graph: GoldGraph | None = None,
) -> RestorePlan:
    """What a restore of `name` to `version` would leave stale downstream (nothing is written)."""
    latest = check_version(lake, name, version)
    layer = name.split("/")[0]
    if layer not in ("bronze", "silver", "gold"):
        return RestorePlan(name, version, latest)
    metadata = metadata or load_metadata()
    if graph is None:
        raise ValueError(f"restoring {name} needs the asset graph to find its downstream")
    if layer == "bronze":
        silver = _stale_silver(lake, metadata, name, version)
        gold = {
            g
            for rollback in silver
            for g in _stale_gold(lake, graph, rollback.table, rollback.first_taken_back)
        }
        return RestorePlan(name, version, latest, tuple(silver), tuple(sorted(gold)))
    cutoff = _commit_time(lake, name, version + 1)
    return RestorePlan(
        name,
        version,
        latest,
        gold=tuple(_stale_gold(lake, graph, name, cutoff)),
        untracked_load_ids=_untracked(lake, name, version) if layer == "silver" else (),
    )


def _refuse_lost_loads(plan: RestorePlan) -> None:
    lossy = [r for r in plan.silver if r.lost_load_ids]
    if lossy:
        details = "; ".join(
            f"{r.table} ({r.datasource}) consumed load(s) {', '.join(r.lost_load_ids)}, which "
            f"version {plan.version} keeps, in the same commit(s) as "
            f"{', '.join(r.removed_load_ids)}"
            for r in lossy
        )
        raise RcmError(
            f"{plan.table}: cannot restore to version {plan.version} even with --cascade: "
            f"{details}. Rolling silver back would lose those loads for good (they stay recorded "
            "as consumed). Restore to a version before they were loaded instead."
        )


def _refuse_stale(plan: RestorePlan) -> None:
    raise RcmError(
        f"{plan.table}: restoring to version {plan.version} would leave downstream tables built "
        f"from newer data: {'; '.join(plan.downstream)}. Re-run with --cascade to roll them back "
        "and rebuild them."
    )


def refuse_unsafe(plan: RestorePlan, cascade: bool) -> None:
    """Raise the RcmError `restore_table` raises for this plan, if any (nothing is written)."""
    _refuse_lost_loads(plan)
    if (plan.silver or plan.gold) and not cascade:
        _refuse_stale(plan)


def _datasource_of(metadata: Metadata, name: str) -> str:
    for config in metadata.load_configs:
        if name == f"bronze/{config.targetpath}/{config.table}":
            return config.datasource
    return ANY_DATASOURCE


def _audit_row(
    name: str, datasource: str, rows: int, restore_id: str, version: int | None, seconds: float
) -> audit.LoadLog:
    return audit.LoadLog(
        data_source=datasource,
        tablename=name,
        numberofrowscopied=rows,
        watermarkcolumnname=None,
        loaddate=datetime.now(UTC),
        load_id=restore_id,
        load_type="Restore",
        watermark_from=None,
        watermark_max=None,
        status="restored",
        run_id=None,
        bronze_version=version if name.startswith("bronze/") else None,
        duration_seconds=round(seconds, 3),
    )


def _roll_back_datasource(
    lake: LakeAddresses, rollback: SilverRollback, restore_id: str, source: str
) -> tuple[int, int]:
    """Put one datasource's silver rows back as they were; return (new version, rows)."""
    uri = lake.named(rollback.table)
    predicate = column_equals(DATASOURCE, rollback.datasource)
    metadata = {
        "operation": RESTORE,
        "restored_version": rollback.to_version,
        DATASOURCE: rollback.datasource,
        "load_id": restore_id,
        "cascade_from": source,
    }
    frame = pl.DataFrame()
    if rollback.to_version >= 0:
        frame = (
            read_table(lake, rollback.table, version=rollback.to_version)
            .filter(pl.col(DATASOURCE) == rollback.datasource)
            .collect()
        )
    if frame.is_empty():
        delta.delete(uri, predicate, metadata, lake.storage_options)
    else:
        delta.overwrite_where(uri, frame, predicate, metadata, lake.storage_options)
    return open_table(lake, rollback.table).version(), frame.height


def restore_table(
    lake: LakeAddresses,
    name: str,
    version: int,
    cascade: bool = False,
    metadata: Metadata | None = None,
    graph: GoldGraph | None = None,
) -> RestoreResult:
    """Restore `name` to `version` (rules in the module docstring); refuse stale downstream."""
    started = time.monotonic()
    metadata = metadata or load_metadata()
    plan = plan_restore(lake, name, version, metadata, graph)
    refuse_unsafe(plan, cascade)

    restore_id = f"restore-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    table = open_table(lake, name)
    try:
        table.restore(
            version,
            commit_properties=_properties(
                {"operation": RESTORE, "restored_version": version, "load_id": restore_id}
            ),
        )
    except Exception as error:  # e.g. the version's files were vacuumed
        raise RcmError(f"{name}: cannot restore to version {version}: {error}") from None
    new_version = table.version()
    rows = read_table(lake, name).select(pl.len()).collect().item()
    logs = [
        _audit_row(
            name,
            _datasource_of(metadata, name),
            rows,
            restore_id,
            new_version,
            time.monotonic() - started,
        )
    ]
    silver_versions = {}
    for rollback in plan.silver:
        silver_version, silver_rows = _roll_back_datasource(lake, rollback, restore_id, name)
        silver_versions[f"{rollback.table} ({rollback.datasource})"] = silver_version
        logs.append(
            _audit_row(
                rollback.table,
                rollback.datasource,
                silver_rows,
                restore_id,
                silver_version,
                time.monotonic() - started,
            )
        )
    audit.append_logs(lake.audit(AuditTable.LOAD_LOGS), logs, lake.storage_options)

    run_id = None
    if plan.gold and graph is not None:
        run_id = graph.rebuild(list(plan.gold))
    return RestoreResult(plan, restore_id, new_version, rows, silver_versions, run_id)
