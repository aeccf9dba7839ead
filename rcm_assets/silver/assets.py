"""Silver assets: one factory builds every table of metadata/silver_tables.csv.

A table whose source is per datasource is partitioned like its bronze source: one Dagster
partition, so one step, per hospital, fed by that hospital's bronze partition only. Each step
reads only the bronze loads its datasource has not consumed yet (the consumed load ids are
recorded in the same Delta commit as the merge, so a crash can neither lose nor repeat a load),
maps them to the common data model, flags quarantine, and merges: SCD2 tables through
`lake.scd2.scd2_merge`, full tables by replacing that datasource's rows. Two hospitals' steps
write different Delta partitions (`datasource`), so their commits do not conflict.
"""

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

import polars as pl
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AutomationCondition,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    StaticPartitionsDefinition,
    TableColumn,
    TableSchema,
    asset,
    asset_check,
)

from rcm_assets.asset_checks import check_result
from rcm_assets.automation.conditions import on_new_data
from rcm_assets.errors import MetadataError, RcmError
from rcm_assets.lake import delta
from rcm_assets.lake.addresses import AuditTable, LakeAddresses
from rcm_assets.lake.predicates import column_equals
from rcm_assets.lake.scd2 import (
    ROW_HASH,
    consumed_load_ids,
    first_load_frames,
    has_current_rows,
    row_hash,
    scd2_append_first_load,
    scd2_merge,
)
from rcm_assets.metadata import ColumnType, Metadata, SilverKind, SilverTable
from rcm_assets.quality.contracts import validate_contract
from rcm_assets.quality.measures import (
    CURRENT_SCHEMA,
    MEASURES_SCHEMA,
    dq_rows,
    duplicate_measures,
    markdown,
    orphan_measures,
    quarantine_measures,
)
from rcm_assets.quality.rules import flag_conflicting_versions, rules_markdown
from rcm_assets.resources import LakeResource
from rcm_assets.silver.cdm import silver_batch
from rcm_assets.x12.views import VIEWS


@dataclass
class SilverBuild:
    inserted: int = 0
    closed: int = 0
    unchanged: int = 0
    retired: int = 0
    replaced: int = 0
    stale: int = 0  # rows older than their key's current version: never made current
    consumed: dict[str, list[str]] = field(default_factory=dict)
    held_back: list[str] = field(default_factory=list)  # snapshots not applied, and why


class SnapshotHeldBack(RcmError):
    """A full snapshot much smaller than the rows it would replace was not applied."""


def _pending_loads(scan: pl.LazyFrame, consumed: set[str], kind: SilverKind) -> list[str]:
    """Unconsumed load ids, oldest first; a full table needs only its newest snapshot."""
    loads = scan.group_by("load_id").agg(pl.col("ingested_at").max()).sort("ingested_at").collect()
    if kind is SilverKind.FULL:
        newest = loads.get_column("load_id").to_list()[-1:]
        return newest if newest and newest[0] not in consumed else []
    return [load for load in loads.get_column("load_id").to_list() if load not in consumed]


def build_silver_table(
    table: SilverTable,
    metadata: Metadata,
    lake: LakeAddresses,
    run_id: str = "",
    log: logging.Logger | None = None,
    datasource: str | None = None,
) -> SilverBuild:
    """Merge the pending bronze loads of `datasource` (of every datasource when None)."""
    log = log or logging.getLogger(__name__)
    target, options, build = lake.silver(table.table), lake.storage_options, SilverBuild()
    for piece in lake.bronze_slices(table, metadata):
        if datasource is not None and piece.datasource != datasource:
            continue
        if not delta.exists(piece.uri, options):
            continue
        scan = delta.scan(piece.uri, options)
        scan = scan.filter(piece.where) if piece.where is not None else scan
        merge = partial(
            _merge_slice,
            table,
            metadata,
            target,
            piece.datasource,
            scan,
            run_id,
            options,
            build,
            log,
        )
        # A merge that lost a commit race wrote nothing: it reads the consumed loads again.
        try:
            pending = delta.retry_on_conflict(
                merge, f"silver/{table.table} {piece.datasource}", log
            )
        except SnapshotHeldBack as held:  # the other datasources still merge
            build.held_back.append(str(held))
            log.error("%s", held)
            continue
        if pending:
            build.consumed[piece.datasource] = pending
            log.info(
                "silver/%s %s: consumed %d bronze load(s)",
                table.table,
                piece.datasource,
                len(pending),
            )
    return build


