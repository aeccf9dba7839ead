"""Gold assets: one factory for every table of metadata/gold_tables.csv.

Each table is brought up to date by `gold.builds`: left alone when its inputs did not change,
refreshed from the changed silver rows (or KPI cells) when only SCD2 merges happened since its
last build, rebuilt whole otherwise, always in at most one commit. Referential integrity is
checked inside the asset, after its dimensions (declared as deps) are built; freshness is a
Dagster FreshnessPolicy with the hours in metadata.
"""

import time
from datetime import timedelta

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
from rcm_assets.gold.builds import GoldBuilder, inputs_of
from rcm_assets.gold.kpis import VALUE_BOUNDS
from rcm_assets.lake import delta
from rcm_assets.lake.addresses import LakeAddresses
from rcm_assets.metadata import GoldTable, Metadata
from rcm_assets.quality.measures import MEASURES_SCHEMA, bounds_measures, orphan_measures
from rcm_assets.resources import LakeResource

FULL_REBUILD_TAG = "rcm/full_rebuild"  # a run tagged "true" rebuilds even unchanged inputs


def orphans(
    rows: pl.LazyFrame, table: GoldTable, metadata: Metadata, lake: LakeAddresses
) -> pl.DataFrame:
    """Per reference and datasource: rows whose key has no dimension row (kept, counted)."""
    measures = []
    names = rows.collect_schema().names()
    source = pl.col("datasource") if "datasource" in names else pl.lit("*").alias("datasource")
    for reference in metadata.references_of(table.table):
        dimension = delta.scan(lake.gold(reference.dimension), lake.storage_options)
        measures.append(
            orphan_measures(
                rows.select(source, reference.column),
                reference.column,
                dimension.select(reference.dimension_key),
                reference.dimension,
            )
        )
    return pl.concat([pl.DataFrame(schema=MEASURES_SCHEMA), *measures])


def latest_month_markdown(frame: pl.DataFrame, limit: int = 30) -> str:
    """The mart's latest month as a Markdown table, for the asset's metadata in the UI; a
    worklist without months (the denied claims) is summed by datasource and status."""
    if "month_end" in frame.columns:
        latest = frame.filter(pl.col("month_end") == pl.col("month_end").max()).head(limit)
    else:
        latest = frame.group_by("datasource", "status").agg(
            pl.len().alias("claims"), pl.col("denied_amount").sum()
        )
        latest = latest.sort("datasource", "status").head(limit)
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
    deps = [
        AssetKey(name.split("/"))
        for name in inputs_of(table, metadata)
        if not name.startswith("metadata/")
    ]
    threshold = metadata.threshold(table.table, "orphan_rate")
    max_rate = threshold.max_rate if threshold else 1.0
    blocking = bool(threshold and threshold.blocking)
    bounds = metadata.threshold(table.table, "value_bounds")
    checks = [
        AssetCheckSpec(
            "referential_integrity",
            asset=key,
            blocking=blocking,
            description=f"Share of rows whose foreign key has no dimension row, per key and "
            f"datasource, at most {max_rate:.0%}: "
            + ", ".join(f"{r.column} → {r.dimension}" for r in references),
        )
    ] * bool(references)
    if table.kind == "kpi":
        checks.append(
            AssetCheckSpec(
                "value_bounds",
                asset=key,
                blocking=bool(bounds and bounds.blocking),
                description="Values that cannot be: a rate outside 0 to 1, negative days or "
                "balances (bounds by column in gold/kpis.py VALUE_BOUNDS)",
            )
        )

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
        check_specs=checks,
    )
    def _gold_asset(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
        started, tables = time.monotonic(), lake.addresses
        uri, options = tables.gold(table.table), tables.storage_options
        builder = GoldBuilder(table, metadata, tables)
        full = context.run.tags.get(FULL_REBUILD_TAG) == "true"
        # A concurrent build that committed first may have read newer inputs: read them again.
        build = delta.retry_on_conflict(
            lambda: builder.update(context.run.run_id, full=full),
            f"gold/{table.table}",
            context.log,
        )
        written = delta.scan(uri, options)
        version = DataVersion(str(delta.version(uri, options)))
        metadata_out: dict[str, object] = {
            "dagster/row_count": delta.row_count(uri, options),
            "build": build.how,
            "rows_written": build.rows,
            "built_from": MetadataValue.json(build.inputs),
            "duration_seconds": round(time.monotonic() - started, 3),
        }
        results = []
        if table.kind == "kpi":
            values = written.drop("refreshed_at").collect()
            metadata_out["latest_month"] = MetadataValue.md(latest_month_markdown(values))
            if "month_end" in values.columns:
                metadata_out["plot_data"] = plot_table(values)
            measured = bounds_measures(values, VALUE_BOUNDS)
            results.append(check_result("value_bounds", bounds, measured))
        if references:
            measured = orphans(written, table, metadata, tables)
            metadata_out["orphan_rows"] = int(measured.get_column("rows_failed").sum())
            results.append(
                check_result("orphan_rate", threshold, measured, "referential_integrity")
            )
        return MaterializeResult(metadata=metadata_out, data_version=version, check_results=results)

    return _gold_asset


def build_gold_assets(metadata: Metadata) -> list[AssetsDefinition]:
    return [build_gold_asset(t, metadata) for t in metadata.gold_tables.values()]
