"""The landing store: where claims and code files are dropped, and where they move afterwards.

Paths are relative to the store's root (`claims/hospital1_claim_data.csv`). Every path is checked
so that a name like `../x` can never reach outside the root. This local implementation is what
the ADLS Gen2 store must match (list, read, write, move).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dagster import ConfigurableResource
from pydantic import Field

from rcm_assets.errors import RcmError
from rcm_assets.settings import rcm_home


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


class LandingStoreResource(ConfigurableResource):
    """Landing files on the local disk (embedded default)."""

    root: str = Field(
        default_factory=lambda: str(rcm_home() / "landing"),
        description="Folder with a sub-folder per landing table, plus processed/ and rejected/.",
    )

    def _local(self, path: str) -> Path:
        return Path(self.root, *safe_relative(path).parts)

    def list_files(self, folder: str) -> list[LandingFile]:
        """Files directly inside `folder`, oldest first (sub-folders are not descended)."""
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
        return [file for _, file in sorted(files, key=lambda item: (item[0], item[1].path))]

    def stat(self, path: str) -> LandingFile | None:
        local = self._local(path)
        if not local.is_file():
            return None
        stat = local.stat()
        return LandingFile(
            str(safe_relative(path)), stat.st_size, f"{stat.st_size}-{stat.st_mtime_ns}"
        )

    def read_bytes(self, path: str) -> bytes:
        return self._local(path).read_bytes()

    def write_text(self, path: str, text: str) -> None:
        local = self._local(path)
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(text, encoding="utf-8")

    def move(self, path: str, destination: str) -> None:
        """Move a file; the destination's folders are created. Never overwrites."""
        target = self._local(destination)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise FileExistsError(f"landing file {destination} already exists")
        os.replace(self._local(path), target)
