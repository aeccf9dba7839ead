"""The landing store on Azure: the Blob API on Azurite, the Data Lake API with a fake client."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from azure.core import MatchConditions
from dagster import DagsterInstance

from rcm_assets.errors import MetadataError
from rcm_assets.lake import delta
from rcm_assets.metadata import load_metadata
from rcm_assets.resources import LakeResource, LandingStoreResource
from rcm_assets.resources.azure_storage import AzureLocation, StorageConfigError
from rcm_assets.resources.landing import BlobFiles, DataLakeFiles, LandingPathError, LocalFiles
from rcm_assets.runs import load_definitions
from rcm_assets_tests.conftest import Project
from rcm_assets_tests.landing_corpus import CLAIM_COLUMNS, claim
from rcm_assets_tests.test_sensors import tick


@pytest.fixture(params=["local", "azurite"])
def store(request: pytest.FixtureRequest, project: Project) -> LandingStoreResource:
    if request.param == "azurite":
        request.getfixturevalue("azure_project")
    return LandingStoreResource()


def test_store_lists_reads_and_moves_without_overwriting(store: LandingStoreResource) -> None:
    expected = LocalFiles if store.azure is None else BlobFiles  # Azurite has no namespace
    assert isinstance(store.files(), expected)
    assert store.files() is store.files()  # chosen once, not per call
    store.write_text("claims/first.csv", "a\n1\n")
    store.write_text("claims/second.csv", "a\n22\n")
    store.write_text("claims/.partial", "hidden\n")
    store.write_text("claims/old/nested.csv", "a\n")

    assert [f.path for f in store.list_files("claims")] == ["claims/first.csv", "claims/second.csv"]
    assert store.list_files("nothing-here") == []
    first = store.stat("claims/first.csv")
    assert first is not None and first.size == 4 and first.name == "first.csv"
    assert store.stat("claims/missing.csv") is None
    assert store.read_bytes("claims/second.csv") == b"a\n22\n"

    store.move("claims/first.csv", "processed/claims/first.csv")
    assert store.stat("claims/first.csv") is None
    assert store.read_bytes("processed/claims/first.csv") == b"a\n1\n"

    store.write_text("claims/first.csv", "a\n3\n")
    with pytest.raises(
        FileExistsError, match=re.escape("processed/claims/first.csv already exists")
    ):
        store.move("claims/first.csv", "processed/claims/first.csv")
    assert store.read_bytes("claims/first.csv") == b"a\n3\n"  # nothing lost
    assert store.read_bytes("processed/claims/first.csv") == b"a\n1\n"

    rewritten = store.stat("claims/first.csv")
    assert rewritten is not None and rewritten.version != first.version
    with pytest.raises(LandingPathError, match="not a plain path"):
        store.read_bytes("../outside.csv")


def test_a_file_uploaded_to_azure_landing_is_ingested_by_the_sensor(
    azure_project: Project, instance: DagsterInstance
) -> None:
    store = LandingStoreResource()
    rows = [claim(n) for n in range(1, 4)]
    store.write_text("claims/hospital1_0101.csv", "\n".join([CLAIM_COLUMNS, *rows]) + "\n")

    [request] = tick(instance).run_requests
    assert request.partition_key == "hos-a"
    job = load_definitions().resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance,
        partition_key=request.partition_key,
        asset_selection=request.asset_selection,
        run_config=request.run_config,
    )

    assert result.success
    lake = LakeResource().addresses
    claims = delta.scan(lake.named("bronze/claims"), lake.storage_options).collect()
    assert claims.height == 3
    assert claims.get_column("datasource").unique().to_list() == ["hos-a"]
    assert store.list_files("claims") == []
    [load_id] = claims.get_column("load_id").unique().to_list()
    [processed] = store.list_files(f"processed/claims/{load_id}")
    assert processed.name == "hospital1_0101.csv"
    assert not tick(instance, None).run_requests  # nothing left to ingest


@dataclass
class FakeFileSystem:
    """Records the Data Lake calls that a move makes."""

    file_system_name: str = "landing"
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    fail_rename: Exception | None = None

    def get_directory_client(self, path: str) -> Any:
        return SimpleNamespace(create_directory=lambda: self.calls.append(("mkdir", path)))

    def get_file_client(self, path: str) -> Any:
        def rename_file(new_name: str, **kwargs: Any) -> None:
            self.calls.append(("rename", path, new_name, kwargs))
            if self.fail_rename:
                raise self.fail_rename

        return SimpleNamespace(rename_file=rename_file)

    def get_paths(self, path: str, recursive: bool) -> list[Any]:
        self.calls.append(("list", path, recursive))
        when = datetime(2026, 1, 1, tzinfo=UTC)
        entry = {"last_modified": when, "content_length": 3, "etag": '"0x1"'}
        return [
            SimpleNamespace(name=f"{path}/b.csv", is_directory=False, **entry),
            SimpleNamespace(name=f"{path}/old", is_directory=True, **entry),
            SimpleNamespace(name=f"{path}/.tmp", is_directory=False, **entry),
        ]


def test_data_lake_move_is_one_rename_that_never_overwrites() -> None:
    from azure.core.exceptions import ResourceExistsError

    fs = FakeFileSystem()
    files = DataLakeFiles(fs, AzureLocation("acct", "landing", "drop"))  # type: ignore[arg-type]

    assert [(f.path, f.version) for f in files.list_files("claims")] == [("claims/b.csv", "0x1")]
    files.move("claims/b.csv", "processed/claims/b.csv")
    assert fs.calls[1:] == [
        ("mkdir", "drop/processed/claims"),
        (
            "rename",
            "drop/claims/b.csv",
            "landing/drop/processed/claims/b.csv",
            {"match_condition": MatchConditions.IfMissing},
        ),
    ]

    fs.fail_rename = ResourceExistsError("PathAlreadyExists")
    with pytest.raises(FileExistsError, match=re.escape("processed/claims/b.csv already exists")):
        files.move("claims/b.csv", "processed/claims/b.csv")


def test_storage_options_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_ENDPOINT", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", "?sv=2024&sig=abc")
    lake = LakeResource(root="abfss://lake@acct.dfs.core.windows.net/rcm")
    assert lake.azure == AzureLocation("acct", "lake", "rcm")
    assert lake.storage_options == {"account_name": "acct", "sas_token": "sv=2024&sig=abc"}
    assert lake.addresses.silver("patients") == (
        "abfss://lake@acct.dfs.core.windows.net/rcm/silver/patients"
    )
    assert LakeResource(root="/data/lake").storage_options is None
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "other")
    assert LakeResource(root="az://lake").azure == AzureLocation("other", "lake", "")
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_NAME")
    with pytest.raises(StorageConfigError, match="AZURE_STORAGE_ACCOUNT_NAME"):
        LakeResource(root="az://lake").storage_options  # noqa: B018

    monkeypatch.delenv("AZURE_STORAGE_SAS_TOKEN")
    for name, value in (("CLIENT_ID", "app"), ("CLIENT_SECRET", "pw"), ("TENANT_ID", "t")):
        monkeypatch.setenv(f"AZURE_{name}", value)
    assert lake.storage_options == {
        "account_name": "acct",
        "client_id": "app",
        "client_secret": "pw",
        "tenant_id": "t",
    }
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", "key")  # a key wins over the others
    assert lake.storage_options == {"account_name": "acct", "account_key": "key"}


def test_metadata_is_read_from_a_configs_container(
    project: Project, azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in azurite.env().items():
        monkeypatch.setenv(name, value)
    container = f"configs-{os.getpid()}"
    azurite.create_container(container)
    configs = LandingStoreResource(root=azurite.uri(container, "metadata"))
    for path in project.metadata.glob("*.csv"):
        configs.write_text(path.name, path.read_text("utf-8"))
    configs.write_text("old/ignored.csv", "a\n")
    monkeypatch.setenv("RCM_METADATA_DIR", azurite.uri(container, "metadata"))

    metadata = load_metadata()

    assert metadata.folder == project.home / "metadata-cache"
    assert set(metadata.databases) == set(load_metadata(project.metadata).databases)
    assert sorted(p.name for p in metadata.folder.iterdir()) == sorted(
        p.name for p in project.metadata.glob("*.csv")
    )

    configs.write_text("databases.csv", "database,uri_env_var\n")  # a broken upload
    with pytest.raises(MetadataError, match=r"databases\.csv"):
        load_metadata()
