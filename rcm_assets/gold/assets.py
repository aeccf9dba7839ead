"""Gold assets: one factory for every table of metadata/gold_tables.csv.

Gold tables are rebuilt whole from silver (a rebuild can never drift), written in one overwrite
commit that records the Delta versions of everything it read; a run whose inputs still are at
those versions writes nothing, so a run where no source changed commits no gold. Referential
integrity is checked inside the asset, after its dimensions (declared as deps) are built;
freshness is a Dagster FreshnessPolicy with the hours in metadata.
"""

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import polars as pl
from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    DataVersion,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
)

from rcm_assets.asset_checks import check_result
from rcm_assets.automation.conditions import on_new_data
from rcm_assets.gold import kpis
from rcm_assets.gold.dims import dimension
from rcm_assets.gold.facts import fact_transactions
from rcm_assets.gold.masking import mask
from rcm_assets.lake import delta
from rcm_assets.lake.addresses import LakeAddresses
from rcm_assets.metadata import GoldTable, Metadata
from rcm_assets.quality.measures import MEASURES_SCHEMA, orphan_measures
from rcm_assets.resources import LakeResource

KPI_MARTS: dict[str, Callable[[pl.LazyFrame], pl.LazyFrame]] = {
    "kpi_ar_aging": kpis.ar_aging,
    "kpi_monthly": kpis.monthly,
    "kpi_payer_mix": kpis.payer_mix,
    "kpi_provider_department": kpis.provider_department,
}
FACT = "fact_transactions"
INPUT_VERSIONS = "input_versions"  # commit metadata: the versions a build read
FULL_REBUILD_TAG = "rcm/full_rebuild"  # a run tagged "true" rebuilds even unchanged inputs


def _silver(lake: LakeAddresses, table: str) -> pl.LazyFrame:
    return delta.scan(lake.silver(table), lake.storage_options)


def _gold(lake: LakeAddresses, table: str) -> pl.LazyFrame:
    return delta.scan(lake.gold(table), lake.storage_options)


def build_frame(table: GoldTable, metadata: Metadata, lake: LakeAddresses) -> pl.LazyFrame:
    """The table's rows, computed lazily from silver (or from the fact, for KPI marts)."""
    if table.kind == "dimension":
        rows = dimension(_silver(lake, table.source), table)
        for reference in metadata.references_of(table.table):
            if reference.enrich_columns:  # e.g. a provider's NPI Registry taxonomy
                found = _gold(lake, reference.dimension).select(
                    pl.col(reference.dimension_key).alias(reference.column),
                    *reference.enrich_columns,
                )
                rows = rows.join(found, on=reference.column, how="left")
        return rows
    if table.kind == "fact":
        return fact_transactions(_silver(lake, "transactions"), _silver(lake, "claims"))
    if table.kind == "masked":
        rules = metadata.masking_for(table.consumer, table.source)
        return mask(_gold(lake, table.source).drop("refreshed_at"), rules)
    return KPI_MARTS[table.table](_gold(lake, FACT))


def _write(uri: str, rows: pl.LazyFrame, run_id: str, inputs: str, options: dict | None) -> None:
    """One overwrite commit, streamed: the table is never held whole in memory."""
    rows.sink_delta(
        uri,
        mode="overwrite",
        storage_options=options or {},
        delta_write_options={
            "schema_mode": "overwrite",
            "commit_properties": delta.commit_properties(
                {"operation": "rebuild", "run_id": run_id, INPUT_VERSIONS: inputs}
            ),
        },
    )


def input_versions(lake: LakeAddresses, deps: list[AssetKey]) -> str:
    """The Delta versions of the tables a gold table is built from, as recorded in its commit."""
    uris = {
        key.to_user_string(): (lake.silver if key.path[0] == "silver" else lake.gold)(key.path[-1])
        for key in deps
    }
    versions = {
        name: delta.version(uri, lake.storage_options)
        if delta.exists(uri, lake.storage_options)
        else -1
        for name, uri in sorted(uris.items())
    }
    return json.dumps(versions, sort_keys=True)


def built_from(lake: LakeAddresses, table: str) -> str | None:
    """The input versions the table's last build recorded; None before the first build."""
    uri = lake.gold(table)
    if not delta.exists(uri, lake.storage_options):
        return None
    return delta.commits(uri, lake.storage_options)[0]["rcm"].get(INPUT_VERSIONS)


def orphans(
    rows: pl.LazyFrame, table: GoldTable, metadata: Metadata, lake: LakeAddresses
) -> pl.DataFrame:
    """Per reference and datasource: rows whose key has no dimension row (kept, counted)."""
    measures = []
    names = rows.collect_schema().names()
    source = pl.col("datasource") if "datasource" in names else pl.lit("*").alias("datasource")
    for reference in metadata.references_of(table.table):
        keys = _gold(lake, reference.dimension).select(reference.dimension_key).collect()
        with_source = rows.select(source, reference.column).collect()
        measures.append(
            orphan_measures(with_source, reference.column, keys.to_series(), reference.dimension)
        )
    return pl.concat([pl.DataFrame(schema=MEASURES_SCHEMA), *measures])


