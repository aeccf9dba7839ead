"""audit/*: the load log, rejected rows, data-quality results and erasures, as assets."""

import dagster as dg

from rcm_assets.audit.assets import build_audit_assets
from rcm_assets.catalog import catalogued_definitions
from rcm_assets.metadata import load_metadata


@dg.definitions
def audit() -> dg.Definitions:
    metadata = load_metadata()
    return catalogued_definitions(metadata, build_audit_assets(metadata))
