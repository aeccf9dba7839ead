"""Dagster runs for the command line: `rcm run`, and gold rebuilt after `rcm lake restore`.

`rcm run` materializes the whole graph: one run per partition key (every partitioned asset that
has that key, in dependency order inside the run), then one run for the unpartitioned assets. A
failing partition fails only its own run; the others still land. Runs are recorded in the
instance in `$DAGSTER_HOME`, so the UI shows them next to the scheduled ones.
"""

from __future__ import annotations

import gc
import logging
import os
import uuid
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from dagster import (
    AssetKey,
    AssetSelection,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    JobDefinition,
    JobExecutionResult,
    MetadataValue,
    PartitionsDefinition,
    RunsFilter,
    build_reconstructable_job,
    define_asset_job,
    execute_job,
)
from sqlalchemy.exc import OperationalError

from rcm_assets.errors import RcmError
from rcm_assets.gold.assets import FULL_REBUILD_TAG
from rcm_assets.settings import dagster_home

RunResult = ExecuteInProcessResult | JobExecutionResult
INTERRUPTED = "DagsterExecutionInterruptedError"  # a step stopped by SIGINT / SIGTERM
CHECK_FAILED = "DagsterAssetCheckFailedError"  # a blocking check did not pass
ATTEMPT_TAG = "rcm/attempt"
RUN_JOB = "rcm_run"  # the job of one run's assets, outside the in-process path
PARTITION_TAG = "dagster/partition"
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def default_instance() -> DagsterInstance:
    """The instance in `$DAGSTER_HOME` (created on first use), the one the UI shows."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        settings.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return DagsterInstance.get()


def asset_job(*assets: str) -> JobDefinition:
    """A job of these assets (one partitions definition), as every process that runs one of
    its steps rebuilds it (a multiprocess child, a Celery worker): `execute_job` names this
    function and its arguments, not a job object."""
    job = define_asset_job(RUN_JOB, AssetSelection.assets(*map(AssetKey.from_user_string, assets)))
    return Definitions.merge(load_definitions(), Definitions(jobs=[job])).resolve_job_def(RUN_JOB)


def load_definitions() -> Definitions:
    """The project's definitions as `dg` loads them (metadata from `$RCM_METADATA_DIR`).

    Dagster wraps what a defs folder raises in its own error (with the folder tree); a metadata
    mistake is re-raised as itself, so the user reads one line naming file, line and column.
    """
    from rcm_assets.definitions import defs

    try:
        return defs()
    except Exception as error:
        cause: BaseException | None = error
        while cause is not None and not isinstance(cause, RcmError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise cause from None
        raise


@dataclass(frozen=True)
class CheckOutcome:
    """An asset check that did not pass."""

    check: str
    severity: str  # ERROR (blocking: stops the assets below) | WARN
    summary: str  # its figures, e.g. "worst_rate 1.0 > max_rate 0.05"


@dataclass(frozen=True)
class Outcome:
    """One asset partition's result, as `rcm run` prints it."""

    asset: str
    partition: str | None
    status: str  # materialized | failed | skipped | interrupted | not started
    rows: int | None = None
    seconds: float | None = None
    message: str = ""
    written: int | None = None  # rows this materialization wrote (0: nothing changed)
    checks: tuple[CheckOutcome, ...] = ()  # the checks that did not pass
    failed_blocking_check: bool = False  # its data is written but must not flow further down


class UnknownPartitionError(RcmError):
    """`--partition` named a partition no asset has."""


# Metadata that counts what a materialization wrote: bronze loads, silver merges and replaces,
# gold builds (0 when its inputs were unchanged).
WRITTEN_COUNTS = ("rows_loaded", "inserted", "closed", "retired", "replaced", "rows_written")


def rows_written(metadata: dict) -> int | None:
    counts = [metadata[name].value for name in WRITTEN_COUNTS if name in metadata]
    return int(sum(counts)) if counts else None


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
    defs: Definitions,
    partitions: Iterable[str] | None = None,
    layers: Iterable[str] | None = None,
) -> list[tuple[str | None, list[AssetKey]]]:
    """The runs that materialize every asset (or those of `partitions`, of `layers`)."""
    graph = defs.resolve_asset_graph()
    wanted = set(layers) if layers is not None else None
    return group_runs(
        (
            (key, graph.get(key).partitions_def)
            for key in graph.toposorted_asset_keys
            if graph.get(key).is_materializable and (wanted is None or key.path[0] in wanted)
        ),
        partitions,
    )