def latest_month_markdown(frame: pl.DataFrame, limit: int = 30) -> str:
    """The mart's latest month as a Markdown table, for the asset's metadata in the UI."""
    latest = frame.filter(pl.col("month_end") == pl.col("month_end").max()).head(limit)
    lines = ["| " + " | ".join(latest.columns) + " |", "|" + "---|" * len(latest.columns)]
    for row in latest.iter_rows():
        cells = (f"{v:,.2f}" if isinstance(v, float) else str(v) for v in row)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_table(frame: pl.DataFrame, limit: int = 500) -> MetadataValue:
    """The mart's newest rows as a typed table, ready to chart from the UI or the API."""
    recent = frame.sort("month_end", descending=True).head(limit).sort(frame.columns[:2])
    types = {pl.Float64: "float", pl.Int64: "int", pl.Int32: "int", pl.UInt32: "int"}
    schema = TableSchema(
        columns=[
            TableColumn(name, types.get(dtype, "string")) for name, dtype in recent.schema.items()
        ]
    )
    records = [
        TableRecord(
            {k: (v if isinstance(v, int | float) or v is None else str(v)) for k, v in row.items()}
        )
        for row in recent.iter_rows(named=True)
    ]
    return MetadataValue.table(records=records, schema=schema)


def dimension_schema(table: GoldTable, metadata: Metadata) -> TableSchema | None:
    """Column names, types and descriptions of a dimension (or its masked view), from silver."""
    if table.kind == "masked":
        return dimension_schema(metadata.gold_tables[table.source], metadata)
    if table.kind != "dimension":
        return None
    silver = {c.column: c for c in metadata.columns_of(table.source)}
    return TableSchema(
        columns=[
            TableColumn(name, silver[name].type.sql_type, silver[name].description)
            if name in silver
            else TableColumn(name, "string")
            for name in table.columns
        ]
    )


def build_gold_asset(table: GoldTable, metadata: Metadata) -> AssetsDefinition:
    key = AssetKey(["gold", table.table])
    references = metadata.references_of(table.table)
    if table.kind == "dimension":
        deps = [AssetKey(["silver", table.source])]
    elif table.kind == "fact":
        deps = [AssetKey(["silver", "transactions"]), AssetKey(["silver", "claims"])]
    elif table.kind == "masked":
        deps = [AssetKey(["gold", table.source])]
    else:
        deps = [AssetKey(["gold", FACT])]
    deps += [AssetKey(["gold", r.dimension]) for r in references]
    threshold = metadata.threshold(table.table, "orphan_rate")
    max_rate = threshold.max_rate if threshold else 1.0
    blocking = bool(threshold and threshold.blocking)

    @asset(
        key=key,
        group_name="gold",
        pool=f"delta:gold/{table.table}",
        deps=deps,
        kinds={"polars", "delta"},
        automation_condition=on_new_data(),
        metadata={"dagster/column_schema": schema}
        if (schema := dimension_schema(table, metadata))
        else {},
        freshness_policy=FreshnessPolicy.time_window(
            fail_window=timedelta(hours=table.max_age_hours)
        ),
        description=table.description,
        check_specs=[
            AssetCheckSpec(
                "referential_integrity",
                asset=key,
                blocking=blocking,
                description=f"Share of rows whose foreign key has no dimension row, per key and "
                f"datasource, at most {max_rate:.0%}: "
                + ", ".join(f"{r.column} → {r.dimension}" for r in references),
            )
        ]
        if references
        else [],
    )
    def _gold_asset(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
        started, tables = time.monotonic(), lake.addresses

        uri, options = tables.gold(table.table), tables.storage_options

        def rebuild() -> tuple[bool, str]:
            """Whether it rebuilt, and the input versions the table is now built from."""
            inputs = input_versions(tables, deps)
            forced = context.run.tags.get(FULL_REBUILD_TAG) == "true"
            if not forced and inputs == built_from(tables, table.table):  # nothing changed
                return False, inputs
            rows = build_frame(table, metadata, tables).with_columns(
                pl.lit(datetime.now(UTC)).cast(pl.Datetime("us", "UTC")).alias("refreshed_at")
            )
            _write(uri, rows, context.run.run_id, inputs, options)
            return True, inputs

        # A concurrent rebuild that committed first may have read newer silver: read it again.
        rebuilt, inputs = delta.retry_on_conflict(rebuild, f"gold/{table.table}", context.log)
        written = delta.scan(uri, options)
        version = DataVersion(str(delta.version(uri, options)))
        metadata_out: dict[str, object] = {
            "dagster/row_count": delta.row_count(uri, options),
            "rebuilt": rebuilt,
            "built_from": MetadataValue.json(json.loads(inputs)),
            "duration_seconds": round(time.monotonic() - started, 3),
        }
        if table.kind == "kpi":
            values = written.drop("refreshed_at").collect()
            metadata_out["latest_month"] = MetadataValue.md(latest_month_markdown(values))
            metadata_out["plot_data"] = plot_table(values)
        if not references:
            return MaterializeResult(metadata=metadata_out, data_version=version)
        measured = orphans(written, table, metadata, tables)
        metadata_out["orphan_rows"] = int(measured.get_column("rows_failed").sum())
        return MaterializeResult(
            metadata=metadata_out,
            data_version=version,
            check_results=[
                check_result("orphan_rate", threshold, measured, "referential_integrity")
            ],
        )

    return _gold_asset


def build_gold_assets(metadata: Metadata) -> list[AssetsDefinition]:
    return [build_gold_asset(t, metadata) for t in metadata.gold_tables.values()]
