"""The one Definitions object: reads metadata, calls the factories, wires resources."""

from __future__ import annotations

from dagster import Definitions

from rcm_assets.audit_assets import build_audit_specs
from rcm_assets.bronze.emr import build_emr_bronze_assets
from rcm_assets.metadata import Metadata, load_metadata
from rcm_assets.resources import EmrSourcesResource, LakeResource


def build_definitions(metadata: Metadata | None = None) -> Definitions:
    metadata = metadata or load_metadata()
    return Definitions(
        assets=[*build_emr_bronze_assets(metadata), *build_audit_specs(metadata)],
        resources={"lake": LakeResource(), "emr_sources": EmrSourcesResource()},
    )


defs = build_definitions()
