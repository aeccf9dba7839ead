"""The whole asset graph on a local lake and on Azurite (Azure Blob emulator): seconds per layer.

Generates sample data at each scale, then materializes every asset once with the lake and the
landing store on the local disk, and once on Azurite (same data), and prints per layer the
rows written and the seconds spent. Azurite runs on this machine, so the figures show the
object-store protocol's overhead (many small requests per Delta commit), not network latency.
Usage: python bench/azure_lake.py [--scales 1 10] [--order azurite local]
"""

import argparse
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def _run_graph(home: Path) -> dict[str, tuple[int, float]]:
    from dagster import DagsterInstance

    from rcm_assets.runs import load_definitions, materialize_all

    per_layer: dict[str, list] = defaultdict(lambda: [0, 0.0])
    with DagsterInstance.ephemeral() as instance:
        for outcome in materialize_all(load_definitions(), instance):
            layer = per_layer[outcome.asset.split("/")[0]]
            layer[0] += outcome.rows or 0
            layer[1] += outcome.seconds or 0.0
    return {layer: (rows, seconds) for layer, (rows, seconds) in per_layer.items()}


def _upload_landing(local: Path) -> None:
    from rcm_assets.resources import LandingStoreResource

    store = LandingStoreResource()
    for path in local.rglob("*"):
        if path.is_file():
            store.write_text(path.relative_to(local).as_posix(), path.read_text("utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[1, 10])
    parser.add_argument(
        "--order",
        nargs=2,
        choices=["local", "azurite"],
        default=["local", "azurite"],
        help="which lake runs first (the first run pays for cold caches)",
    )
    args = parser.parse_args()
    from rcm_assets_tests.azurite import azurite_binary, run_azurite

    if azurite_binary() is None:
        raise SystemExit("Azurite is not installed: run `make install` first")
    from rcm_assets.sample_data import generate_sources
    from rcm_assets.sample_data.api_replay import sample_providers, write_api_replay

    with tempfile.TemporaryDirectory() as work:
        azurite_runner = run_azurite(Path(work, "azurite"))
        azurite = next(azurite_runner)
        for scale in args.scales:
            home = Path(work, f"scale{scale:g}")
            generate_sources(home, scale=scale, seed=7)
            write_api_replay(home, sample_providers(home, None))
            os.environ.update(RCM_HOME=str(home), **azurite.env())
            results = {}
            for where in args.order:
                for name in ("RCM_LAKE_ROOT", "RCM_LANDING_ROOT"):
                    os.environ.pop(name, None)
                if where == "azurite":
                    for name, kind in (("RCM_LAKE_ROOT", "lake"), ("RCM_LANDING_ROOT", "landing")):
                        container = f"{kind}-{scale:g}".replace(".", "-")
                        azurite.create_container(container)
                        os.environ[name] = azurite.uri(container, "rcm")
                    _upload_landing(home / "landing")
                started = time.perf_counter()
                results[where] = (_run_graph(home), time.perf_counter() - started)
            print(f"\nscale {scale:g}: whole graph, local lake vs Azurite")
            print(f"{'layer':<8} {'rows':>11} {'local s':>9} {'azurite s':>10} {'ratio':>6}")
            local, on_azure = results["local"][0], results["azurite"][0]
            for layer in sorted(local):
                rows, seconds = local[layer]
                remote = on_azure.get(layer, (0, float("nan")))[1]
                ratio = remote / seconds if seconds else float("nan")
                print(f"{layer:<8} {rows:>11,} {seconds:>9.2f} {remote:>10.2f} {ratio:>6.2f}")
            walls = results["local"][1], results["azurite"][1]
            print(f"{'total':<8} {'':>11} {walls[0]:>9.2f} {walls[1]:>10.2f} wall clock")
        azurite_runner.close()


if __name__ == "__main__":
    main()
