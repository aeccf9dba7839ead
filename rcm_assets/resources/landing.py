"""The landing store: where claims and code files are dropped, and where they move afterwards.

Paths are relative to the store's root (`claims/hospital1_claim_data.csv`). Every path is checked
so that a name like `../x` can never reach outside the root. This local implementation is what
the Azure stores match (list, read, write, move): on ADLS Gen2 with a hierarchical namespace
through the Data Lake API (atomic rename), elsewhere (Azurite, blob-only accounts) through the
Blob API (copy, then delete).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import Field, PrivateAttr

from rcm_assets.errors import RcmError
from rcm_assets.resources.azure_storage import AzureLocation, StorageResource
from rcm_assets.settings import rcm_home

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient
    from azure.storage.filedatalake import FileSystemClient

LANDING_ROOT_ENV = "RCM_LANDING_ROOT"
COPY_TIMEOUT_SECONDS = 300


class LandingPathError(RcmError):
    """A landing path that is absolute or climbs out of the landing root."""


@dataclass(frozen=True)
class LandingFile:
    path: str  # relative to the landing root, `/`-separated
    size: int
    version: str  # changes whenever the content may have changed (size + mtime, or an etag)

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name


def safe_relative(path: str) -> PurePosixPath:
    """The path as a clean relative path, or LandingPathError naming it."""
    pure = PurePosixPath(path.replace("\\", "/"))
    if not path or pure.is_absolute() or any(part in ("..", "") for part in pure.parts):
        raise LandingPathError(
            f"landing path {path!r} is not a plain path inside the landing store"
        )
    return pure


class LandingFiles(Protocol):
    """What a landing store does; paths are already checked by `safe_relative`."""

    def list_files(self, folder: str) -> list[LandingFile]: ...
    def stat(self, path: str) -> LandingFile | None: ...
    def read_bytes(self, path: str) -> bytes: ...
    def write_text(self, path: str, text: str) -> None: ...
    def move(self, path: str, destination: str) -> None: ...


class LandingStoreResource(StorageResource):
    """Landing files on the local disk (embedded default) or in an Azure container."""

    root: str = Field(
        default_factory=lambda: os.environ.get(LANDING_ROOT_ENV) or str(rcm_home() / "landing"),
        description="Folder or abfss:// URI with a sub-folder per landing table, plus processed/ "
        f"and rejected/ (default ${LANDING_ROOT_ENV}, else $RCM_HOME/landing).",
    )

    # Chosen once per resource instance: on Azure, choosing costs a client and a request.
    _files: LandingFiles | None = PrivateAttr(default=None)

    def files(self) -> LandingFiles:
        if self._files is None:
            self._files = self._choose_files()
        return self._files

    def _choose_files(self) -> LandingFiles:
        location = self.azure
        if location is None:
            return LocalFiles(Path(self.root))
        blobs = self.blob_service()
        if _has_hierarchical_namespace(blobs):
            return DataLakeFiles(
                self.datalake_service().get_file_system_client(location.container), location
            )
        return BlobFiles(blobs.get_container_client(location.container), location)

    def list_files(self, folder: str) -> list[LandingFile]:
        """Files directly inside `folder`, oldest first (sub-folders are not descended)."""
        return self.files().list_files(str(safe_relative(folder)))

    def stat(self, path: str) -> LandingFile | None:
        return self.files().stat(str(safe_relative(path)))

    def read_bytes(self, path: str) -> bytes:
        return self.files().read_bytes(str(safe_relative(path)))

    def write_text(self, path: str, text: str) -> None:
        self.files().write_text(str(safe_relative(path)), text)

    def move(self, path: str, destination: str) -> None:
        """Move a file; the destination's folders are created. Never overwrites."""
        self.files().move(str(safe_relative(path)), str(safe_relative(destination)))


def _has_hierarchical_namespace(blobs: Any) -> bool:
    try:
        return bool(blobs.get_account_information().get("is_hns_enabled"))
    except Exception:  # a SAS or role without account-level rights: the Blob API always works
        return False


def _sorted(files: list[tuple[Any, LandingFile]]) -> list[LandingFile]:
    return [file for _, file in sorted(files, key=lambda item: (item[0], item[1].path))]


def _azure_file(location: AzureLocation, name: str, size: int, etag: str) -> LandingFile:
    """A blob or Data Lake file, its path relative to the store's root, its etag as version."""
    return LandingFile(name.removeprefix(location.path).lstrip("/"), size, etag.strip('"'))


def _exists_error(destination: str) -> FileExistsError:
    return FileExistsError(f"landing file {destination} already exists")


