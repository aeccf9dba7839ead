"""Bronze assets for hospital EMR tables, one per table in metadata/load_config.csv.

Each asset is partitioned by datasource; a partition extracts its hospital's table (all of it for
`Full`, rows at or above the last watermark for `Incremental`) and appends the extract, with
lineage columns, to `lake/bronze/<targetpath>/<table>` in one atomic Delta commit.
"""

import logging
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    StaticPartitionsDefinition,
    asset,
)

from rcm_assets.bronze.watermark import (
    LINEAGE_COLUMNS,
    drop_loaded,
    high_watermark,
    unparseable_watermarks,
    with_lineage,
)
from rcm_assets.errors import RcmError, SourceError
from rcm_assets.lake import audit, delta
from rcm_assets.metadata import LoadConfig, LoadType, Metadata
from rcm_assets.resources import EmrSourcesResource, LakeResource, SourceDatabase
from rcm_assets.resources.source_sql import extract_query


@dataclass(frozen=True)
class BronzeLoad:
    """What one partition load did; becomes asset metadata and the audit row."""

    config: LoadConfig
    load_id: str
    run_id: str | None
    loaded_at: datetime
    bronze_uri: str
    rows: int = 0
    watermark_from: str | None = None
    watermark_max: str | None = None
    query: str = ""
    bronze_version: int | None = None
    duration_seconds: float = 0.0
    table_rows: int = 0  # rows in the bronze table after the load

    @property
    def watermark_column(self) -> str | None:
        incremental = self.config.loadtype is LoadType.INCREMENTAL
        return self.config.watermark if incremental else None

    def audit_row(self, status: str, error: Exception | None = None) -> audit.LoadLog:
        return audit.LoadLog(
            data_source=self.config.datasource,
            tablename=self.config.tablename,
            numberofrowscopied=self.rows,
            watermarkcolumnname=self.watermark_column,
            loaddate=self.loaded_at,
            load_id=self.load_id,
            load_type=self.config.loadtype.value,
            watermark_from=self.watermark_from,
            watermark_max=self.watermark_max,
            status=status,
            run_id=self.run_id,
            bronze_version=self.bronze_version,
            duration_seconds=self.duration_seconds,
            error=str(error) if error else None,
        )

    def commit_metadata(self) -> dict[str, object]:
        return {
            "operation": "load",
            "load_id": self.load_id,
            "run_id": self.run_id or "",
            "datasource": self.config.datasource,
            "table": self.config.tablename,
            "load_type": self.config.loadtype.value,
            "rows": self.rows,
            "watermark_column": self.watermark_column or "",
            "watermark_from": self.watermark_from or "",
            "watermark_max": self.watermark_max or "",
        }

    def asset_metadata(self) -> dict[str, object]:
        return {
            "dagster/row_count": self.table_rows,
            "rows_loaded": self.rows,
            "load_type": self.config.loadtype.value,
            "load_id": self.load_id,
            "watermark_column": self.watermark_column or "",
            "watermark_from": self.watermark_from or "(first load)",
            "watermark_to": self.watermark_max or "",
            "source_query": MetadataValue.md(f"```sql\n{self.query}\n```"),
            "bronze_table": MetadataValue.path(self.bronze_uri),
            "bronze_version": self.bronze_version if self.bronze_version is not None else -1,
            "duration_seconds": round(self.duration_seconds, 3),
        }


def new_load_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def bronze_uri(lake: LakeResource, config: LoadConfig) -> str:
    return lake.table_uri("bronze", config.targetpath, config.table)


def audit_uri(lake: LakeResource) -> str:
    return lake.table_uri("audit", "load_logs")


def _loaded_watermark(config: LoadConfig, lake: LakeResource) -> tuple[str | None, pl.DataFrame]:
    """The highest watermark already in bronze and the rows that carry it (see high_watermark)."""
    uri = bronze_uri(lake, config)
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
    lake: LakeResource,
    run_id: str | None = None,
    log: logging.Logger | None = None,
) -> BronzeLoad:
    """Extract one (datasource, table) into bronze and record it in audit.load_logs.

    A failure writes nothing to bronze and a `failed` audit row; the watermark (the maximum in
    bronze) therefore cannot move.
    """
    log = log or logging.getLogger(__name__)
    started, now = time.monotonic(), datetime.now(UTC)
    target, logs, options = bronze_uri(lake, config), audit_uri(lake), lake.storage_options
    load = BronzeLoad(config, new_load_id(now), run_id, now, target)
    audit.recover_missing(logs, target, config.datasource, config.tablename, options, log)
    try:
        since, loaded = _loaded_watermark(config, lake)
        load = replace(load, watermark_from=since, watermark_max=since)
        query, rows = _extract(config, source, since, loaded)
        if load.watermark_column and rows.height:
            load = replace(load, watermark_max=high_watermark(rows.lazy(), config.watermark)[0])
        load = replace(load, rows=rows.height, query=query)
        if rows.height:
            frame = with_lineage(rows, config.datasource, load.load_id, now)
            version = delta.append(target, frame, load.commit_metadata(), options)
            load = replace(load, bronze_version=version)
    except Exception as error:
        failed = replace(load, rows=0, duration_seconds=time.monotonic() - started)
        audit.append_logs(logs, [failed.audit_row("failed", error)], options)
        raise
    load = replace(load, duration_seconds=time.monotonic() - started)
    load = replace(load, table_rows=delta.row_count(target, options))
    audit.append_logs(logs, [load.audit_row("success")], options)
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
            load = load_emr_table(config, source, lake, context.run.run_id, context.log)
        except RcmError as error:
            raise Failure(description=str(error), allow_retries=False) from None
        return MaterializeResult(metadata=load.asset_metadata())

    return _bronze


def build_emr_bronze_assets(metadata: Metadata) -> list[AssetsDefinition]:
    return [
        build_emr_bronze_asset(table, configs, metadata)
        for table, configs in metadata.bronze_tables().items()
    ]
