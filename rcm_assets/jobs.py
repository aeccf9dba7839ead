"""Materializing the whole asset graph through Dagster, as `rcm run` does.

One run per partition key (every partitioned asset that has that key, in dependency order inside
the run), then one run for the unpartitioned assets. A failing partition fails only its own run;
the others still land. Runs are recorded in the Dagster instance, so the UI shows them.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from dagster import (
    AssetKey,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    PartitionsDefinition,
)


@dataclass(frozen=True)
class Outcome:
    """One asset partition's result, as `rcm run` prints it."""

    asset: str
    partition: str | None
    status: str  # materialized | failed | skipped
    rows: int | None = None
    seconds: float | None = None
    message: str = ""


def group_runs(
    assets: Iterable[tuple[AssetKey, PartitionsDefinition | None]],
    partitions: Iterable[str] | None = None,
) -> list[tuple[str | None, list[AssetKey]]]:
    """(partition key or None, asset keys) per run, keeping the order the assets come in.

    A Dagster run needs one partitions definition shared by its assets, and a table that is
    inactive for some datasource has fewer partitions than the others, so assets are grouped by
    (partition key, the partition set they belong to). Unpartitioned assets run last, together.
    """
    wanted = set(partitions) if partitions is not None else None
    runs: dict[tuple[str | None, tuple[str, ...]], list[AssetKey]] = defaultdict(list)
    for key, partitions_def in assets:
        if partitions_def is None:
            runs[(None, ())].append(key)
            continue
        partition_set = tuple(partitions_def.get_partition_keys())
        for partition in partition_set:
            if wanted is None or partition in wanted:
                runs[(partition, partition_set)].append(key)
    partitioned = sorted((k, v) for k, v in runs.items() if k[0] is not None)
    unpartitioned = [(None, runs[(None, ())])] if (None, ()) in runs and wanted is None else []
    return [(partition, keys) for (partition, _), keys in partitioned] + unpartitioned


def plan_runs(
    defs: Definitions, partitions: Iterable[str] | None = None
) -> list[tuple[str | None, list[AssetKey]]]:
    """The runs that materialize every asset (or every asset of `partitions`)."""
    graph = defs.resolve_asset_graph()
    return group_runs(
        (
            (key, graph.get(key).partitions_def)
            for key in graph.toposorted_asset_keys
            if graph.get(key).is_materializable
        ),
        partitions,
    )


def _outcomes(result: ExecuteInProcessResult, partition: str | None) -> list[Outcome]:
    outcomes = []
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        metadata = materialization.metadata
        rows = metadata.get("rows_loaded") or metadata.get("dagster/row_count")
        seconds = metadata.get("duration_seconds")
        outcomes.append(
            Outcome(
                asset=materialization.asset_key.to_user_string(),
                partition=partition,
                status="materialized",
                rows=rows.value if rows else None,
                seconds=seconds.value if seconds else None,
            )
        )
    for event in result.all_events:
        if event.is_step_failure:
            failure = event.step_failure_data
            user = failure.user_failure_data
            message = user.description if user and user.description else failure.error.message
            outcomes.append(
                Outcome(
                    asset=(event.step_key or "?").replace("__", "/"),
                    partition=partition,
                    status="failed",
                    message=(message or "").strip(),
                )
            )
    return outcomes


def materialize_all(
    defs: Definitions,
    instance: DagsterInstance,
    partitions: Iterable[str] | None = None,
    tags: dict[str, str] | None = None,
    console_log_level: str = "CRITICAL",
) -> list[Outcome]:
    """Run every asset partition; the console shows only `console_log_level` and above (the
    instance's event log, and so the UI, always gets everything)."""
    job = defs.resolve_implicit_global_asset_job_def()
    run_config = {"loggers": {"console": {"config": {"log_level": console_log_level}}}}
    outcomes: list[Outcome] = []
    for partition, keys in plan_runs(defs, partitions):
        result = job.execute_in_process(
            instance=instance,
            partition_key=partition,
            asset_selection=keys,
            raise_on_error=False,
            tags=tags,
            run_config=run_config,
        )
        reported = _outcomes(result, partition)
        seen = {o.asset for o in reported}
        reported += [
            Outcome(
                key.to_user_string(),
                partition,
                "skipped",
                message="not run: an upstream asset or a blocking check failed",
            )
            for key in keys
            if key.to_user_string() not in seen
        ]
        outcomes.extend(reported)
    return outcomes


def format_outcomes(outcomes: list[Outcome]) -> str:
    header = f"{'asset':<28} {'partition':<10} {'status':<13} {'rows':>10} {'seconds':>8}"
    lines = [header, "-" * len(header)]
    for o in sorted(outcomes, key=lambda o: (o.asset, o.partition or "")):
        rows = "" if o.rows is None else f"{o.rows:,}"
        seconds = "" if o.seconds is None else f"{o.seconds:.2f}"
        lines.append(
            f"{o.asset:<28} {o.partition or '-':<10} {o.status:<13} {rows:>10} {seconds:>8}"
        )
        if o.message:
            lines.append(f"    {o.message}")
    return "\n".join(lines)
