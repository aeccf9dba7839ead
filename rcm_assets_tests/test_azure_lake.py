"""The whole graph on Azurite (the Azure Storage emulator): same tables as on a local disk."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from rcm_assets.lake import delta
from rcm_assets.lake.catalog import table_names
from rcm_assets.metadata import load_metadata
from rcm_assets.resources import LakeResource, LandingStoreResource
from rcm_assets_tests.bronze_helpers import run_all
from rcm_assets_tests.conftest import Project

# Columns that differ between two runs of the same data (when, which run, which load).
VOLATILE = ("load", "run_id", "_at", "_time", "valid_", "timestamp", "version", "duration")
# Rows without a source id get a key that names the load that saw them.
MISSING_KEY = r"^MISSING-\d{8}T\d{6}Z-[0-9a-f]{8}-"


def upload_landing(local: Path, store: LandingStoreResource) -> int:
    files = [path for path in local.rglob("*") if path.is_file()]
    for path in files:
        store.write_text(path.relative_to(local).as_posix(), path.read_text("utf-8"))
    return len(files)


def fingerprint(lake: LakeResource) -> dict[str, tuple[int, int]]:
    """Per table: row count, and a hash of its rows without the columns that vary per run."""
    prints = {}
    for name in table_names(lake, load_metadata()):
        frame = delta.scan(lake.table_uri(name), lake.storage_options).collect()
        stable = [c for c in frame.columns if not any(part in c for part in VOLATILE)]
        rows = frame.select(stable).with_columns(
            pl.col(pl.String).str.replace(MISSING_KEY, "MISSING-")
        )
        rows = rows.sort(stable, nulls_last=True)
        prints[name] = (frame.height, int(rows.hash_rows(seed=1).sum()))
    return prints


def test_whole_graph_on_azurite_equals_the_local_run(
    sampled: Project, azure_project: Project, instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    azure_lake, azure_landing = LakeResource(), LandingStoreResource()
    assert azure_lake.storage_options and azure_landing.azure
    assert upload_landing(sampled.home / "landing", azure_landing) > 0

    run_all(instance)
    on_azure = fingerprint(azure_lake)
    for variable in ("RCM_LAKE_ROOT", "RCM_LANDING_ROOT"):
        monkeypatch.delenv(variable)
    run_all(instance)
    local = fingerprint(LakeResource())

    assert set(on_azure) == set(local)
    assert {"silver/patients", "gold/fact_transactions", "audit/load_logs"} <= set(local)
    assert on_azure == local