class ErrorInfo(Protocol):
    """What Dagster records of an exception (its serializable error info)."""

    message: str
    cause: ErrorInfo | None


def _cause(error: ErrorInfo) -> str:
    """The innermost cause: what user code raised, not Dagster's step-execution wrapper."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def _summary(metadata: Mapping[str, MetadataValue]) -> str:
    """A check's figures in one line (rates and counts; tables and Markdown left out)."""
    values = {name: value.value for name, value in metadata.items()}
    if "worst_rate" in values and "max_rate" in values:
        return f"worst rate {values['worst_rate']:.2%} > allowed {values['max_rate']:.2%}"
    return ", ".join(
        f"{name} {value}"
        for name, value in values.items()
        if isinstance(value, int | float | str) and len(str(value)) < 80
    )


def _checks(result: RunResult) -> dict[str, list[CheckOutcome]]:
    failed: dict[str, list[CheckOutcome]] = defaultdict(list)
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            failed[evaluation.asset_key.to_user_string()].append(
                CheckOutcome(
                    evaluation.check_name,
                    evaluation.severity.value,
                    evaluation.description or _summary(evaluation.metadata),
                )
            )
    return failed


def _outcomes(result: RunResult, partition: str | None) -> list[Outcome]:
    outcomes = []
    checks = _checks(result)
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        metadata = materialization.metadata
        rows = metadata.get("rows_loaded") or metadata.get("dagster/row_count")
        seconds = metadata.get("duration_seconds")
        asset = materialization.asset_key.to_user_string()
        outcomes.append(
            Outcome(
                asset=asset,
                partition=partition,
                status="materialized",
                rows=rows.value if rows else None,
                seconds=seconds.value if seconds else None,
                written=rows_written(metadata),
                checks=tuple(checks.get(asset, ())),
            )
        )
    for event in result.all_events:
        if event.is_step_failure:
            failure = event.step_failure_data
            user = failure.user_failure_data
            interrupted = failure.error.cls_name == INTERRUPTED
            message = user.description if user and user.description else _cause(failure.error)
            outcomes.append(
                Outcome(
                    asset=(event.step_key or "?").replace("__", "/"),
                    partition=partition,
                    status="interrupted" if interrupted else "failed",
                    failed_blocking_check=failure.error.cls_name == CHECK_FAILED,
                    message="stopped by a signal before it finished (a commit is all or "
                    "nothing: no table is half-written)"
                    if interrupted
                    else (message or "").strip(),
                )
            )
    return outcomes


def _was_interrupted(result: RunResult) -> bool:
    """A signal between steps fails the run, not a step (Dagster holds it until a step boundary)."""
    return any(
        event.is_run_failure
        and (error := getattr(event.event_specific_data, "error", None)) is not None
        and error.cls_name == INTERRUPTED
        for event in result.all_events
    )


def check_partitions(defs: Definitions, partitions: Iterable[str]) -> None:
    """Raise naming every requested partition that no asset has."""
    graph = defs.resolve_asset_graph()
    known = {
        key
        for asset in graph.get_all_asset_keys()
        if (partitions_def := graph.get(asset).partitions_def) is not None
        for key in partitions_def.get_partition_keys()
    }
    unknown = sorted(set(partitions) - known)
    if unknown:
        raise UnknownPartitionError(
            f"unknown partition(s) {', '.join(unknown)}; the partitions are "
            f"{', '.join(sorted(known))} (datasources in metadata/load_config.csv)"
        )


def _report_canceled(instance: DagsterInstance, attempt: str) -> None:
    """Mark the run a signal interrupted while Dagster was creating it as canceled. The signal
    may have cut a SQLite write short, whose connection holds the lock until it is collected:
    collect it and retry once; if the lock persists the run stays unfinished in the instance
    (the console still says `not started`, with a warning)."""
    for retry in (True, False):
        try:
            for run in instance.get_runs(RunsFilter(tags={ATTEMPT_TAG: attempt})):
                if not run.is_finished:
                    instance.report_run_canceled(run, "interrupted by a signal before it started")
            return
        except OperationalError as error:
            if not retry:
                logging.getLogger(__name__).warning(
                    "could not mark the interrupted run canceled in the instance: %s", error
                )
                return
            gc.collect()


