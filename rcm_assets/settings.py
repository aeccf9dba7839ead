"""Where the project keeps its files: `RCM_HOME` for data, `RCM_METADATA_DIR` for metadata."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# Where a run's steps execute: `rcm run --executor`, `RCM_EXECUTOR` (defs/executor.py).
EXECUTORS = ("in_process", "multiprocess", "celery")


def celery_settings() -> dict[str, object]:
    """The Celery settings the executor (defs/executor.py) and the workers (celery_app.py)
    share, so both sides agree on queue and delivery."""
    return {
        "task_default_queue": os.environ.get("RCM_CELERY_QUEUE", "dagster"),
        # A step's message is acknowledged when the step has ended, not when a worker takes it:
        # a worker killed mid-step drops its connection and the broker hands the step to another
        # worker. Every step is safe to run again (one Delta commit; consumed load ids).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
    }


def rcm_home() -> Path:
    """The embedded default's data folder: sources/, landing/, lake/, dagster/."""
    return Path(os.environ.get("RCM_HOME") or REPO_ROOT / ".rcm").resolve()


def metadata_dir() -> Path:
    """The metadata folder; an Azure URI (e.g. a `configs` container) is copied locally first."""
    configured = os.environ.get("RCM_METADATA_DIR") or str(REPO_ROOT / "metadata")
    if "://" in configured:
        from rcm_assets.resources.azure_storage import download_folder

        return download_folder(configured, rcm_home() / "metadata-cache")
    return Path(configured).resolve()


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or rcm_home() / "dagster").resolve()
