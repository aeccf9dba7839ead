"""The Dagster UI as a user opens it: `dagster dev` on sample data, GraphQL, headless Chromium."""

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from rcm_assets.settings import REPO_ROOT
from rcm_assets_tests.conftest import Project
from rcm_assets_tests.dagster_server import DagsterDevServer, dagster_server_factory

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

__all__ = ["dagster_server_factory"]  # the fixture, imported so pytest finds it here

SCREENSHOT = REPO_ROOT / "test-artifacts" / "asset-graph.png"
# On the closed CI network Chromium's connections are refused unless its background services
# (networking, component updates, sync) are off; Playwright's bundled browser cannot be downloaded.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ASSET_NODES = "query { assetNodes { assetKey { path } groupName isPartitioned partitionKeys } }"
MAX_PAGE_SIDE = 16000  # px; the whole graph (about 12,000 px tall with X12), no more

T = TypeVar("T")


def _chromium_or_skip() -> str:
    """Chromium's path; skip when it or playwright is missing, but fail in CI."""
    problems = []
    if importlib.util.find_spec("playwright") is None:
        problems.append("the playwright package is not installed (pip install -e '.[dev]')")
    chromium = shutil.which("chromium")
    if chromium is None:
        problems.append("chromium is not on PATH (apt-get install chromium)")
    if problems:
        if os.environ.get("CI"):
            pytest.fail(f"the UI test must run in CI: {'; '.join(problems)}")
        pytest.skip("; ".join(problems))
    assert chromium is not None
    return chromium


def _expected_assets() -> dict[tuple[str, ...], tuple[str | None, list[str] | None]]:
    """Asset key -> (group, static partition keys or None), from the Definitions the server loads.

    Derived rather than listed, so silver and gold are covered as soon as they are defined.
    """
    from dagster import StaticPartitionsDefinition

    # Imported here, not at the top, so it reads the test's RCM_METADATA_DIR as the server does.
    from rcm_assets.runs import load_definitions

    graph = load_definitions().resolve_asset_graph()
    expected = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        partitions = node.partitions_def
        static = isinstance(partitions, StaticPartitionsDefinition)
        keys = partitions.get_partition_keys() if static else ([] if partitions is None else None)
        expected[tuple(key.path)] = (node.group_name, keys)
    return expected


def _settled(read: Callable[[], T], timeout: float = 15.0) -> T:
    """Poll until `read` returns the same value three times in a row (layout/animation done)."""
    deadline = time.monotonic() + timeout
    values: list[T] = []
    while time.monotonic() < deadline:
        values = [*values[-2:], read()]
        if len(values) == 3 and values[0] == values[1] == values[2]:
            return values[-1]
        time.sleep(0.25)
    raise AssertionError(f"the asset graph never settled: last values {values}")


def _labels_not_shown(graph: "Locator", labels: Counter[str]) -> dict[str, str]:
    """Labels with fewer visible copies inside the graph viewport than expected."""
    frame = graph.bounding_box()
    assert frame is not None
    missing = {}
    for label, wanted in labels.items():
        shown = 0
        matches = graph.get_by_text(label, exact=True)
        for index in range(matches.count()):
            box = matches.nth(index).bounding_box()
            # is_visible() is true for nodes panned out of the clipped viewport, so the box
            # itself must lie inside the viewport for the label to be on screen.
            if (
                box is not None
                and matches.nth(index).is_visible()
                and box["x"] >= frame["x"]
                and box["y"] >= frame["y"]
                and box["x"] + box["width"] <= frame["x"] + frame["width"]
                and box["y"] + box["height"] <= frame["y"] + frame["height"]
            ):
                shown += 1
        if shown < wanted:
            missing[label] = f"{shown} of {wanted} shown"
    return missing


