"""A snapshot of the generated graph, so that a metadata edit shows as a reviewable diff.

The snapshot (`snapshots/definitions.txt`) lists every asset with its group, kinds, partitions,
dependencies, automation, pool and checks, and every schedule and sensor. When a change to the
graph is intended, rewrite it and commit the diff:

    RCM_UPDATE_SNAPSHOT=1 pytest rcm_assets_tests/test_definitions_snapshot.py
"""

import difflib
import os
from pathlib import Path

from dagster import Definitions

from rcm_assets.runs import load_definitions
from rcm_assets_tests.conftest import Project

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.txt"


def describe(defs: Definitions) -> str:
    graph = defs.resolve_asset_graph()
    lines = []
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        partitions = node.partitions_def
        lines += [
            f"asset {key.to_user_string()}",
            f"  group: {node.group_name}",
            f"  kinds: {', '.join(sorted(node.kinds))}",
            "  partitions: " + (", ".join(partitions.get_partition_keys()) if partitions else "-"),
            "  deps: " + (", ".join(sorted(k.to_user_string() for k in node.parent_keys)) or "-"),
            f"  automation: {'yes' if node.automation_condition else '-'}",
            f"  pool: {(node.pools and ', '.join(sorted(node.pools))) or '-'}",
        ]
        for check_key in sorted(node.check_keys, key=lambda k: k.name):
            check = graph.get(check_key)
            lines.append(f"  check {check_key.name}: blocking={check.blocking}")
    for name in sorted(s.name for s in defs.schedules or []):
        schedule = defs.resolve_schedule_def(name)
        target = sorted(
            k.to_user_string() for k in schedule.target.job_def.selection.resolve(graph)
        )
        lines.append(
            f"schedule {schedule.name}: {schedule.cron_schedule} "
            f"({schedule.execution_timezone}) -> {', '.join(target)}"
        )
    for sensor in sorted(defs.sensors or [], key=lambda s: s.name):
        lines.append(f"sensor {sensor.name}: {sensor.default_status.value}")
    lines.append("resources: " + ", ".join(sorted(defs.resources or {})))
    return "\n".join(lines) + "\n"


def test_the_graph_matches_its_snapshot(project: Project) -> None:
    text = describe(load_definitions())
    if os.environ.get("RCM_UPDATE_SNAPSHOT"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(text)
    expected = SNAPSHOT.read_text()
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            text.splitlines(keepends=True),
            "snapshot",
            "generated",
        )
    )
    assert not diff, (
        "the asset graph changed; if intended, run RCM_UPDATE_SNAPSHOT=1 pytest "
        f"{Path(__file__).name} and commit the snapshot:\n{diff}"
    )


def test_a_metadata_edit_shows_in_the_snapshot(project: Project) -> None:
    project.append_metadata(
        "load_config.csv", "healthcare-rcm-hospital-b,hos-b,dbo.payers,Full,,1,hosb"
    )
    text = describe(load_definitions())
    assert "asset bronze/payers" in text
    assert "asset bronze/payers" not in SNAPSHOT.read_text()
