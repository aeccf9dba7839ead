"""Rebuilding gold through Dagster after a lake operation changed what it is built from.

Gold assets are always rebuilt whole from silver, so materializing them again is the honest
repair. The run goes through the implicit asset job against the instance in `$DAGSTER_HOME`, so it
is recorded like any other run and shows in the UI.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

from rcm_assets.errors import RcmError
from rcm_assets.settings import dagster_home

if TYPE_CHECKING:
    from dagster import DagsterInstance, Definitions
    from dagster._core.definitions.assets.graph.asset_graph import AssetGraph

GOLD = "gold"


def asset_name(parts: Iterable[str]) -> str:
    return "/".join(parts)


def gold_below(graph: AssetGraph, name: str) -> list[str]:
    """Gold assets anywhere below the asset `name` (`silver/patients`) in the asset graph."""
    from dagster import AssetKey

    start = AssetKey(name.split("/"))
    if not graph.has(start):
        return []
    seen: set[AssetKey] = set()
    queue = deque(graph.get(start).child_keys)
    while queue:
        key = queue.popleft()
        if key not in seen:
            seen.add(key)
            queue.extend(graph.get(key).child_keys)
    return sorted(asset_name(key.path) for key in seen if key.path[0] == GOLD)


def default_instance() -> DagsterInstance:
    """The instance `rcm run` uses, so the rebuild shows next to the regular runs."""
    from dagster import DagsterInstance

    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        settings.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return DagsterInstance.get()


def materialize(defs: Definitions, names: list[str], instance: DagsterInstance) -> str:
    """Materialize the given unpartitioned assets in one run; return its run id."""
    from dagster import AssetKey

    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance,
        asset_selection=[AssetKey(name.split("/")) for name in names],
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        tags={"rcm/command": "lake restore --cascade"},
        raise_on_error=False,
    )
    built = {
        asset_name(event.step_materialization_data.materialization.asset_key.path)
        for event in result.get_asset_materialization_events()
    }
    # A blocking asset check that fails skips what is below it without failing the run.
    missing = sorted(set(names) - built)
    if not result.success or missing:
        raise RcmError(
            f"rebuilding gold failed in Dagster run {result.run_id}: not materialized "
            f"{', '.join(missing) or 'all'}; see that run's event log"
        )
    return result.run_id
