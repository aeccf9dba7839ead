"""A comparable fingerprint of a lake: two runs of the same data have the same one."""

import polars as pl

from rcm_assets.lake import delta
from rcm_assets.lake.addresses import LakeAddresses
from rcm_assets.lake.inventory import table_names
from rcm_assets.metadata import load_metadata

# Columns that differ between two runs of the same data (when, which run, which load).
VOLATILE = ("load", "run_id", "_at", "_time", "valid_", "timestamp", "version", "duration")
# Rows without a source id get a key that names the load that saw them.
MISSING_KEY = r"^MISSING-\d{8}T\d{6}Z-[0-9a-f]{8}-"


def fingerprint(lake: LakeAddresses, layers: tuple[str, ...] = ()) -> dict[str, tuple[int, int]]:
    """Per table (of `layers`, or all): row count, and a hash of its rows without the columns
    that vary per run."""
    prints = {}
    for name in table_names(lake, load_metadata()):
        if layers and name.split("/")[0] not in layers:
            continue
        frame = delta.scan(lake.named(name), lake.storage_options).collect()
        stable = [c for c in frame.columns if not any(part in c for part in VOLATILE)]
        rows = frame.select(stable).with_columns(
            pl.col(pl.String).str.replace(MISSING_KEY, "MISSING-"),
            pl.col(pl.Float64, pl.Float32).round(6),  # parallel float sums vary in the last bit
        )
        # a sum of row hashes: equal for the same rows in any order
        prints[name] = (frame.height, int(rows.hash_rows(seed=1).sum()))
    return prints
