"""The lake's root and credentials as a Dagster resource; table URIs come from `addresses`."""

from __future__ import annotations

import os

from pydantic import Field

from rcm_assets.lake.addresses import LakeAddresses
from rcm_assets.resources.azure_storage import StorageResource
from rcm_assets.settings import rcm_home

LAKE_ROOT_ENV = "RCM_LAKE_ROOT"


class LakeResource(StorageResource):
    """Root of the lake: a local folder (embedded default) or an ADLS Gen2 URI."""

    root: str = Field(
        default_factory=lambda: os.environ.get(LAKE_ROOT_ENV) or str(rcm_home() / "lake"),
        description="Local folder or abfss:// URI holding bronze, silver, gold, audit, archive "
        f"(default ${LAKE_ROOT_ENV}, else $RCM_HOME/lake).",
    )

    @property
    def addresses(self) -> LakeAddresses:
        """The Dagster-free view the lake package works with: root, options, table URIs."""
        return LakeAddresses(self.root, self.storage_options)