def _show_whole_graph(page: "Page", graph: "Locator") -> None:
    """Expand every group and size the page so that the whole graph fits at 100 % zoom."""
    svg = graph.locator(":scope > div > svg").first

    def svg_size() -> tuple[str | None, str | None]:
        return svg.get_attribute("width"), svg.get_attribute("height")

    collapsed = _settled(svg_size)
    # ⌥E is the explorer's "Expand all groups" shortcut; the groups start collapsed.
    page.keyboard.press("Alt+e")
    page.wait_for_url(lambda url: "expanded=" in url)
    # The URL changes first; a busy machine lays the expanded graph out seconds later.
    deadline = time.monotonic() + 60
    while svg_size() == collapsed and time.monotonic() < deadline:
        time.sleep(0.25)
    size = _settled(svg_size)
    assert size != collapsed, "expanding the groups did not change the layout"
    width, height = (float(side) for side in size)
    frame = graph.bounding_box()
    viewport = page.viewport_size
    assert frame is not None and viewport is not None
    # The explorer zooms to fit the graph's width only (never above 100 %), so a tall graph
    # overflows unless the page is tall enough; the side panels keep their fixed widths.
    page.set_viewport_size(
        {
            "width": min(MAX_PAGE_SIDE, max(viewport["width"], int(frame["x"] + width + 80))),
            "height": min(MAX_PAGE_SIDE, max(viewport["height"], int(frame["y"] + height + 80))),
        }
    )
    _recentre(graph)


def _recentre(graph: "Locator") -> None:
    """Double-click the background, which re-centres the graph for the page's size."""
    graph.dispatch_event("dblclick")
    inner = graph.locator(":scope > div").first
    _settled(lambda: inner.get_attribute("style"))


def _draw_asset_graph(chromium: str, url: str, labels: Counter[str]) -> dict[str, str]:
    """Open the global asset lineage page, screenshot it, and return the labels not shown."""
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOT.parent.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(f"{url}/asset-groups")  # "Lineage" in the navigation
            graph = page.locator("[data-svg-viewport]")
            # the default 5 s of `expect` is short for a first render on a busy machine
            expect(graph.locator(":scope > div > svg")).to_be_attached(timeout=60_000)
            try:
                _show_whole_graph(page, graph)
                missing = _labels_not_shown(graph, labels)
                # A busy machine renders culled nodes late, and may have centred the graph
                # before its final layout: wait, and re-centre now and then.
                deadline = time.monotonic() + 90
                attempt = 0
                while missing and time.monotonic() < deadline:
                    attempt += 1
                    time.sleep(0.5)
                    if attempt % 20 == 0:
                        _recentre(graph)
                    missing = _labels_not_shown(graph, labels)
            finally:
                # a 16,000 px page on a busy machine takes longer than the 30 s default
                page.screenshot(path=str(SCREENSHOT), full_page=True, timeout=180_000)
        finally:
            browser.close()
    return missing


@pytest.mark.slow
def test_ui_serves_and_draws_every_asset(
    project: Project, dagster_server_factory: Callable[..., DagsterDevServer]
) -> None:
    chromium = _chromium_or_skip()
    generated = subprocess.run(
        [str(Path(sys.executable).parent / "rcm"), "generate", "--scale", "0.05"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    expected = _expected_assets()
    groups = {group for group, _ in expected.values()}
    assert groups >= {"bronze", "audit"}

    server = dagster_server_factory()

    nodes: list[dict[str, Any]] = server.graphql(ASSET_NODES)["assetNodes"]
    served = {tuple(node["assetKey"]["path"]): node for node in nodes}
    assert served.keys() == expected.keys()
    for key, (group, partition_keys) in expected.items():
        node = served[key]
        assert node["groupName"] == group, key
        assert node["isPartitioned"] == (partition_keys != []), key
        if partition_keys is not None:  # dynamic partitions depend on the instance's state
            assert node["partitionKeys"] == partition_keys, key

    # A real run through the server, so the graph below shows a materialization too.
    partition = served[("bronze", "patients")]["partitionKeys"][0]
    run_id = server.launch_assets([["bronze", "patients"]], partition=partition)
    assert server.wait_for_run(run_id) == "SUCCESS", server.log_tail()

    # The community sign-up dialog would cover the graph on a fresh instance.
    server.graphql("mutation { setNuxSeen }")
    labels = Counter(key[-1] for key in expected)
    labels.update(group for group in groups if group)
    missing = _draw_asset_graph(chromium, server.url, labels)
    assert not missing, f"not visible in the asset graph (see {SCREENSHOT}): {missing}"

    pgid = server.pid  # the server leads its own process group
    server.stop()
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
