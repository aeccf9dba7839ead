"""Bronze assets for hospital EMR tables, one per table in metadata/load_config.csv.

Each asset is partitioned by datasource; a partition extracts its hospital's table (all of it for
`Full`, rows at or above the last watermark for `Incremental`) and appends the extract, with
lineage columns, to `lake/bronze/<targetpath>/<table>` in one atomic Delta commit. The extract
streams in batches (`EmrSourcesResource.batch_rows`) through a local staging file, so memory
follows the batch size, not the table's.
"""

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    StaticPartitionsDefinition,
    asset,
)

from rcm_assets.bronze.load_record import LoadAttempt, LoadRecord, data_version
from rcm_assets.bronze.source_slots import extract_slot
from rcm_assets.bronze.watermark import (
    LINEAGE_COLUMNS,
    HighWatermark,
    drop_loaded,
    future_watermarks,
    high_watermark,
    loads_at_top,
    parse_watermark,
    unparseable_watermarks,
    with_lineage,
)
from rcm_assets.errors import RcmError, SourceError
from rcm_assets.lake import delta
from rcm_assets.lake.addresses import LakeAddresses
from rcm_assets.metadata import LoadConfig, LoadType, Metadata
from rcm_assets.resources import EmrSourcesResource, LakeResource, SourceDatabase
from rcm_assets.resources.source_sql import extract_query, watermark_audit_query
from rcm_assets.staging import staging

WATERMARK_CHECK = "watermarks_extractable"


def _loaded_watermark(config: LoadConfig, lake: LakeAddresses) -> tuple[str | None, pl.DataFrame]:
    """The highest watermark already in bronze and the rows that carry it (see high_watermark).

    Parsing every row's watermark costs in proportion to the table, so only the rows of the
    loads whose commit recorded the highest watermark are parsed: the loads still in the
    table (a restore takes some back) are read from the load id column, their records from
    the commits. When a load has no record, or the top rows are gone (an erasure), every row
    is parsed as before.
    """
    uri, options, column = lake.emr_bronze(config), lake.storage_options, config.watermark
    if config.loadtype is LoadType.FULL or not delta.exists(uri, options):
        return None, pl.DataFrame()
    rows = delta.scan(uri, options)
    present = rows.select(pl.col("load_id").unique()).collect().get_column("load_id").to_list()
    recorded = {
        commit["rcm"]["load_id"]: commit["rcm"].get("watermark_max", "")
        for commit in reversed(delta.commits(uri, options))  # a later record of a load wins
        if commit["rcm"].get("load_id")
    }
    if all(load in recorded for load in present):
        top, loads = loads_at_top({load: recorded[load] for load in present})
        text, boundary = high_watermark(rows.filter(pl.col("load_id").is_in(loads)), column)
        if text is not None and boundary.select(parse_watermark(column).max()).item() == top:
            return text, boundary
    return high_watermark(rows, column)


def _check_no_column_vanished(config: LoadConfig, columns: list[str], lake: LakeAddresses) -> None:
    """A source column bronze has but the source lost is a schema change: stop, unless metadata
    lists it in `dropped_columns` (silver would otherwise write new versions with it NULL)."""
    uri = lake.emr_bronze(config)
    if not delta.exists(uri, lake.storage_options):
        return
    stored = delta.scan(uri, lake.storage_options).collect_schema().names()
    gone = [
        name
        for name in stored
        if name not in columns
        and name not in LINEAGE_COLUMNS
        and name not in config.dropped_columns
    ]
    if gone:
        raise SourceError(
            f"datasource {config.datasource}: column(s) {', '.join(gone)} of {config.tablename} "
            "are gone from the source but are in bronze: a schema change, so nothing was "
            f"loaded; restore them at the source, or list them in the dropped_columns of "
            f"{config.datasource},{config.tablename} in metadata/load_config.csv"
        )


