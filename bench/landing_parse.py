"""Landing CSV parse: the bulk path against the record-by-record parser, on clean claims files.

    .venv/bin/python bench/landing_parse.py [--rows 100000 1000000] [--record-limit 1000000]

Each measurement runs in a fresh spawned process, so peak RSS (VmHWM) is that parser's own. A
file larger than `--record-limit` rows is parsed by the bulk path only.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
from pathlib import Path
from tempfile import TemporaryDirectory


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _write_claims(path: Path, rows: int) -> None:
    from rcm_assets_tests.landing_corpus import CLAIM_COLUMNS, claim

    with path.open("w") as handle:
        handle.write(CLAIM_COLUMNS + "\n")
        for n in range(rows):
            handle.write(claim(n) + "\n")


def _parse(path: str, parser: str) -> tuple[int, float, float, float]:
    from rcm_assets.bronze import landing_csv
    from rcm_assets.metadata import load_metadata

    table = load_metadata().landing_tables["claims"]
    data = Path(path).read_bytes()
    started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    parsed = getattr(landing_csv, parser)(data, table)
    assert parsed is not None, f"{parser} declined a clean file"
    landed = sum(batch.height for batch in parsed.batches())  # the rows as bronze takes them
    wall = time.perf_counter() - started
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu_seconds = used.ru_utime - cpu.ru_utime + used.ru_stime - cpu.ru_stime
    return landed, wall, cpu_seconds, _peak_rss_mib()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--record-limit", type=int, default=1_000_000)
    args = parser.parse_args()
    spawn = multiprocessing.get_context("spawn")
    print(f"{'rows':>10} {'parser':<16} {'wall s':>8} {'cpu s':>8} {'rows/s':>12} {'peak MiB':>9}")
    with TemporaryDirectory() as folder:
        for rows in args.rows:
            path = Path(folder) / f"claims_{rows}.csv"
            _write_claims(path, rows)
            parsers = ["parse_in_bulk"] + (["parse_by_record"] if rows <= args.record_limit else [])
            for name in parsers:
                with spawn.Pool(1) as pool:
                    landed, wall, cpu, rss = pool.apply(_parse, (str(path), name))
                assert landed == rows
                print(
                    f"{rows:>10,} {name:<16} {wall:>8.2f} {cpu:>8.2f} {rows / wall:>12,.0f} "
                    f"{rss:>9.0f}"
                )
            path.unlink()


if __name__ == "__main__":
    main()
