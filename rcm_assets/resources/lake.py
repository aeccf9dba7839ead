"""The lake's root and storage options; every Delta table path is derived here."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from rcm_assets.settings import rcm_home


class LakeResource(ConfigurableResource):
    """Root of the lake: a local folder (embedded default) or an object-store URI."""

    root: str = Field(
        default_factory=lambda: str(rcm_home() / "lake"),
        description="Local folder or abfss:// URI holding bronze, silver, gold, audit, archive.",
    )

    def table_uri(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    @property
    def storage_options(self) -> dict[str, str] | None:
        # Local folders need none; object stores get theirs from the environment (ADLS issue).
        return None