def _extract(
    config: LoadConfig,
    source: SourceDatabase,
    since: str | None,
    loaded: pl.DataFrame,
    lake: LakeAddresses,
) -> tuple[str, Iterator[pl.DataFrame]]:
    """The query for rows at or above `since`, and its batches minus the rows already `loaded`."""
    columns = source.columns(config.schema_name, config.table)
    _check_no_column_vanished(config, columns, lake)
    clashes = sorted(set(columns) & set(LINEAGE_COLUMNS))
    if clashes:
        raise SourceError(
            f"datasource {config.datasource}: {config.tablename} has column(s) "
            f"{', '.join(clashes)}, which bronze reserves for lineage"
        )
    watermark = config.watermark if config.loadtype is LoadType.INCREMENTAL else None
    if watermark and watermark not in columns:
        raise SourceError(
            f"datasource {config.datasource}: watermark column {watermark!r} not found in "
            f"{config.tablename} (columns: {', '.join(columns)})"
        )
    query = extract_query(
        source.dialect, config.schema_name, config.table, columns, watermark, since
    )

    latest = datetime.now(UTC) + timedelta(hours=source.future_watermark_hours)
    offset = 0

    def _refuse(bad: pl.DataFrame, what: str, why: str) -> None:
        if bad.height:
            first = bad.row(0, named=True)
            raise SourceError(
                f"datasource {config.datasource}: row {offset + first['row'] + 1} of "
                f"{config.tablename}'s extract has a watermark {watermark!r} {what}, "
                f"{first[watermark]!r}, in the row with {columns[0]}={first[columns[0]]!r}"
                f"{why}; fix the source rows ({bad.height} in this batch)"
            )

    def batches() -> Iterator[pl.DataFrame]:
        nonlocal offset
        for rows in source.stream(query, config.tablename):
            rows = rows.cast(dict.fromkeys(columns, pl.String))
            if watermark:
                _refuse(unparseable_watermarks(rows, watermark), "that is not a date/time", "")
                _refuse(
                    future_watermarks(rows, watermark, latest),
                    f"in the future (after {latest:%Y-%m-%d %H:%M} UTC)",
                    "; a watermark from the future would hide every later change of the table "
                    "(allowed: future_watermark_hours in metadata/databases.csv)",
                )
                offset += rows.height
                rows = drop_loaded(rows, loaded, watermark)
            yield rows

    return query, batches()


def unreachable_rows(config: LoadConfig, source: SourceDatabase) -> AssetCheckResult:
    """Whether every source row can be reached by the incremental extract: none has a NULL
    watermark, and none a text watermark that does not compare as a date (not ISO). Run after
    the load, which has already failed with a clear error when the source or column is gone."""
    if config.loadtype is not LoadType.INCREMENTAL or not config.watermark:
        return AssetCheckResult(
            check_name=WATERMARK_CHECK, passed=True, metadata={"load": "full: every row"}
        )
    try:  # after the load committed: a failure here is the check's, never the load's
        key = source.columns(config.schema_name, config.table)[0]
        audit = source.read(
            watermark_audit_query(
                source.dialect, config.schema_name, config.table, config.watermark, key
            ),
            f"the watermarks of {config.tablename}",
        ).row(0, named=True)
    except SourceError as error:
        return AssetCheckResult(
            check_name=WATERMARK_CHECK,
            passed=False,
            severity=AssetCheckSeverity.WARN,
            description=f"could not count the unreachable rows: {error}",
        )
    problems = [
        f"{audit['null_rows']:,} row(s) with a NULL {config.watermark} (e.g. {key} "
        f"{audit['null_example']})"
        if audit["null_rows"]
        else "",
        f"{audit['text_rows']:,} row(s) whose {config.watermark} is text that does not compare "
        f"as a date/time (e.g. {key} {audit['text_example']})"
        if audit["text_rows"]
        else "",
    ]
    found = "; ".join(p for p in problems if p)
    return AssetCheckResult(
        check_name=WATERMARK_CHECK,
        passed=not found,
        severity=AssetCheckSeverity.WARN,
        description=f"{config.tablename}: {found}: an incremental extract never reads them; fix "
        "the source rows or load the table Full"
        if found
        else None,
        metadata={
            "null_watermark_rows": int(audit["null_rows"]),
            "not_comparable_rows": int(audit["text_rows"]),
        },
    )