def _merge_slice(
    table: SilverTable,
    metadata: Metadata,
    target: str,
    datasource: str,
    scan: pl.LazyFrame,
    run_id: str,
    options: dict | None,
    build: SilverBuild,
    log: logging.Logger,
) -> list[str]:
    """Merge one datasource's unconsumed bronze loads in one commit; return those loads."""
    consumed = (
        consumed_load_ids(target, datasource, options) if delta.exists(target, options) else set()
    )
    pending = _pending_loads(scan, consumed, table.kind)
    if not pending:
        return []
    lazy = silver_batch(scan.filter(pl.col("load_id").is_in(pending)), table, metadata, datasource)
    if table.is_snapshot:
        _check_snapshot_size(lazy, table, target, datasource, pending, options)
    loaded_at = datetime.now(UTC)
    if table.kind is SilverKind.FULL:
        batch = validate_contract(lazy.collect(), table, metadata)
        build.replaced += _replace(target, batch, datasource, pending, loaded_at, run_id, options)
        return pending
    scd2 = {
        "key": table.key,
        "datasource": datasource,
        # A newer source modification time is a change too: every source update is a version.
        "compare": [c.column for c in metadata.columns_of(table.table) if c.column != table.key],
        "loaded_at": loaded_at,
        "commit_metadata": {"consumed_load_ids": pending, "run_id": run_id},
        "storage_options": options,
    }
    order_by = [name for name in (table.order_by, "load_id") if name]
    flag = partial(
        flag_conflicting_versions, key=table.key, order_by=order_by, compare=scd2["compare"]
    )
    if not has_current_rows(target, datasource, options):
        # The first load of a hospital is the whole table: sunk as a stream, not merged. Only
        # a repeated key can have conflicting versions, so only those rows are flagged.
        frames = first_load_frames(lazy, key=table.key, order_by=order_by, repeated_rows=flag)
        stats = scd2_append_first_load(
            target, frames, check=partial(validate_contract, table=table, metadata=metadata), **scd2
        )
    else:
        batch = validate_contract(flag(lazy).collect(), table, metadata)
        stats = scd2_merge(
            target,
            batch,
            order_by=order_by,
            retire_absent=table.retire_absent,
            version_time=table.order_by,
            **scd2,
        )
        if stats.stale:
            log.warning(
                "silver/%s %s: %d row(s) older than their key's current version (by %s) were "
                "not made current; they stay in bronze",
                table.table,
                datasource,
                stats.stale,
                table.order_by,
            )
    build.inserted += stats.inserted
    build.closed += stats.closed
    build.unchanged += stats.unchanged
    build.retired += stats.retired
    build.stale += stats.stale
    return pending


def _check_snapshot_size(
    batch: pl.LazyFrame,
    table: SilverTable,
    target: str,
    datasource: str,
    pending: list[str],
    options: dict | None,
) -> None:
    """Hold back a snapshot with fewer keys than `min_snapshot_share` of the current rows."""
    current = delta.row_count(
        target, options, (pl.col("datasource") == datasource) & pl.col("is_current")
    )
    keys = batch.select(pl.col(table.key).n_unique()).collect().item()
    if current and keys < table.min_snapshot_share * current:
        raise SnapshotHeldBack(
            f"silver/{table.table} {datasource}: the full snapshot in load(s) "
            f"{', '.join(pending)} has {keys:,} key(s), {keys / current:.0%} of the {current:,} "
            f"current row(s) (at least {table.min_snapshot_share:.0%} expected, "
            "min_snapshot_share in metadata/silver_tables.csv): held back, nothing applied; "
            "it stays pending until a complete snapshot arrives or the share is lowered"
        )


def _replace(
    uri: str,
    batch: pl.DataFrame,
    datasource: str,
    pending: list[str],
    loaded_at: datetime,
    run_id: str,
    options: dict | None,
) -> int:
    """Replace one datasource's rows with its newest full snapshot, in one commit.

    A snapshot equal to the rows already there (every column but the load id) writes nothing:
    the unchanged full extract of a quiet night leaves silver, and so gold, untouched. Its load
    stays unconsumed and is compared again next time, which a full table's size makes cheap.
    """
    if delta.exists(uri, options) and _same_rows(uri, batch, datasource, options):
        return 0
    frame = batch.with_columns(
        pl.lit(True).alias("is_current"),
        pl.lit(loaded_at).cast(pl.Datetime("us", "UTC")).alias("loaded_at"),
    )
    metadata = {
        "operation": "replace",
        "datasource": datasource,
        "consumed_load_ids": ",".join(sorted(pending)),
        "run_id": run_id,
    }
    if not delta.exists(uri, options):
        delta.append(uri, frame, metadata, options, partition_by=["datasource"])
    else:
        predicate = column_equals("datasource", datasource)
        delta.overwrite_where(uri, frame, predicate, metadata, options)
    return frame.height