def materialize_all(
    defs: Definitions,
    instance: DagsterInstance,
    partitions: Iterable[str] | None = None,
    tags: dict[str, str] | None = None,
    console_log_level: str = "CRITICAL",
    layers: Iterable[str] | None = None,
    should_stop: Callable[[], bool] | None = None,
    executor: str = "in_process",
) -> list[Outcome]:
    """Run every asset partition; the console shows only `console_log_level` and above (the
    instance's event log, and so the UI, always gets everything).

    `executor` is `in_process` (this process), or `multiprocess` / `celery`: the executor of
    the definitions (`RCM_EXECUTOR`, see `defs/executor.py`) runs the steps, a process each
    or on the Celery workers, and the runs need an instance those processes share.

    A SIGINT or SIGTERM interrupts the run in progress (Dagster stops its steps; what they had
    not committed is not in the lake) and starts no further run: the assets of the runs left
    are reported `not started`. `should_stop` is asked between runs too, because Python drops
    the exception a signal handler raises while a garbage-collection callback runs.
    """
    if partitions is not None:
        partitions = list(partitions)
        check_partitions(defs, partitions)
    if executor == "celery":
        from celery.exceptions import DuplicateTaskNameWarning

        # dagster-celery registers its one task again for every step it submits: harmless,
        # but it would print a warning per step.
        warnings.filterwarnings("ignore", category=DuplicateTaskNameWarning)
    job, graph = defs.resolve_implicit_global_asset_job_def(), defs.resolve_asset_graph()
    parents = {key: graph.get(key).parent_keys for key in graph.get_all_asset_keys()}
    run_config = {"loggers": {"console": {"config": {"log_level": console_log_level}}}}
    outcomes: list[Outcome] = []
    interrupted = False
    blocked: list[tuple[AssetKey, str | None]] = []  # failed a blocking check, or held below one
    for partition, keys in plan_runs(defs, partitions, layers):
        interrupted = interrupted or (should_stop is not None and should_stop())
        if interrupted:
            outcomes += [
                Outcome(key.to_user_string(), partition, "not started", message="") for key in keys
            ]
            continue
        # Dagster holds back what is below a failed blocking check within a run; across runs
        # (a hospital's silver, then gold over every hospital) this does.
        held = _held_back(parents, keys, partition, blocked)
        outcomes += [
            Outcome(key.to_user_string(), partition, "skipped", message=f"not run: {cause}")
            for key, cause in held.items()
        ]
        blocked += [(key, partition) for key in held]
        keys = [key for key in keys if key not in held]
        if not keys:
            continue
        attempt = str(uuid.uuid4())  # finds the run, which Dagster may not have created yet
        run_tags = {**(tags or {}), ATTEMPT_TAG: attempt}
        try:
            result = _execute(job, instance, partition, keys, run_tags, run_config, executor)
        except KeyboardInterrupt:  # a signal before Dagster's own handling took over
            interrupted = True
            _report_canceled(instance, attempt)
            outcomes += [Outcome(k.to_user_string(), partition, "not started") for k in keys]
            continue
        reported = _outcomes(result, partition)
        interrupted = _was_interrupted(result) or any(o.status == "interrupted" for o in reported)
        seen = {o.asset for o in reported}
        reported += [
            Outcome(
                key.to_user_string(),
                partition,
                "not started" if interrupted else "skipped",
                message=""
                if interrupted
                else "not run: an upstream asset or a blocking check failed",
            )
            for key in keys
            if key.to_user_string() not in seen
        ]
        blocked += [
            (AssetKey.from_user_string(o.asset), partition)
            for o in reported
            if o.failed_blocking_check
        ]
        outcomes.extend(reported)
    return outcomes


def _execute(
    job: JobDefinition,
    instance: DagsterInstance,
    partition: str | None,
    keys: list[AssetKey],
    tags: dict[str, str],
    run_config: dict,
    executor: str,
) -> RunResult:
    """One run of `keys`: in this process, or by the definitions' executor (a process per
    step, or Celery), which rebuilds the job from `asset_job` wherever a step runs."""
    if executor == "in_process":
        return job.execute_in_process(
            instance=instance,
            partition_key=partition,
            asset_selection=keys,
            raise_on_error=False,
            tags=tags,
            run_config=run_config,
        )
    selection = tuple(key.to_user_string() for key in keys)
    return execute_job(
        build_reconstructable_job(__name__, asset_job.__name__, selection),
        instance,
        run_config=run_config,
        tags={**tags, PARTITION_TAG: partition} if partition is not None else tags,
    )


