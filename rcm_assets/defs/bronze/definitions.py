"""bronze/*: one asset per EMR table, landing-file table and reference extract in metadata."""

import dagster as dg

from rcm_assets.bronze.emr import build_emr_bronze_assets
from rcm_assets.bronze.landing import build_landing_bronze_assets
from rcm_assets.bronze.reference import build_reference_bronze_assets
from rcm_assets.catalog import catalogued_definitions
from rcm_assets.metadata import load_metadata


@dg.definitions
def bronze() -> dg.Definitions:
    metadata = load_metadata()
    assets = [
        *build_emr_bronze_assets(metadata),
        *build_landing_bronze_assets(metadata),
        *build_reference_bronze_assets(metadata),
    ]
    return catalogued_definitions(metadata, assets)
