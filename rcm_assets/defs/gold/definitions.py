"""gold/*: dimensions, the fact, KPI marts and masked views of metadata/gold_tables.csv."""

import dagster as dg

from rcm_assets.catalog import catalogued_definitions
from rcm_assets.gold.assets import build_gold_assets
from rcm_assets.metadata import load_metadata


@dg.definitions
def gold() -> dg.Definitions:
    metadata = load_metadata()
    return catalogued_definitions(metadata, build_gold_assets(metadata))
