"""`rcm lake ...`: look at and look after the lake's Delta tables.

    rcm lake tables
    rcm lake history TABLE [--limit N]
    rcm lake show TABLE [--version N | --as-of TIME] [--where COND] [--limit N]
    rcm lake restore TABLE --version N [--cascade] [--yes]
    rcm lake vacuum [--retention-hours H] [--dry-run] [--force] [--yes]
    rcm lake optimize [TABLE ...]
    rcm lake rebuild [gold/TABLE ...]
    rcm lake erase-patient PATIENT_KEY [--dry-run] [--include-raw] [--yes]
    rcm lake grant-access [--dry-run] [--yes]

TABLE is a path relative to the lake root, as `rcm lake tables` lists it (`silver/patients`,
`bronze/hosa/patients`). The rules behind restore and erase-patient are in the docstrings of
`rcm_assets.lake.restore` and `rcm_assets.lake.erasure`. grant-access sets the ADLS Gen2 ACLs of
metadata/storage_access.csv (see `rcm_assets.storage_access` and docs/governance.md).

restore (with or without --cascade), vacuum, erase-patient and grant-access (the last three
unless --dry-run) change the lake in ways a later command cannot simply take back, so they go
ahead only when confirmed (see `confirm`): `--yes` confirms up front; without it, on a terminal,
they first check the table, version or key, print what will happen (the restore plan with its
stale downstream tables, the files vacuum would delete, the rows erase-patient would delete, the
folders whose ACLs grant-access replaces) and ask `Proceed? [y/N]`; anything but y/yes exits with
code 1 and changes nothing. When stdin is not a terminal (CI, cron, a pipe) and `--yes` is missing
they refuse (exit code 2) instead of waiting for an answer.
optimize asks nothing: it only rewrites small files into bigger ones, the content and every
version stay readable, and the replaced files stay until a vacuum.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable
from datetime import datetime

import polars as pl

from rcm_assets import storage_access
from rcm_assets.errors import RcmError
from rcm_assets.lake import erasure, inventory, operations, restore
from rcm_assets.lake.addresses import LakeAddresses
from rcm_assets.lake.safe_filter import apply_where
from rcm_assets.metadata import load_metadata
from rcm_assets.resources import LakeResource, LandingStoreResource

SHOW_LIMIT = 20
YES = ("y", "yes")
LIST_AT_MOST = 8  # tables named in a confirmation summary


def _lake() -> LakeAddresses:
    return LakeResource().addresses


def _gold_graph() -> restore.GoldGraph:
    """The asset graph, for the gold a restore leaves stale (Dagster loads only when needed)."""
    from rcm_assets.runs import DagsterGoldGraph, load_definitions

    return DagsterGoldGraph(load_definitions())


def _interactive() -> bool:
    """Whether stdin is a terminal someone can answer on."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except ValueError:  # stdin closed
        return False


def confirm(args: argparse.Namespace, summary: Callable[[], str]) -> None:
    """Return only when the operator confirmed a command that changes the lake.

    `--yes` confirms up front and `summary` is not computed. Otherwise, on a terminal, the
    summary is printed (computed only then, so the errors it finds come before the question) and
    `Proceed? [y/N]` asked: anything but y/yes exits with code 1. Without a terminal it raises an
    RcmError telling to pass --yes; it never waits for input there.
    """
    if args.yes:
        return
    if not _interactive():  # main() prints it as `rcm lake: ...`
        raise RcmError(
            f"{args.lake_command} changes the lake and stdin is not a terminal to ask on; pass "
            "--yes to go ahead (nothing changed)"
        )
    print(textwrap.fill(summary(), width=100, break_long_words=False, break_on_hyphens=False))
    try:
        answer = input("Proceed? [y/N] ")
    except (EOFError, KeyboardInterrupt):
        print()
        answer = ""
    if answer.strip().lower() not in YES:
        print(f"rcm lake {args.lake_command}: aborted, nothing changed", file=sys.stderr)
        raise SystemExit(1)