@dataclass(frozen=True)
class LocalFiles:
    root: Path

    def _local(self, path: str) -> Path:
        return self.root.joinpath(*PurePosixPath(path).parts)

    def list_files(self, folder: str) -> list[LandingFile]:
        directory = self._local(folder)
        if not directory.is_dir():
            return []
        files = []
        for entry in os.scandir(directory):
            if entry.is_file(follow_symlinks=False) and not entry.name.startswith("."):
                stat = entry.stat()
                version = f"{stat.st_size}-{stat.st_mtime_ns}"
                files.append(
                    (stat.st_mtime_ns, LandingFile(f"{folder}/{entry.name}", stat.st_size, version))
                )
        return _sorted(files)

    def stat(self, path: str) -> LandingFile | None:
        local = self._local(path)
        if not local.is_file():
            return None
        stat = local.stat()
        return LandingFile(path, stat.st_size, f"{stat.st_size}-{stat.st_mtime_ns}")

    def read_bytes(self, path: str) -> bytes:
        return self._local(path).read_bytes()

    def write_text(self, path: str, text: str) -> None:
        local = self._local(path)
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(text, encoding="utf-8")

    def move(self, path: str, destination: str) -> None:
        target = self._local(destination)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise _exists_error(destination)
        os.replace(self._local(path), target)


@dataclass(frozen=True)
class BlobFiles:
    """The Blob API: folders are name prefixes; a move is a server-side copy, then a delete."""

    container: ContainerClient
    location: AzureLocation

    def list_files(self, folder: str) -> list[LandingFile]:
        prefix = self.location.key(folder) + "/"
        files = []
        for blob in self.container.walk_blobs(name_starts_with=prefix, delimiter="/"):
            name = blob.name
            if name.endswith("/") or PurePosixPath(name).name.startswith("."):
                continue  # a sub-folder, or a hidden file
            files.append(
                (blob.last_modified, _azure_file(self.location, name, blob.size, blob.etag))
            )
        return _sorted(files)

    def stat(self, path: str) -> LandingFile | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            props = self.container.get_blob_client(self.location.key(path)).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return _azure_file(self.location, props.name, props.size, props.etag)

    def read_bytes(self, path: str) -> bytes:
        return self.container.download_blob(self.location.key(path)).readall()

    def write_text(self, path: str, text: str) -> None:
        self.container.upload_blob(self.location.key(path), text.encode("utf-8"), overwrite=True)

    def move(self, path: str, destination: str) -> None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError

        source = self.container.get_blob_client(self.location.key(path))
        target = self.container.get_blob_client(self.location.key(destination))
        etag = source.get_blob_properties().etag
        try:
            # the copy fails if the target exists, so two movers cannot overwrite each other
            copy = target.start_copy_from_url(source.url, match_condition=MatchConditions.IfMissing)
        except ResourceExistsError as error:
            raise _exists_error(destination) from error
        status, deadline = copy.get("copy_status"), time.monotonic() + COPY_TIMEOUT_SECONDS
        while status == "pending" and time.monotonic() < deadline:
            time.sleep(0.2)
            status = target.get_blob_properties().copy.status
        if status != "success":
            raise OSError(f"copy of landing file {path} to {destination} ended {status!r}")
        source.delete_blob(etag=etag, match_condition=MatchConditions.IfNotModified)


@dataclass(frozen=True)
class DataLakeFiles:
    """ADLS Gen2 with a hierarchical namespace: real directories and an atomic rename."""

    file_system: FileSystemClient
    location: AzureLocation

    def list_files(self, folder: str) -> list[LandingFile]:
        from azure.core.exceptions import ResourceNotFoundError

        files = []
        try:
            for entry in self.file_system.get_paths(self.location.key(folder), recursive=False):
                if entry.is_directory or PurePosixPath(entry.name).name.startswith("."):
                    continue
                files.append(
                    (
                        entry.last_modified,
                        _azure_file(self.location, entry.name, entry.content_length, entry.etag),
                    )
                )
        except ResourceNotFoundError:
            return []
        return _sorted(files)

    def stat(self, path: str) -> LandingFile | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            props = self.file_system.get_file_client(self.location.key(path)).get_file_properties()
        except ResourceNotFoundError:
            return None
        return _azure_file(self.location, props.name, props.size, props.etag)

    def read_bytes(self, path: str) -> bytes:
        return self.file_system.get_file_client(self.location.key(path)).download_file().readall()

    def write_text(self, path: str, text: str) -> None:
        client = self.file_system.get_file_client(self.location.key(path))
        client.upload_data(text.encode("utf-8"), overwrite=True)

    def move(self, path: str, destination: str) -> None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError

        key = self.location.key(destination)
        parent = str(PurePosixPath(key).parent)
        if parent != ".":
            self.file_system.get_directory_client(parent).create_directory()
        try:
            self.file_system.get_file_client(self.location.key(path)).rename_file(
                f"{self.file_system.file_system_name}/{key}",
                match_condition=MatchConditions.IfMissing,
            )
        except ResourceExistsError as error:
            raise _exists_error(destination) from error
