"""The `rcm` command: sample sources, runs of the asset graph, the report, lake operations."""

import argparse
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rcm_assets.errors import RcmError
from rcm_assets.lake_cli import add_lake_commands
from rcm_assets.settings import EXECUTORS, celery_settings, dagster_home, rcm_home


def _generate(args: argparse.Namespace) -> int:
    import psycopg2
    import pymysql

    from rcm_assets.resources.emr_sources import redact_uri, scrub
    from rcm_assets.sample_data.database import check_target

    if args.target:
        try:
            check_target(args.target)
        except ValueError as error:
            print(f"rcm generate: {error}", file=sys.stderr)
            return 2
    try:
        return _generate_sources(args)
    except (psycopg2.OperationalError, pymysql.err.OperationalError) as error:
        # A server that is down or refuses the credentials: one line, never the password.
        message = scrub(" ".join(str(error).split()), args.target or "")
        print(
            f"rcm generate: cannot use the target {redact_uri(args.target or '')}: {message}",
            file=sys.stderr,
        )
        return 2


def _generate_sources(args: argparse.Namespace) -> int:
    from rcm_assets.metadata import load_metadata
    from rcm_assets.sample_data import database_uri, generate_sources, mutate_sources
    from rcm_assets.sample_data.api_replay import sample_providers, write_api_replay
    from rcm_assets.sample_data.mutate import ChangeProfile
    from rcm_assets.sample_data.x12 import (
        next_batch,
        write_x12_change_batch,
        written_x12_files,
        x12_folder,
    )

    home = rcm_home()
    started = time.monotonic()
    if args.mutate:
        counts = mutate_sources(
            home, seed=args.seed, target=args.target, change_profile=ChangeProfile(args.profile)
        )
        for c in counts:
            print(
                f"{c.database:<28} {c.table:<14} updated {c.updated:>8,}  inserted {c.inserted:>8,}"
            )
        if written_x12_files(x12_folder(home)):  # later 835s that change claims' outcomes
            batch = next_batch(home)
            remits = write_x12_change_batch(home, seed=args.seed, batch=batch)
            print(f"X12 change batch {batch}: {len(remits)} 835 file(s) in {x12_folder(home)}")
    else:
        counts = generate_sources(
            home,
            scale=args.scale,
            seed=args.seed,
            target=args.target,
            defect_rate=args.defect_rate,
            progress=print if args.verbose else None,
            x12=True,
        )
        for c in counts:
            print(f"{c.database:<28} {c.table:<14} {c.rows:>12,} rows")
        x12 = written_x12_files(x12_folder(home))
        print(f"{len(x12)} X12 837/835 file(s) in {x12_folder(home)}")
        print(f"landing files in {home / 'landing'}")
    # The offline NPPES replay must know the providers' NPIs, which a mutation can add to.
    replay = write_api_replay(home, sample_providers(home, args.target))
    print(f"API replay fixtures in {replay}")
    print(f"done in {time.monotonic() - started:.1f}s")
    if args.target:
        print("Point the lakehouse at these databases with:")
        for spec in load_metadata().databases.values():
            print(f"  export {spec.uri_env_var}={database_uri(args.target, spec.database)}")
    return 0


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


class _StopSignals:
    """Remembers a SIGINT / SIGTERM whichever Python handler took it (Dagster installs its own
    during a run) and even if the handler's exception was swallowed: the C-level handler writes
    every signal number to a wake-up socket, read here between runs."""

    def __init__(self) -> None:
        self._reader, writer = socket.socketpair()
        self._reader.setblocking(False)
        writer.setblocking(False)
        self._writer = writer
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self.received = False

    def __call__(self) -> bool:
        try:
            numbers = self._reader.recv(256)
        except BlockingIOError:
            numbers = b""
        self.received |= bool({signal.SIGINT, signal.SIGTERM} & set(numbers))
        return self.received


def _run(args: argparse.Namespace) -> int:
    from rcm_assets.runs import default_instance, format_outcomes, load_definitions, materialize_all

    os.environ["RCM_EXECUTOR"] = args.executor  # the definitions' executor (defs/executor.py)
    started = time.monotonic()
    for signum in (signal.SIGTERM, signal.SIGINT):  # stop, never start the next run
        signal.signal(signum, _interrupt)
    stop_signals = _StopSignals()
    try:
        outcomes = materialize_all(
            load_definitions(),
            default_instance(),
            args.partition,
            tags={"rcm/command": "run"},
            console_log_level="INFO" if args.verbose else "CRITICAL",
            should_stop=stop_signals,
            executor=args.executor,
        )
    except KeyboardInterrupt:
        print("rcm run: interrupted before any run started; nothing was written", file=sys.stderr)
        return 130
    print(format_outcomes(outcomes))
    count = Counter(o.status for o in outcomes)
    checks = sum(len(o.checks) for o in outcomes)
    rows = sum(o.rows or 0 for o in outcomes)
    print(
        f"\n{count['materialized']} materialized, {count['failed']} failed, "
        f"{count['skipped']} skipped, {checks} check(s) did not pass, {rows:,} rows, "
        f"{time.monotonic() - started:.1f}s (runs in {dagster_home()})"
    )
    stopped = [f"{o.asset} [{o.partition or '-'}]" for o in outcomes if o.status == "interrupted"]
    if stopped or count["not started"] or stop_signals():
        print(
            f"rcm run: interrupted; stopped {', '.join(stopped) or 'between runs'}, "
            f"{count['not started']} asset partition(s) not started",
            file=sys.stderr,
        )
        return 130
    return 1 if count["failed"] or count["skipped"] or not outcomes else 0


