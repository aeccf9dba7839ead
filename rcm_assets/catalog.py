"""Catalog metadata (owners, tags, column classification) applied to every asset's spec.

Owners and tags come from metadata/catalog.csv, column tags (pii, phi, masked) from
metadata/column_tags.csv; they show in the Dagster UI and can be selected on
(`tag:pii`, `owner:team:rcm-analytics`).
"""

from collections.abc import Sequence

from dagster import (
    AssetChecksDefinition,
    AssetsDefinition,
    AssetSpec,
    Definitions,
    TableColumn,
    TableSchema,
    map_asset_specs,
)

from rcm_assets.metadata import Metadata


def with_catalog(spec: AssetSpec, metadata: Metadata) -> AssetSpec:
    name = spec.key.to_user_string()
    entry = metadata.catalog_for(name)
    if entry is None:
        return spec
    schema: TableSchema | None = spec.metadata.get("dagster/column_schema")
    extra = {}
    if schema is not None:
        extra["dagster/column_schema"] = TableSchema(
            columns=[
                TableColumn(
                    c.name,
                    c.type,
                    description=c.description,
                    tags={**c.tags, **metadata.tags_of_column(name, c.name)},
                )
                for c in schema.columns
            ]
        )
    return spec.replace_attributes(
        owners=[entry.owner],
        tags={**spec.tags, **entry.dagster_tags},
        description=spec.description or entry.description or None,
        metadata={**spec.metadata, **extra},
    )


def catalogued_definitions(
    metadata: Metadata,
    assets: Sequence[AssetsDefinition],
    asset_checks: Sequence[AssetChecksDefinition] = (),
) -> Definitions:
    """A layer's definitions, every asset carrying its catalog entry."""
    return Definitions(
        assets=map_asset_specs(lambda spec: with_catalog(spec, metadata), assets),
        asset_checks=list(asset_checks),
    )
