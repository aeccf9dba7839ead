"""The one Definitions object: reads metadata, calls the factories, wires resources."""

from __future__ import annotations

from dagster import Definitions, map_asset_specs

from rcm_assets.audit_assets import build_audit_specs
from rcm_assets.bronze.emr import build_emr_bronze_assets
from rcm_assets.bronze.landing import build_landing_bronze_assets
from rcm_assets.bronze.reference import build_reference_bronze_assets
from rcm_assets.catalog import with_catalog
from rcm_assets.gold.assets import build_gold_assets
from rcm_assets.metadata import Metadata, load_metadata
from rcm_assets.resources import EmrSourcesResource, LakeResource, LandingStoreResource
from rcm_assets.resources.azure_storage import credentials_from_env
from rcm_assets.resources.nppes import NppesResource
from rcm_assets.resources.who_icd import who_icd_resource
from rcm_assets.schedules import build_emr_schedules
from rcm_assets.sensors import build_automation_sensor, build_landing_sensor
from rcm_assets.silver.assets import build_silver_assets


def build_definitions(metadata: Metadata | None = None) -> Definitions:
    metadata = metadata or load_metadata()
    emr_assets = build_emr_bronze_assets(metadata)
    landing_assets = build_landing_bronze_assets(metadata)
    silver_assets, silver_checks = build_silver_assets(metadata)
    gold_assets = build_gold_assets(metadata)
    credentials = credentials_from_env()
    assets = [
        *emr_assets,
        *landing_assets,
        *build_reference_bronze_assets(metadata),
        *silver_assets,
        *gold_assets,
        *build_audit_specs(metadata),
    ]
    return Definitions(
        assets=map_asset_specs(lambda spec: with_catalog(spec, metadata), assets),
        asset_checks=silver_checks,
        sensors=[build_landing_sensor(metadata), build_automation_sensor()],
        schedules=build_emr_schedules(metadata, emr_assets),
        resources={
            "lake": LakeResource(**credentials),
            "emr_sources": EmrSourcesResource(),
            "landing": LandingStoreResource(**credentials),
            "nppes": NppesResource(),
            "who_icd": who_icd_resource(),
        },
    )


defs = build_definitions()