def _some(items: list[str]) -> str:
    shown = ", ".join(items[:LIST_AT_MOST])
    more = len(items) - LIST_AT_MOST
    return f"{shown} and {more} more" if more > 0 else shown


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
        for info in inventory.list_tables(_lake())
    ]
    print(inventory.format_table(rows))
    return 0


def _history(args: argparse.Namespace) -> int:
    entries = inventory.table_history(_lake(), args.table, args.limit)
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
    print(inventory.format_table(rows))
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
    frame = inventory.read_table(_lake(), args.table, args.version, args.as_of)
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


def restore_summary(lake: LakeAddresses, args: argparse.Namespace) -> str:
    """What `rcm lake restore` would do, from `restore.plan_restore` (nothing is written)."""
    plan = restore.plan_restore(lake, args.table, args.version, graph=_gold_graph())
    restore.refuse_unsafe(plan, args.cascade)  # the refusal restore_table would raise anyway
    rows = inventory.read_table(lake, args.table, args.version).select(pl.len()).collect().item()
    parts = [
        f"{args.table} goes back from version {plan.latest} to the content of version "
        f"{args.version} ({rows:,} rows), committed as a new version; the versions in between "
        "stay in the log."
    ]
    for rollback in plan.silver:
        to = (
            f"version {rollback.to_version}"
            if rollback.to_version >= 0
            else "before its first commit (no rows)"
        )
        parts.append(
            f"Cascade: the {rollback.datasource} rows of {rollback.table} go back to {to}, "
            f"taking back load(s) {', '.join(rollback.removed_load_ids)}."
        )
    if plan.gold:
        parts.append(f"Cascade: {', '.join(plan.gold)} will be rebuilt through Dagster.")
    if not plan.silver and not plan.gold:
        parts.append("No downstream table is stale.")
    if plan.untracked_load_ids:
        parts.append(
            f"Load(s) {', '.join(plan.untracked_load_ids)} stay recorded as consumed by "
            f"{args.table}; their rows come back only if it is rebuilt."
        )
    return " ".join(parts)


def _restore(args: argparse.Namespace) -> int:
    lake = _lake()
    restore.check_version(lake, args.table, args.version)  # before asking: names the mistake
    confirm(args, lambda: restore_summary(lake, args))
    result = restore.restore_table(
        lake, args.table, args.version, args.cascade, graph=_gold_graph()
    )
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


def vacuum_summary(lake: LakeAddresses, args: argparse.Namespace) -> str:
    """What `rcm lake vacuum` would delete, from a dry run."""
    planned = operations.vacuum_tables(lake, args.retention_hours, True, args.force)
    hit = [f"{r.table} ({r.files_removed:,})" for r in planned if r.files_removed]
    total = sum(r.files_removed for r in planned)
    text = (
        f"vacuum permanently deletes {total:,} data file(s) that no version of the last "
        f"{args.retention_hours} hour(s) needs, from {len(hit)} of {len(planned)} table(s)"
        f"{': ' + _some(hit) if hit else ''}. Versions older than that can no longer be read or "
        "restored."
    )
    if args.force:
        text += (
            " --force: the retention may be below the tables' minimum; a reader still on an old "
            "snapshot can fail."
        )
    return text


def _vacuum(args: argparse.Namespace) -> int:
    lake = _lake()
    if not args.dry_run:
        confirm(args, lambda: vacuum_summary(lake, args))
    results = operations.vacuum_tables(lake, args.retention_hours, args.dry_run, args.force)
    verb = "files_to_remove" if args.dry_run else "files_removed"
    print(inventory.format_table([{"table": r.table, verb: r.files_removed} for r in results]))
    total = sum(r.files_removed for r in results)
    print(f"\n{total:,} file(s) {'would be ' if args.dry_run else ''}removed")
    return 0


