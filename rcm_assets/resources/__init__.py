"""Dagster resources: where the lake lives and how source databases are reached."""

from rcm_assets.resources.emr_sources import EmrSourcesResource, SourceDatabase
from rcm_assets.resources.lake import LakeResource
from rcm_assets.resources.landing import LandingStoreResource

__all__ = ["EmrSourcesResource", "LakeResource", "LandingStoreResource", "SourceDatabase"]
