"""The audit group: tables written as a side effect of loads, shown in the asset graph."""

from __future__ import annotations

from dagster import AssetKey, AssetSpec

from rcm_assets.metadata import Metadata


def build_audit_specs(metadata: Metadata) -> list[AssetSpec]:
    bronze_keys = [AssetKey(["bronze", table]) for table in metadata.bronze_tables()]
    landing_keys = [AssetKey(["bronze", table]) for table in metadata.landing_tables]
    reference_keys = [
        AssetKey(["bronze", s.table])
        for s in metadata.silver_tables.values()
        if s.default_datasource and s.source not in metadata.landing_tables
    ]
    return [
        AssetSpec(
            key=AssetKey(["audit", "rejected_rows"]),
            group_name="audit",
            kinds={"delta"},
            deps=landing_keys,
            description=(
                "Landing-file records that could not be loaded (wrong field count, bad quoting, "
                "not UTF-8, duplicate key): table, datasource, source file, line number, raw "
                "text, reason, load id. `lake/audit/rejected_rows`."
            ),
        ),
        AssetSpec(
            key=AssetKey(["audit", "load_logs"]),
            group_name="audit",
            kinds={"delta"},
            deps=[*bronze_keys, *landing_keys, *reference_keys],
            description=(
                "One row per (datasource, table) load: rows copied, watermark column and the "
                "maximum watermark value loaded, load id, type, status, run id. Written by every "
                "bronze load; `lake/audit/load_logs`."
            ),
        ),
    ]
