"""Secrets: environment variables or Key Vault references, and never in logs, metadata or data."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import polars as pl
import pytest
from dagster import DagsterInstance

from rcm_assets.lake import delta
from rcm_assets.lake.inventory import table_names
from rcm_assets.metadata import load_metadata
from rcm_assets.resources import LakeResource, LandingStoreResource, secrets
from rcm_assets.resources.secrets import SecretError, resolve_secret
from rcm_assets.runs import load_definitions
from rcm_assets_tests.azurite import ACCOUNT_KEY, Azurite
from rcm_assets_tests.bronze_helpers import Sources, run_all
from rcm_assets_tests.test_azure_lake import upload_landing

VAULT = "https://rcm-test.vault.azure.net/"


class FakeVault:
    """A Key Vault SecretClient double that counts reads."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values, self.reads = values, []

    def __call__(self, vault_url: str) -> FakeVault:
        assert vault_url == VAULT
        return self

    def get_secret(self, name: str) -> SimpleNamespace:
        self.reads.append(name)
        if name not in self.values:
            raise LookupError(f"SecretNotFound: {name}")
        return SimpleNamespace(value=self.values[name])


@pytest.fixture
def vault(monkeypatch: pytest.MonkeyPatch) -> FakeVault:
    fake = FakeVault({})
    monkeypatch.setattr(secrets, "secret_client_factory", fake)
    monkeypatch.setenv("AZURE_KEY_VAULT_URL", VAULT)
    secrets.clear_cache()
    yield fake
    secrets.clear_cache()


def test_key_vault_references_are_read_once_and_plain_values_pass(vault: FakeVault) -> None:
    vault.values["lake-key"] = "s3cret-value"
    assert resolve_secret("plain-value") == "plain-value"
    assert resolve_secret("kv:lake-key") == "s3cret-value"
    assert resolve_secret("kv:lake-key") == "s3cret-value"
    assert vault.reads == ["lake-key"]

    with pytest.raises(SecretError, match="cannot read secret 'missing' from Key Vault"):
        resolve_secret("kv:missing")
    with pytest.raises(SecretError, match="names no secret"):
        resolve_secret("kv:")


def test_a_key_vault_reference_without_a_vault_url_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AZURE_KEY_VAULT_URL", raising=False)
    with pytest.raises(SecretError, match="AZURE_KEY_VAULT_URL is not set"):
        resolve_secret("kv:lake-key")


def test_the_storage_key_can_live_in_key_vault(
    azure_project, vault: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.values["storage-key"] = ACCOUNT_KEY
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", "kv:storage-key")
    lake = LakeResource().addresses
    uri = lake.named("bronze/probe")
    delta.append(uri, pl.DataFrame({"a": [1]}), {"operation": "probe"}, lake.storage_options)
    assert delta.row_count(uri, lake.storage_options) == 1
    assert vault.reads == ["storage-key"]


def test_definitions_wire_storage_credentials_as_env_vars(azure_project) -> None:
    resources = load_definitions().resources
    for name in ("lake", "landing"):
        assert resources[name].account_key == "AZURE_STORAGE_ACCOUNT_KEY"  # an EnvVar's name
        assert type(resources[name].account_key).__name__ == "EnvVar"


def _with_password(uri: str, password: str) -> str:
    parts = urlsplit(uri)
    netloc = parts.netloc.replace("postgres@", f"postgres:{password}@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _files_containing(root: Path, needles: list[str]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {n[:6]}…" for n in needles if n.encode() in data]
    return found


@pytest.mark.parametrize("sources", ["postgres"], indirect=True)
def test_secrets_never_reach_logs_metadata_or_the_lake(
    sources: Sources,
    azure_project,
    azurite: Azurite,
    instance: DagsterInstance,
    vault: FakeVault,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db_password, who_secret = "pw-Secret-8d1f", "who-Secret-55ab"
    uri_a = _with_password(os.environ["RCM_DB_URI_HOSPITAL_A"], db_password)
    vault.values["hos-a-uri"] = uri_a
    monkeypatch.setenv("RCM_DB_URI_HOSPITAL_A", "kv:hos-a-uri")
    monkeypatch.setenv(
        "RCM_DB_URI_HOSPITAL_B", _with_password(os.environ["RCM_DB_URI_HOSPITAL_B"], db_password)
    )
    monkeypatch.setenv("RCM_WHO_CLIENT_ID", "rcm-test-client")
    monkeypatch.setenv("RCM_WHO_CLIENT_SECRET", who_secret)
    upload_landing(sources.project.home / "landing", LandingStoreResource())

    outcomes = run_all(instance)

    assert {o.status for o in outcomes} <= {"materialized", "skipped"}, outcomes
    assert vault.reads == ["hos-a-uri"]
    needles = [db_password, who_secret, ACCOUNT_KEY, uri_a]
    assert _files_containing(Path(instance.root_directory), needles) == []
    assert _files_containing(sources.project.home, needles) == []
    lake = LakeResource().addresses
    for name in table_names(lake, load_metadata()):
        frame = delta.scan(lake.named(name), lake.storage_options).collect()
        text = frame.select(pl.col(pl.String)).write_csv()
        assert not any(needle in text for needle in needles), name
        commits = str(delta.commits(lake.named(name), lake.storage_options))
        assert not any(needle in commits for needle in needles), name
