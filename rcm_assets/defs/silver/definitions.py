"""silver/*: one asset per table of metadata/silver_tables.csv, with its quality checks."""

import dagster as dg

from rcm_assets.catalog import catalogued_definitions
from rcm_assets.metadata import load_metadata
from rcm_assets.silver.assets import build_silver_assets


@dg.definitions
def silver() -> dg.Definitions:
    metadata = load_metadata()
    assets, checks = build_silver_assets(metadata)
    return catalogued_definitions(metadata, assets, checks)
