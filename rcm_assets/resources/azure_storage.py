"""Azure storage locations and credentials, shared by the lake and the landing store.

A root is either a local folder or `abfss://<container>@<account>.dfs.core.windows.net/<path>`
(`az://<container>/<path>` takes the account from AZURE_STORAGE_ACCOUNT_NAME). Credentials come
from the resource's fields (wired as Dagster EnvVars) or else the same environment variables, at
use time, so they never enter run config, logs or metadata. Any of them may be a Key Vault
reference `kv:<secret-name>`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from rcm_assets.errors import RcmError
from rcm_assets.resources.secrets import resolve_secret

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient
    from azure.storage.filedatalake import DataLakeServiceClient

# resource field -> the environment variable it falls back to
CREDENTIAL_ENV = {
    "account_key": "AZURE_STORAGE_ACCOUNT_KEY",
    "sas_token": "AZURE_STORAGE_SAS_TOKEN",
    "client_id": "AZURE_CLIENT_ID",
    "client_secret": "AZURE_CLIENT_SECRET",
    "tenant_id": "AZURE_TENANT_ID",
    "endpoint": "AZURE_STORAGE_ENDPOINT",
}
AZURE_SCHEMES = ("abfss", "abfs", "az")


class StorageConfigError(RcmError):
    """A storage root or credential that cannot be used."""


@dataclass(frozen=True)
class AzureLocation:
    account: str
    container: str
    path: str  # inside the container, no leading or trailing `/`

    @classmethod
    def parse(cls, uri: str) -> AzureLocation | None:
        """The Azure location of a root, or None for a local folder."""
        parts = urlparse(uri)
        if parts.scheme not in AZURE_SCHEMES:
            return None
        if parts.scheme == "az":
            container = parts.netloc
            account = os.environ.get("AZURE_STORAGE_ACCOUNT_NAME", "")
        else:
            container, _, host = parts.netloc.partition("@")
            account = host.split(".")[0]
        if not container or not account:
            raise StorageConfigError(
                f"storage root {uri!r} names no container or account: use "
                "abfss://<container>@<account>.dfs.core.windows.net/<path>, or az://<container>/"
                "<path> with AZURE_STORAGE_ACCOUNT_NAME set"
            )
        return cls(account, container, parts.path.strip("/"))

    def key(self, relative: str) -> str:
        """The blob name of a path relative to this location."""
        return "/".join(part for part in (self.path, relative.strip("/")) if part)


class StorageResource(ConfigurableResource):
    """A root (local folder or Azure URI) plus the Azure credentials to reach it.

    The only place that decides between local and Azure storage: layer code asks for
    `storage_options` (delta-rs and Polars) or the SDK clients, and never branches itself.
    """

    root: str
    account_key: str | None = Field(default=None, description="EnvVar AZURE_STORAGE_ACCOUNT_KEY")
    sas_token: str | None = Field(default=None, description="EnvVar AZURE_STORAGE_SAS_TOKEN")
    client_id: str | None = Field(default=None, description="EnvVar AZURE_CLIENT_ID")
    client_secret: str | None = Field(default=None, description="EnvVar AZURE_CLIENT_SECRET")
    tenant_id: str | None = Field(default=None, description="EnvVar AZURE_TENANT_ID")
    endpoint: str | None = Field(
        default=None, description="EnvVar AZURE_STORAGE_ENDPOINT (e.g. Azurite's blob URL)"
    )

    @property
    def azure(self) -> AzureLocation | None:
        return AzureLocation.parse(self.root)

    def _credential(self, field: str) -> str | None:
        value = getattr(self, field) or os.environ.get(CREDENTIAL_ENV[field])
        return resolve_secret(value) if value else None

    @property
    def storage_options(self) -> dict[str, str] | None:
        """delta-rs / Polars options for the root; None for a local folder."""
        location = self.azure
        if location is None:
            return None
        options = {"account_name": location.account}
        if key := self._credential("account_key"):
            options["account_key"] = key
        elif sas := self._credential("sas_token"):
            options["sas_token"] = sas.lstrip("?")
        elif secret := self._credential("client_secret"):
            options["client_id"] = self._credential("client_id") or ""
            options["client_secret"] = secret
            options["tenant_id"] = self._credential("tenant_id") or ""
        # else: object_store finds managed / workload identity in the environment
        if endpoint := self._credential("endpoint"):
            options["endpoint"] = endpoint
            if endpoint.startswith("http://"):
                options["allow_http"] = "true"
        return options

    def _sdk_credential(self) -> Any:
        location = self.azure
        assert location is not None
        if key := self._credential("account_key"):
            return {"account_name": location.account, "account_key": key}
        if sas := self._credential("sas_token"):
            return sas
        from azure.identity import ClientSecretCredential, DefaultAzureCredential

        if secret := self._credential("client_secret"):
            return ClientSecretCredential(
                self._credential("tenant_id") or "", self._credential("client_id") or "", secret
            )
        return DefaultAzureCredential()

    def _account_url(self, service: str) -> str:
        location = self.azure
        assert location is not None
        endpoint = self._credential("endpoint")
        return endpoint or f"https://{location.account}.{service}.core.windows.net"

    def blob_service(self) -> BlobServiceClient:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(self._account_url("blob"), credential=self._sdk_credential())

    def datalake_service(self) -> DataLakeServiceClient:
        from azure.storage.filedatalake import DataLakeServiceClient

        return DataLakeServiceClient(self._account_url("dfs"), credential=self._sdk_credential())


def download_folder(uri: str, destination: Path) -> Path:
    """Copy the files directly inside an Azure folder (e.g. the `configs` container's metadata)
    to a local folder, file by file atomically, dropping local files gone from the remote."""
    store = StorageResource(root=uri)
    location = store.azure
    if location is None:
        raise StorageConfigError(f"{uri!r} is not an Azure storage URI")
    container = store.blob_service().get_container_client(location.container)
    prefix = f"{location.path}/" if location.path else ""
    destination.mkdir(parents=True, exist_ok=True)
    names = set()
    for blob in container.walk_blobs(name_starts_with=prefix, delimiter="/"):
        name = blob.name.removeprefix(prefix)
        if not name or name.endswith("/"):
            continue
        names.add(name)
        partial = destination / f".{name}.download"
        partial.write_bytes(container.download_blob(blob.name).readall())
        partial.replace(destination / name)
    if not names:
        raise StorageConfigError(f"no files in {uri}: is it the metadata folder?")
    for stale in destination.iterdir():
        if stale.is_file() and stale.name not in names and not stale.name.startswith("."):
            stale.unlink()
    return destination


def credentials_from_env() -> dict[str, EnvVar]:
    """The storage credentials present in the environment, as Dagster EnvVars (for the UI)."""
    return {field: EnvVar(name) for field, name in CREDENTIAL_ENV.items() if os.environ.get(name)}
