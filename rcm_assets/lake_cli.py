"""`rcm lake ...`: look at and look after the lake's Delta tables.

    rcm lake tables
    rcm lake history TABLE [--limit N]
    rcm lake show TABLE [--version N | --as-of TIME] [--where COND] [--limit N]
    rcm lake restore TABLE --version N [--cascade]
    rcm lake vacuum [--retention-hours H] [--dry-run] [--force]
    rcm lake optimize [TABLE ...]
    rcm lake erase-patient PATIENT_KEY [--dry-run] [--include-raw]

TABLE is a path relative to the lake root, as `rcm lake tables` lists it (`silver/patients`,
`bronze/hosa/patients`). The rules behind restore and erase-patient are in the docstrings of
`rcm_assets.lake.restore` and `rcm_assets.lake.erasure`.
"""

from __future__ import annotations

import argparse
from datetime import datetime

import polars as pl

from rcm_assets.errors import RcmError
from rcm_assets.lake import catalog, erasure, operations, restore
from rcm_assets.lake.safe_filter import apply_where
from rcm_assets.resources import LakeResource

SHOW_LIMIT = 20


def _tables(args: argparse.Namespace) -> int:
    rows = [
        {
            "layer": info.layer,
            "table": info.name,
            "version": info.version,
            "rows": info.rows,
            "files": info.files,
            "bytes": info.size_bytes,
            "last_write_utc": info.last_write,
        }
        for info in catalog.list_tables(LakeResource())
    ]
    print(catalog.format_table(rows))
    return 0


def _history(args: argparse.Namespace) -> int:
    entries = catalog.table_history(LakeResource(), args.table, args.limit)
    rows = [
        {
            "version": e.version,
            "time_utc": e.time,
            "operation": e.operation,
            "rcm_operation": e.rcm_operation,
            "added": e.added,
            "updated": e.updated,
            "deleted": e.deleted,
            "run_id": e.run_id,
            "load_ids": e.load_ids,
            "restored_version": e.rcm.get("restored_version"),
        }
        for e in entries
    ]
    print(catalog.format_table(rows))
    return 0


def _timestamp(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time; use ISO 8601, e.g. 2026-01-31T14:00:00 (UTC unless an "
            "offset is given)"
        ) from None


def show_frame(args: argparse.Namespace) -> pl.DataFrame:
    """The rows `rcm lake show` prints, for the parsed arguments."""
    if args.limit < 0:
        raise RcmError(f"--limit must be 0 or more, not {args.limit}")
    frame = catalog.read_table(LakeResource(), args.table, args.version, args.as_of)
    if args.where is not None:
        frame = apply_where(frame, args.where)
    try:
        return frame.head(args.limit).collect()
    except pl.exceptions.PolarsError as error:  # e.g. a date compared with a text literal
        raise RcmError(
            f"--where {args.where!r} cannot be evaluated on {args.table}: {error} (compare dates "
            "with DATE '2024-01-31')"
        ) from None


def _show(args: argparse.Namespace) -> int:
    frame = show_frame(args)
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=240, fmt_str_lengths=60):
        print(frame)
    return 0


def _restore(args: argparse.Namespace) -> int:
    result = restore.restore_table(LakeResource(), args.table, args.version, args.cascade)
    print(
        f"{args.table}: restored version {args.version} as version {result.new_version} "
        f"({result.rows:,} rows), restore id {result.restore_id}"
    )
    for table, version in result.silver_versions.items():
        print(f"  rolled back {table} as version {version}")
    if result.gold_run_id:
        print(f"  rebuilt {', '.join(result.plan.gold)} in Dagster run {result.gold_run_id}")
    if result.plan.untracked_load_ids:
        print(
            f"  note: load(s) {', '.join(result.plan.untracked_load_ids)} stay recorded as "
            f"consumed by {args.table}; their rows come back only if it is rebuilt"
        )
    return 0


def _vacuum(args: argparse.Namespace) -> int:
    results = operations.vacuum_tables(
        LakeResource(), args.retention_hours, args.dry_run, args.force
    )
    verb = "files_to_remove" if args.dry_run else "files_removed"
    print(catalog.format_table([{"table": r.table, verb: r.files_removed} for r in results]))
    total = sum(r.files_removed for r in results)
    print(f"\n{total:,} file(s) {'would be ' if args.dry_run else ''}removed")
    return 0