def _optimize(args: argparse.Namespace) -> int:
    results = operations.optimize_tables(_lake(), args.tables or None)
    rows = [
        {
            "table": r.table,
            "files_removed": r.files_removed,
            "files_added": r.files_added,
            "version": r.version,
        }
        for r in results
    ]
    print(inventory.format_table(rows))
    return 0


def erase_summary(lake: LakeAddresses, args: argparse.Namespace) -> str:
    """What `rcm lake erase-patient` would delete (counted, not recorded as a dry run)."""
    counts = erasure.plan_erasure(lake, args.patient_key, args.include_raw)
    hit = [f"{table} ({n:,})" for table, n in counts.items() if n]
    subject = erasure.subject_hash(args.patient_key)[:16]
    raw = "with" if args.include_raw else "without (no --include-raw)"
    return (
        f"erase-patient deletes {sum(counts.values()):,} row(s) of subject sha256:{subject}… "
        f"from {len(hit)} table(s){': ' + _some(hit) if hit else ''}, {raw} bronze and archive "
        f"rows, then vacuums all {len(counts)} table(s) that can hold the patient with retention "
        "0: their earlier versions can no longer be read or restored. The erasure is recorded "
        "in audit/erasures."
    )


def _erase_patient(args: argparse.Namespace) -> int:
    lake = _lake()
    if not args.dry_run:
        erasure.split_key(load_metadata(), args.patient_key)  # before asking: names the mistake
        confirm(args, lambda: erase_summary(lake, args))
    result = erasure.erase_patient(
        lake, args.patient_key, dry_run=args.dry_run, include_raw=args.include_raw
    )
    if args.dry_run:
        rows = [{"table": table, "rows_to_delete": n} for table, n in result.rows.items()]
    else:
        rows = [
            {"table": table, "rows_deleted": n, "files_removed": result.files_removed.get(table)}
            for table, n in result.rows.items()
        ]
    print(inventory.format_table(rows))
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


def _rebuild(args: argparse.Namespace) -> int:
    from rcm_assets.runs import DagsterGoldGraph, load_definitions

    graph = DagsterGoldGraph(load_definitions())
    known = graph.gold_tables()
    names = args.tables or known
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise RcmError(f"not gold tables: {', '.join(unknown)} (gold tables: {', '.join(known)})")
    run_id = graph.rebuild(names, full=True)
    print(f"rebuilt {len(names)} gold table(s) from silver in Dagster run {run_id}")
    return 0


def _describe(args: argparse.Namespace) -> int:
    from rcm_assets.lake.describe import describe_tables
    from rcm_assets.runs import asset_descriptions, load_definitions

    descriptions = asset_descriptions(load_definitions())
    results = describe_tables(_lake(), load_metadata(), descriptions, args.dry_run)
    verb = "would set" if args.dry_run else "set"
    for result in results:
        if result.description_changed or result.columns_changed:
            columns = ", ".join(result.columns_changed) or "-"
            description = "description, " if result.description_changed else ""
            print(f"{result.table:<32} {verb} {description}column tags: {columns}")
    print(f"{len(results)} table(s) checked")
    return 0


def _grant_access(args: argparse.Namespace) -> int:
    metadata = load_metadata()
    roots = {"lake": LakeResource().root, "landing": LandingStoreResource().root}
    locations = storage_access.adls_locations(roots, {row.store for row in metadata.storage_access})
    plans = storage_access.plan_acls(metadata, storage_access.principals_from_env(metadata))
    if args.dry_run:
        print(storage_access.describe_plan(plans, locations))
        print(f"\n{len(plans)} ACL(s) would be set (dry run, nothing changed)")
        return 0
    confirm(args, lambda: storage_access.plan_summary(plans, locations))
    results = storage_access.grant_access(plans, locations)
    rows = [
        {
            "store": r.store,
            "path": r.path or "/",
            "file_system": r.file_system,
            "directory": r.directory,
            "action": r.action,
            "directories": r.directories,
            "files": r.files,
        }
        for r in results
    ]
    print(inventory.format_table(rows))
    missing = [f"{r.store}:/{r.path}" for r in results if r.action == "missing"]
    print(f"\n{len(results) - len(missing)} ACL(s) set or checked")
    if missing:
        print(
            f"  note: skipped, not created yet: {_some(missing)}; run grant-access again once "
            "the pipeline has written them"
        )
    return 0