def load_emr_table(
    config: LoadConfig,
    source: SourceDatabase,
    lake: LakeAddresses,
    run_id: str | None = None,
    log: logging.Logger | None = None,
) -> LoadRecord:
    """Extract one (datasource, table) into bronze and record it in audit.load_logs.

    A failure writes nothing to bronze and a `failed` audit row; the watermark (the maximum in
    bronze) therefore cannot move.
    """
    log = log or logging.getLogger(__name__)
    incremental = config.loadtype is LoadType.INCREMENTAL
    attempt = LoadAttempt.start(
        lake,
        log,
        datasource=config.datasource,
        table=config.tablename,
        load_type=config.loadtype.value,
        bronze_uri=lake.emr_bronze(config),
        run_id=run_id,
        watermark_column=config.watermark if incremental else None,
    )
    with attempt.failure_recorded(), staging() as staged:
        uri = lake.emr_bronze(config)
        read_at = (
            delta.version(uri, lake.storage_options)
            if delta.exists(uri, lake.storage_options)
            else -1
        )
        since, loaded = _loaded_watermark(config, lake)
        query, batches = _extract(config, source, since, loaded, lake)
        record = attempt.update(watermark_from=since, watermark_max=since, query=query)
        highest = HighWatermark(config.watermark or "")
        for rows in batches:
            if incremental:
                highest.update(rows)
            staged.add(with_lineage(rows, config.datasource, record.load_id, record.loaded_at))
        attempt.update(watermark_max=highest.text or since)
        if not incremental and not staged.rows and read_at >= 0:
            raise SourceError(
                f"datasource {config.datasource}: the full snapshot of {config.tablename} is "
                "empty; held back, nothing appended: the previous snapshot stays current. An "
                "empty extract of a table that had rows is almost always a failed export; if "
                "the table really is empty now, set is_active=0 in metadata/load_config.csv"
            )
        load = attempt.commit(staged, read_version=read_at)
    log.info(
        "%s %s: %d row(s) appended (%s, watermark %s → %s) in %.2fs",
        config.datasource,
        config.tablename,
        load.rows,
        config.loadtype.value,
        load.watermark_from,
        load.watermark_max,
        load.duration_seconds,
    )
    return load


def build_emr_bronze_asset(
    table: str, configs: dict[str, LoadConfig], metadata: Metadata
) -> AssetsDefinition:
    """One bronze asset for `table`, with a partition per datasource that loads it."""

    key = AssetKey(["bronze", table])

    @asset(
        key=key,
        group_name="bronze",
        partitions_def=StaticPartitionsDefinition(sorted(configs)),
        kinds={"polars", "delta"},
        check_specs=[
            AssetCheckSpec(
                WATERMARK_CHECK,
                asset=key,
                description="Every source row can be reached by the incremental extract: no "
                "NULL watermark, no text watermark that does not compare as a date/time",
            )
        ],
        description=(
            f"Raw `{table}` extracts from each hospital's EMR database, appended as text with "
            "datasource, load_id and ingested_at. Partitions: "
            + ", ".join(f"{ds} ({c.database}, {c.loadtype.value})" for ds, c in configs.items())
        ),
    )
    def _bronze(
        context: AssetExecutionContext, lake: LakeResource, emr_sources: EmrSourcesResource
    ) -> MaterializeResult:
        config = configs[context.partition_key]
        database = metadata.databases[config.database]
        source = emr_sources.open(database, config.datasource)
        try:
            with extract_slot(context, database):
                load = load_emr_table(
                    config, source, lake.addresses, context.run.run_id, context.log
                )
        except RcmError as error:
            raise Failure(description=str(error), allow_retries=False) from None
        version = data_version(
            lake.addresses, load.bronze_uri, config.datasource, load.appended_load_id
        )
        return MaterializeResult(
            metadata=load.asset_metadata(),
            data_version=version,
            check_results=[unreachable_rows(config, source)],
        )

    return _bronze


def build_emr_bronze_assets(metadata: Metadata) -> list[AssetsDefinition]:
    return [
        build_emr_bronze_asset(table, configs, metadata)
        for table, configs in metadata.bronze_tables().items()
    ]
