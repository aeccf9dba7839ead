"""The whole graph on Azurite (the Azure Storage emulator): same tables as on a local disk."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from dagster import DagsterInstance

from rcm_assets.cli import main
from rcm_assets.resources import LakeResource, LandingStoreResource
from rcm_assets.sample_data import mutate_sources
from rcm_assets_tests.bronze_helpers import run_all
from rcm_assets_tests.conftest import Project
from rcm_assets_tests.lake_fingerprint import fingerprint


def upload_landing(local: Path, store: LandingStoreResource) -> int:
    files = [path for path in local.rglob("*") if path.is_file()]
    for path in files:
        store.write_text(path.relative_to(local).as_posix(), path.read_text("utf-8"))
    return len(files)


def test_whole_graph_on_azurite_equals_the_local_run(
    sampled: Project,
    azure_project: Project,
    instance: DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    roots = {name: os.environ[name] for name in ("RCM_LAKE_ROOT", "RCM_LANDING_ROOT")}
    azure_lake, azure_landing = LakeResource().addresses, LandingStoreResource()
    assert azure_lake.storage_options and azure_landing.azure
    assert upload_landing(sampled.home / "landing", azure_landing) > 0

    def step(*work: Callable[[], object]) -> tuple[dict, dict]:
        """Do the same work on Azurite, then locally; return both lakes' fingerprints."""
        prints = []
        for azure in (True, False):
            for name, root in roots.items():
                if azure:
                    monkeypatch.setenv(name, root)
                else:
                    monkeypatch.delenv(name, raising=False)
            for action in work:
                action()
            prints.append(fingerprint(LakeResource().addresses))
        return prints[0], prints[1]

    on_azure, local = step(lambda: run_all(instance))  # first (full) loads
    assert {"silver/patients", "gold/fact_transactions", "audit/load_logs"} <= set(local)
    assert on_azure == local

    mutate_sources(sampled.home, seed=2)
    on_azure, local = step(lambda: run_all(instance))  # incremental loads and SCD2 merges
    assert on_azure == local

    on_azure, local = step(lambda: main(["archive", "--older-than-days", "0"]))
    assert any(name.startswith("archive/bronze/") for name in local)
    assert on_azure == local

    monkeypatch.setenv("RCM_LAKE_ROOT", roots["RCM_LAKE_ROOT"])
    capsys.readouterr()
    assert main(["lake", "tables"]) == 0
    assert "silver/patients" in capsys.readouterr().out
    assert main(["lake", "history", "silver/patients"]) == 0
    assert "MERGE" in capsys.readouterr().out