def _add_yes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="go ahead without asking (required when stdin is not a terminal)",
    )


def add_lake_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `lake` and its sub-commands to the `rcm` parser."""
    text = "list, inspect, restore and maintain Delta tables"
    lake = subparsers.add_parser("lake", help=text, description=text)
    commands = lake.add_subparsers(dest="lake_command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=text, description=text)

    tables = command("tables", "every Delta table with version, rows, size")
    tables.set_defaults(handler=_tables)

    history = command("history", "a table's versions and what wrote them")
    history.add_argument("table", help="e.g. silver/patients")
    history.add_argument("--limit", type=int, help="newest N versions only")
    history.set_defaults(handler=_history)

    show = command("show", "read a table, now or at an earlier version")
    show.add_argument("table", help="e.g. silver/patients")
    when = show.add_mutually_exclusive_group()
    when.add_argument("--version", type=int)
    when.add_argument("--as-of", type=_timestamp, help="ISO time; the newest version then")
    show.add_argument("--where", help="SQL condition, e.g. \"datasource = 'hos-a'\"")
    show.add_argument("--limit", type=int, default=SHOW_LIMIT)
    show.set_defaults(handler=_show)

    restore_ = command("restore", "roll a table back to an earlier version (asks first)")
    restore_.add_argument("table", help="e.g. bronze/hosa/patients")
    restore_.add_argument("--version", type=int, required=True)
    restore_.add_argument(
        "--cascade", action="store_true", help="also roll back / rebuild stale downstream tables"
    )
    _add_yes(restore_)
    restore_.set_defaults(handler=_restore)

    vacuum = command("vacuum", "delete data files older versions needed (asks first)")
    vacuum.add_argument("--retention-hours", type=int, default=operations.DEFAULT_RETENTION_HOURS)
    vacuum.add_argument("--dry-run", action="store_true", help="list the files, delete none")
    vacuum.add_argument(
        "--force", action="store_true", help="allow a retention below the tables' minimum"
    )
    _add_yes(vacuum)
    vacuum.set_defaults(handler=_vacuum)

    optimize = command("optimize", "compact small files (content and versions stay the same)")
    optimize.add_argument("tables", nargs="*", metavar="TABLE", help="default: every table")
    optimize.set_defaults(handler=_optimize)

    rebuild = command("rebuild", "rebuild gold tables whole from silver, changed or not")
    rebuild.add_argument("tables", nargs="*", metavar="TABLE", help="default: every gold table")
    rebuild.set_defaults(handler=_rebuild)

    describe = command("describe", "write catalog descriptions and column tags into the tables")
    describe.add_argument("--dry-run", action="store_true", help="show what would change")
    describe.set_defaults(handler=_describe)

    erase = command("erase-patient", "delete one patient's rows everywhere (asks first)")
    erase.add_argument("patient_key", help="<source id>-<datasource>, e.g. HOSP1-000001-hos-a")
    erase.add_argument("--dry-run", action="store_true", help="show what would go, change none")
    erase.add_argument("--include-raw", action="store_true", help="also bronze and archive rows")
    _add_yes(erase)
    erase.set_defaults(handler=_erase_patient)

    grant = command(
        "grant-access", "set the ADLS Gen2 ACLs of metadata/storage_access.csv (asks first)"
    )
    grant.add_argument("--dry-run", action="store_true", help="print every ACL, set none")
    _add_yes(grant)
    grant.set_defaults(handler=_grant_access)
