"""Copy the catalog (asset descriptions, owners, tags, column classification) into the Delta
tables themselves, so a reader without Dagster (Spark, DuckDB, a catalog crawler) sees it too.

Only what differs is written, so running it again commits nothing.
"""

from dataclasses import dataclass

from deltalake import DeltaTable

from rcm_assets.lake import inventory
from rcm_assets.lake.addresses import LakeAddresses
from rcm_assets.lake.delta import commit_properties
from rcm_assets.metadata import Metadata

TAGS_KEY = "rcm.tags"


@dataclass(frozen=True)
class Described:
    table: str
    description_changed: bool
    columns_changed: tuple[str, ...]


def asset_of(table: str) -> str | None:
    """`bronze/hosa/patients` → `bronze/patients`; archive tables belong to no asset."""
    parts = table.split("/")
    if parts[0] == "archive":
        return None
    return f"{parts[0]}/{parts[-1]}"


def table_description(asset: str, description: str | None, metadata: Metadata) -> str:
    entry = metadata.catalog_for(asset)
    owner = f"owner: {entry.owner}" if entry else ""
    tags = f"tags: {' '.join(entry.tags)}" if entry and entry.tags else ""
    return " | ".join(part for part in (description or "", owner, tags) if part)


def describe_tables(
    lake: LakeAddresses, metadata: Metadata, descriptions: dict[str, str | None], dry_run: bool
) -> list[Described]:
    """`descriptions`: asset name → its Dagster description."""
    results = []
    for name in inventory.table_names(lake, metadata):
        asset = asset_of(name)
        if asset is None or asset not in descriptions:
            continue
        table = inventory.open_table(lake, name)
        wanted = table_description(asset, descriptions[asset], metadata)
        description_changed = (table.metadata().description or "") != wanted
        columns = {
            field.name: " ".join(metadata.tags_of_column(asset, field.name))
            for field in table.schema().fields
        }
        current = {f.name: f.metadata.get(TAGS_KEY, "") for f in table.schema().fields}
        changed = tuple(c for c, tags in columns.items() if tags and tags != current[c])
        if not dry_run:
            _apply(table, wanted if description_changed else None, changed, columns)
        results.append(Described(name, description_changed, changed))
    return results


def _apply(
    table: DeltaTable, description: str | None, columns: tuple[str, ...], tags: dict[str, str]
) -> None:
    commit = commit_properties({"operation": "describe"})
    if description is not None:
        table.alter.set_table_description(description, commit_properties=commit)
    for column in columns:
        table.alter.set_column_metadata(column, {TAGS_KEY: tags[column]}, commit_properties=commit)