def _same_rows(uri: str, batch: pl.DataFrame, datasource: str, options: dict | None) -> bool:
    columns = [name for name in batch.columns if name != "load_id"]
    stored = delta.scan(uri, options).filter(pl.col("datasource") == datasource)
    if not set(columns) <= set(stored.collect_schema().names()):
        return False
    stored_hashes = stored.select(row_hash(columns)).collect().get_column(ROW_HASH).sort()
    batch_hashes = batch.select(row_hash(columns)).get_column(ROW_HASH).sort()
    return stored_hashes.equals(batch_hashes)


def current_rows(
    lake: LakeAddresses, table: str, schema: dict, datasource: str | None = None
) -> pl.LazyFrame:
    """The `schema` columns of the table's current rows (of one datasource, or all), empty
    while the table does not exist.

    Only those columns are read: a check needs a few of a large table's columns, never all.
    """
    uri = lake.silver(table)
    if not delta.exists(uri, lake.storage_options):
        return pl.LazyFrame(schema=schema)
    current = delta.scan(uri, lake.storage_options).filter(pl.col("is_current"))
    if datasource is not None:
        current = current.filter(pl.col("datasource") == datasource)
    return current.select(list(schema))


def _partitions(table: SilverTable, metadata: Metadata) -> StaticPartitionsDefinition | None:
    """The bronze source's partitions: one per datasource, none for a reference table."""
    datasources = metadata.source_datasources(table.source)
    return StaticPartitionsDefinition(datasources) if datasources else None


def _partition(context: AssetExecutionContext | AssetCheckExecutionContext) -> str | None:
    return context.partition_key if context.has_partition_key else None


def record_measures(lake: LakeAddresses, measures: pl.DataFrame, table: str, run_id: str) -> None:
    if measures.height:
        delta.append(
            lake.audit(AuditTable.DQ_RESULTS),
            dq_rows(measures, table, run_id, datetime.now(UTC)),
            {"operation": "dq", "table": table},
            lake.storage_options,
        )


# The columns the silver build adds to the metadata's, as (name, type, description).
_QUALITY_COLUMNS = (
    ("datasource", "string", "The hospital (or reference source) the row came from"),
    ("load_id", "string", "The bronze load the row came from"),
    ("quarantine_reasons", "list<string>", "Blocking rules the row failed"),
    ("quality_flags", "list<string>", "Warning rules the row failed"),
    ("is_quarantined", "boolean", "Failed a blocking rule: kept here, left out of gold"),
)
_VERSION_COLUMNS = {
    SilverKind.SCD2: (
        ("row_hash", "bigint", "xxh3-64 of the compared columns: change detection"),
        ("is_current", "boolean", "The key's current version"),
        ("valid_from", "timestamp", "When this version became current (its load time)"),
        ("valid_to", "timestamp", "When a newer version or a retirement ended it (NULL: current)"),
        ("inserted_at", "timestamp", "When this version was written"),
        ("modified_at", "timestamp", "When this version was last changed (written or closed)"),
    ),
    SilverKind.FULL: (
        ("is_current", "boolean", "Always true: the latest full snapshot of the datasource"),
        ("loaded_at", "timestamp", "When the snapshot was loaded"),
    ),
}


def _column_schema(table: SilverTable, metadata: Metadata) -> TableSchema:
    """Every column of the Delta table: the metadata's, then the lineage, quality and version
    columns the build adds."""
    columns = [
        TableColumn(c.column, c.type.sql_type, description=c.description)
        for c in metadata.columns_of(table.table)
    ]
    added = (*_QUALITY_COLUMNS, *_VERSION_COLUMNS[table.kind])
    named = {c.name for c in columns}
    return TableSchema(
        columns=columns + [TableColumn(n, t, d) for n, t, d in added if n not in named]
    )


