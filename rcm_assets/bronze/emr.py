"""Bronze assets for hospital EMR tables, one per table in metadata/load_config.csv.

Each asset is partitioned by datasource; a partition extracts its hospital's table (all of it for
`Full`, rows at or above the last watermark for `Incremental`) and appends the extract, with
lineage columns, to `lake/bronze/<targetpath>/<table>` in one atomic Delta commit.
"""

import logging

import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    StaticPartitionsDefinition,
    asset,
)

from rcm_assets.bronze.load_record import LoadAttempt, LoadRecord
from rcm_assets.bronze.watermark import (
    LINEAGE_COLUMNS,
    drop_loaded,
    high_watermark,
    unparseable_watermarks,
    with_lineage,
)
from rcm_assets.errors import RcmError, SourceError
from rcm_assets.lake import delta
from rcm_assets.lake.addresses import LakeAddresses
from rcm_assets.metadata import LoadConfig, LoadType, Metadata
from rcm_assets.resources import EmrSourcesResource, LakeResource, SourceDatabase
from rcm_assets.resources.source_sql import extract_query


def _loaded_watermark(config: LoadConfig, lake: LakeAddresses) -> tuple[str | None, pl.DataFrame]:
    """The highest watermark already in bronze and the rows that carry it (see high_watermark)."""
    uri = lake.emr_bronze(config)
    if config.loadtype is LoadType.FULL or not delta.exists(uri, lake.storage_options):
        return None, pl.DataFrame()
    return high_watermark(delta.scan(uri, lake.storage_options), config.watermark)


def _extract(
    config: LoadConfig, source: SourceDatabase, since: str | None, loaded: pl.DataFrame
) -> tuple[str, pl.DataFrame]:
    """Read the rows at or above `since` from the source, minus those already `loaded`."""
    columns = source.columns(config.schema_name, config.table)
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
    rows = source.read(query, config.tablename)
    if watermark:
        bad = unparseable_watermarks(rows, watermark)
        if bad.height:
            first = bad.row(0, named=True)
            raise SourceError(
                f"datasource {config.datasource}: {bad.height} row(s) of {config.tablename} have "
                f"a watermark {watermark!r} that is not a date/time, e.g. {first[watermark]!r} "
                f"in the row with {columns[0]}={first[columns[0]]!r}; fix the source rows"
            )
        rows = drop_loaded(rows, loaded)
    return query, rows


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
    with attempt.failure_recorded():
        since, loaded = _loaded_watermark(config, lake)
        attempt.update(watermark_from=since, watermark_max=since)
        query, rows = _extract(config, source, since, loaded)
        if incremental and rows.height:
            attempt.update(watermark_max=high_watermark(rows.lazy(), config.watermark)[0])
        attempt.update(query=query)
        record = attempt.record
        load = attempt.commit(
            with_lineage(rows, config.datasource, record.load_id, record.loaded_at)
        )
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

    @asset(
        key=AssetKey(["bronze", table]),
        group_name="bronze",
        partitions_def=StaticPartitionsDefinition(sorted(configs)),
        kinds={"polars", "delta"},
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
        source = emr_sources.open(metadata.databases[config.database], config.datasource)
        try:
            load = load_emr_table(config, source, lake.addresses, context.run.run_id, context.log)
        except RcmError as error:
            raise Failure(description=str(error), allow_retries=False) from None
        return MaterializeResult(metadata=load.asset_metadata())

    return _bronze


def build_emr_bronze_assets(metadata: Metadata) -> list[AssetsDefinition]:
    return [
        build_emr_bronze_asset(table, configs, metadata)
        for table, configs in metadata.bronze_tables().items()
    ]
