"""Where the project keeps its files: `RCM_HOME` for data, `RCM_METADATA_DIR` for metadata."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def rcm_home() -> Path:
    """The embedded default's data folder: sources/, landing/, lake/, dagster/."""
    return Path(os.environ.get("RCM_HOME") or REPO_ROOT / ".rcm").resolve()


def metadata_dir() -> Path:
    return Path(os.environ.get("RCM_METADATA_DIR") or REPO_ROOT / "metadata").resolve()


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or rcm_home() / "dagster").resolve()