def build_silver_asset(table: SilverTable, metadata: Metadata) -> AssetsDefinition:
    key = AssetKey(["silver", table.table])
    if table.view and table.view not in VIEWS:
        raise MetadataError(
            f"{metadata.folder / 'silver_tables.csv'}, line {table.line}, column view: unknown "
            f"view {table.view!r} (one of {', '.join(VIEWS)})"
        )
    quarantine = metadata.threshold(table.table, "quarantine_rate")
    duplicates = metadata.threshold(table.table, "duplicate_current_keys")

    @asset(
        key=key,
        group_name="silver",
        # One step per datasource; the instance runs one run per partition at a time
        # (deploy/dagster.yaml), so a datasource's rows have one writer.
        partitions_def=_partitions(table, metadata),
        deps=[AssetKey(["bronze", table.source])],
        kinds={"polars", "delta"},
        automation_condition=on_new_data(),
        description=f"{table.description}. Key `{table.key}`; "
        + ("SCD type 2." if table.kind is SilverKind.SCD2 else "full refresh per datasource."),
        metadata={
            "dagster/column_schema": _column_schema(table, metadata),
            "quality_rules": MetadataValue.md(rules_markdown(metadata.rules_of(table.table))),
        },
        check_specs=[
            AssetCheckSpec(
                "quarantine_rate",
                asset=key,
                blocking=bool(quarantine and quarantine.blocking),
                description="Share of quarantined current rows of the datasource at most "
                f"{quarantine.max_rate if quarantine else 1:.0%} (quality_thresholds.csv).",
            ),
            AssetCheckSpec(
                "duplicate_current_keys",
                asset=key,
                blocking=bool(duplicates and duplicates.blocking),
                description=f"Every {table.key} has at most one current row.",
            ),
        ],
    )
    def _silver(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
        started, tables, datasource = time.monotonic(), lake.addresses, _partition(context)
        try:
            build = build_silver_table(
                table, metadata, tables, context.run.run_id, context.log, datasource
            )
        except RcmError as error:
            raise Failure(description=str(error), allow_retries=False) from None
        if build.held_back:  # after the other datasources committed
            raise Failure(description="; ".join(build.held_back), allow_retries=False)
        current = current_rows(
            tables, table.table, {table.key: pl.String, **CURRENT_SCHEMA}, datasource
        ).collect()
        measures = pl.concat([quarantine_measures(current), duplicate_measures(current, table.key)])
        record_measures(tables, measures, table.table, context.run.run_id)
        target, options = tables.silver(table.table), tables.storage_options
        version = delta.version(target, options) if delta.exists(target, options) else -1
        return MaterializeResult(
            data_version=DataVersion(str(version)),
            metadata={
                "dagster/row_count": current.height,
                "inserted": build.inserted,
                "closed": build.closed,
                "unchanged": build.unchanged,
                "retired": build.retired,
                "replaced": build.replaced,
                "stale": build.stale,
                "consumed_loads": MetadataValue.json(build.consumed),
                "quality": MetadataValue.md(markdown(measures)),
                "duration_seconds": round(time.monotonic() - started, 3),
            },
            check_results=[
                check_result(check, threshold, measures)
                for check, threshold in (
                    ("quarantine_rate", quarantine),
                    ("duplicate_current_keys", duplicates),
                )
            ],
        )

    return _silver


def build_referential_checks(table: SilverTable, metadata: Metadata) -> list:
    """One check per silver table that has reference columns: orphan rate per column."""
    references = [c for c in metadata.columns_of(table.table) if c.references]
    if not references:
        return []
    threshold = metadata.threshold(table.table, "orphan_rate")
    blocking = bool(threshold and threshold.blocking)
    max_rate = threshold.max_rate if threshold else 1.0
    parents = sorted({c.references for c in references})

    @asset_check(
        asset=AssetKey(["silver", table.table]),
        name="referential_integrity",
        blocking=blocking,
        additional_deps=[AssetKey(["silver", p]) for p in parents if p != table.table],
        # Without a condition of its own, a run the automation sensor starts for the table
        # would leave this check out (the UI would show it "Not Evaluated").
        automation_condition=AutomationCondition.eager(),
        description="Share of current rows whose reference key matches no current parent row, "
        f"per column and datasource, at most {max_rate:.0%}: "
        + ", ".join(f"{c.column} → {c.references}" for c in references),
    )
    def _referential(context: AssetCheckExecutionContext, lake: LakeResource) -> AssetCheckResult:
        tables, datasource = lake.addresses, _partition(context)
        measures = pl.DataFrame(schema=MEASURES_SCHEMA)
        for column in references:
            child = current_rows(
                tables, table.table, {"datasource": pl.String, column.column: pl.String}, datasource
            )
            parent = metadata.silver_tables[column.references]
            # A key column ends in its row's datasource: it can only match that one's parents.
            own = column.type is ColumnType.KEY and _partitions(parent, metadata) is not None
            parent_keys = current_rows(
                tables, parent.table, {parent.key: pl.String}, datasource if own else None
            )
            measures = pl.concat(
                [measures, orphan_measures(child, column.column, parent_keys, parent.table)]
            )
        record_measures(tables, measures, table.table, context.run.run_id)
        return check_result("orphan_rate", threshold, measures, "referential_integrity")

    return [_referential]


def build_silver_assets(metadata: Metadata) -> tuple[list[AssetsDefinition], list]:
    tables = list(metadata.silver_tables.values())
    assets = [build_silver_asset(t, metadata) for t in tables]
    checks = [check for t in tables for check in build_referential_checks(t, metadata)]
    return assets, checks