def _optimize(args: argparse.Namespace) -> int:
    results = operations.optimize_tables(LakeResource(), args.tables or None)
    rows = [
        {
            "table": r.table,
            "files_removed": r.files_removed,
            "files_added": r.files_added,
            "version": r.version,
        }
        for r in results
    ]
    print(catalog.format_table(rows))
    return 0


def _erase_patient(args: argparse.Namespace) -> int:
    result = erasure.erase_patient(
        LakeResource(), args.patient_key, dry_run=args.dry_run, include_raw=args.include_raw
    )
    if args.dry_run:
        rows = [{"table": table, "rows_to_delete": n} for table, n in result.rows.items()]
    else:
        rows = [
            {"table": table, "rows_deleted": n, "files_removed": result.files_removed.get(table)}
            for table, n in result.rows.items()
        ]
    print(catalog.format_table(rows))
    verb = "would delete" if args.dry_run else "deleted"
    print(
        f"\n{result.erasure_id}: {verb} {result.total_rows:,} row(s) of subject "
        f"sha256:{result.subject_sha256[:16]}… (recorded in audit/erasures)"
    )
    for table, files in result.log_files_mentioning.items():
        print(
            f"  note: {files} Delta log file(s) of {table} still name the key in file statistics "
            "of removed files (see rcm_assets.lake.erasure)"
        )
    return 0


def add_lake_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `lake` and its sub-commands to the `rcm` parser."""
    lake = subparsers.add_parser("lake", help="list, inspect, restore and maintain Delta tables")
    commands = lake.add_subparsers(dest="lake_command", required=True)

    tables = commands.add_parser("tables", help="every Delta table with version, rows, size")
    tables.set_defaults(handler=_tables)

    history = commands.add_parser("history", help="a table's versions and what wrote them")
    history.add_argument("table", help="e.g. silver/patients")
    history.add_argument("--limit", type=int, help="newest N versions only")
    history.set_defaults(handler=_history)

    show = commands.add_parser("show", help="read a table, now or at an earlier version")
    show.add_argument("table", help="e.g. silver/patients")
    when = show.add_mutually_exclusive_group()
    when.add_argument("--version", type=int)
    when.add_argument("--as-of", type=_timestamp, help="ISO time; the newest version then")
    show.add_argument("--where", help="SQL condition, e.g. \"datasource = 'hos-a'\"")
    show.add_argument("--limit", type=int, default=SHOW_LIMIT)
    show.set_defaults(handler=_show)

    restore_ = commands.add_parser("restore", help="roll a table back to an earlier version")
    restore_.add_argument("table", help="e.g. bronze/hosa/patients")
    restore_.add_argument("--version", type=int, required=True)
    restore_.add_argument(
        "--cascade", action="store_true", help="also roll back / rebuild stale downstream tables"
    )
    restore_.set_defaults(handler=_restore)

    vacuum = commands.add_parser("vacuum", help="delete data files older versions needed")
    vacuum.add_argument("--retention-hours", type=int, default=operations.DEFAULT_RETENTION_HOURS)
    vacuum.add_argument("--dry-run", action="store_true")
    vacuum.add_argument(
        "--force", action="store_true", help="allow a retention below the tables' minimum"
    )
    vacuum.set_defaults(handler=_vacuum)

    optimize = commands.add_parser("optimize", help="compact small files")
    optimize.add_argument("tables", nargs="*", metavar="TABLE", help="default: every table")
    optimize.set_defaults(handler=_optimize)

    erase = commands.add_parser("erase-patient", help="delete one patient's rows everywhere")
    erase.add_argument("patient_key", help="<source id>-<datasource>, e.g. HOSP1-000001-hos-a")
    erase.add_argument("--dry-run", action="store_true", help="show what would go, change none")
    erase.add_argument("--include-raw", action="store_true", help="also bronze and archive rows")
    erase.set_defaults(handler=_erase_patient)