def _held_back(
    parents: Mapping[AssetKey, set[AssetKey]],
    keys: list[AssetKey],
    partition: str | None,
    blocked: list[tuple[AssetKey, str | None]],
) -> dict[AssetKey, str]:
    """The keys below an asset that failed a blocking check in an earlier run, with why.

    A partitioned asset is held by its own partition's failures; an unpartitioned one (gold,
    which reads every hospital) by any partition's.
    """
    failed = {
        key: f"{key.to_user_string()} [{failed_in or '-'}] failed a blocking check"
        for key, failed_in in blocked
        if partition is None or failed_in in (partition, None)
    }
    held: dict[AssetKey, str] = {}
    for key in keys:  # in dependency order, so what is held holds its children too
        causes = [failed.get(p) or held.get(p) for p in parents[key]]
        if cause := next((c for c in causes if c), None):
            held[key] = f"upstream {cause.removeprefix('upstream ')}"
    return held


def format_outcomes(outcomes: list[Outcome]) -> str:
    """The table `rcm run` prints, then every failure's cause and every check that did not pass."""
    header = f"{'asset':<28} {'partition':<10} {'status':<13} {'rows':>10} {'seconds':>8}"
    lines = [header, "-" * len(header)]
    ordered = sorted(outcomes, key=lambda o: (o.asset, o.partition or ""))
    for o in ordered:
        rows = "" if o.rows is None else f"{o.rows:,}"
        seconds = "" if o.seconds is None else f"{o.seconds:.2f}"
        lines.append(
            f"{o.asset:<28} {o.partition or '-':<10} {o.status:<13} {rows:>10} {seconds:>8}"
        )
    failures = [o for o in ordered if o.status in ("failed", "interrupted")]
    if failures:
        lines += ["", "Failed:"]
        lines += [f"  {o.asset} [{o.partition or '-'}]: {o.message}" for o in failures]
    checks = [(o, c) for o in ordered for c in o.checks]
    if checks:
        lines += ["", "Checks that did not pass:"]
        lines += [
            f"  {c.severity:<5} {o.asset} [{o.partition or '-'}] {c.check}: {c.summary}"
            for o, c in checks
        ]
    return "\n".join(lines)


def asset_name(key: AssetKey) -> str:
    return "/".join(key.path)


@dataclass
class DagsterGoldGraph:
    """The asset graph as `lake.restore` needs it: what gold is below a table, and its rebuild.

    Gold is always rebuilt whole from silver, so materializing it again is the honest repair; the
    run is recorded in the instance like any other.
    """

    defs: Definitions
    instance: DagsterInstance | None = None

    def gold_tables(self) -> list[str]:
        graph = self.defs.resolve_asset_graph()
        return sorted(asset_name(k) for k in graph.get_all_asset_keys() if k.path[0] == "gold")

    def gold_below(self, name: str) -> list[str]:
        graph = self.defs.resolve_asset_graph()
        start = AssetKey(name.split("/"))
        if not graph.has(start):
            return []
        below = AssetSelection.assets(start).downstream(include_self=False).resolve(graph)
        return sorted(asset_name(key) for key in below if key.path[0] == "gold")

    def rebuild(self, names: list[str], full: bool = False) -> str:
        """Materialize `names`; `full` rebuilds them even where their inputs did not change."""
        job = self.defs.resolve_implicit_global_asset_job_def()
        tags = {"rcm/command": "lake rebuild" if full else "lake restore --cascade"}
        result = job.execute_in_process(
            instance=self.instance or default_instance(),
            asset_selection=[AssetKey(name.split("/")) for name in names],
            run_config=QUIET_CONSOLE,
            tags={**tags, FULL_REBUILD_TAG: "true"} if full else tags,
            raise_on_error=False,
        )
        built = {
            asset_name(event.step_materialization_data.materialization.asset_key)
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


def asset_descriptions(defs: Definitions) -> dict[str, str | None]:
    """Asset name → its description, for `rcm lake describe`."""
    graph = defs.resolve_asset_graph()
    return {asset_name(key): graph.get(key).description for key in graph.get_all_asset_keys()}