def _worker(args: argparse.Namespace) -> int:
    """Become a Celery worker for `rcm run --executor celery` (and runs launched with
    RCM_EXECUTOR=celery): one process that runs one step at a time and never forks, because
    delta-rs does not survive a fork. Start as many as the machines have cores."""
    command = [str(Path(sys.executable).parent / "celery"), "-A", "rcm_assets.celery_app"]
    command += ["worker", "-Q", str(celery_settings()["task_default_queue"])]
    command += ["--pool", "solo", "--prefetch-multiplier", "1", "--loglevel", args.loglevel]
    if args.name:
        command += ["-n", args.name]
    os.execv(command[0], command)  # the broker comes from RCM_CELERY_BROKER, never argv


def _archive(args: argparse.Namespace) -> int:
    from rcm_assets.lake.archive import archive_loads
    from rcm_assets.metadata import load_metadata
    from rcm_assets.resources import LakeResource

    metadata, lake = load_metadata(), LakeResource().addresses
    days = args.older_than_days
    if days is None:
        days = metadata.archive_after_days("bronze")
    if days is None:
        raise RcmError("no archive window: add a bronze row to metadata/archive_policy.csv")
    cutoff = datetime.now(UTC) - timedelta(days=days)
    for config in metadata.load_configs:
        source, target = lake.emr_bronze(config), lake.archive(config)
        moved = archive_loads(source, target, cutoff, lake.storage_options, args.dry_run)
        verb = "would move" if args.dry_run else "moved"
        print(
            f"{config.datasource:<8} {config.tablename:<18} {verb} "
            f"{len(moved.load_ids)} load(s), {moved.rows:,} row(s) older than {days} days"
        )
    return 0


def _dictionary(args: argparse.Namespace) -> int:
    from rcm_assets.metadata import load_metadata
    from rcm_assets.settings import REPO_ROOT
    from rcm_assets.silver.dictionary import data_dictionary

    target = args.output or REPO_ROOT / "docs" / "data_dictionary.md"
    target.write_text(data_dictionary(load_metadata()))
    print(f"wrote {target}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from rcm_assets.gold.report import render_report
    from rcm_assets.gold.report_inputs import read_report_inputs
    from rcm_assets.metadata import load_metadata
    from rcm_assets.resources import LakeResource, LandingStoreResource

    inputs = read_report_inputs(LakeResource().addresses, LandingStoreResource(), load_metadata())
    page = render_report(inputs)
    target = args.output or rcm_home() / "reports" / "rcm_kpis.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    print(f"wrote {target}")
    if args.pdf:
        from rcm_assets.gold.report_pdf import write_pdf

        write_pdf(target, target.with_suffix(".pdf"))
        print(f"wrote {target.with_suffix('.pdf')}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="rcm", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="write sample EMR databases and landing files")
    generate.add_argument("--scale", type=float, default=1.0, help="multiplies the row counts")
    generate.add_argument("--seed", type=int, default=42)
    generate.add_argument(
        "--target",
        help="PostgreSQL or MySQL/MariaDB server URI (postgresql://..., mysql://...) instead of "
        "embedded SQLite",
    )
    generate.add_argument("--defect-rate", type=float, default=0.01)
    generate.add_argument("--mutate", action="store_true", help="apply a change batch instead")
    generate.add_argument(
        "--profile",
        choices=["recent", "uniform"],
        default="recent",
        help="with --mutate: which records change (recent: 90%% of updates on the newest 10%%)",
    )
    generate.add_argument("--verbose", action="store_true")
    generate.set_defaults(handler=_generate)

    run = commands.add_parser("run", help="materialize the whole asset graph through Dagster")
    run.add_argument("--partition", action="append", help="only this datasource (repeatable)")
    run.add_argument("--verbose", action="store_true", help="show Dagster's event log too")
    run.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="in_process",
        help="where steps run: this process (default), a process per step, or the Celery "
        "workers (`make workers`); the last two need an instance they share (deploy/dagster.yaml)",
    )
    run.set_defaults(handler=_run)

    worker = commands.add_parser(
        "worker", help="run a Celery worker for `rcm run --executor celery` (RCM_CELERY_BROKER)"
    )
    worker.add_argument("--name", help="the worker's node name, e.g. rcm-1@%%h")
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(handler=_worker)

    archive = commands.add_parser("archive", help="move old bronze loads to lake/archive")
    archive.add_argument("--older-than-days", type=int, help="default: metadata/archive_policy")
    archive.add_argument("--dry-run", action="store_true")
    archive.set_defaults(handler=_archive)
    report = commands.add_parser("report", help="write the KPI report (HTML) from gold")
    report.add_argument("--output", type=Path, help="default: $RCM_HOME/reports/rcm_kpis.html")
    report.add_argument(
        "--pdf", action="store_true", help="also print it to a PDF beside the HTML (Chromium)"
    )
    report.set_defaults(handler=_report)

    add_lake_commands(commands)

    dictionary = commands.add_parser("dictionary", help="write the silver data dictionary")
    dictionary.add_argument("--output", type=Path, help="default: docs/data_dictionary.md")
    dictionary.set_defaults(handler=_dictionary)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except RcmError as error:
        print(f"rcm {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
