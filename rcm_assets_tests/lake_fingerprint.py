"""A comparable fingerprint of a lake: two runs of the same data have equal ones."""

import math
from dataclasses import dataclass

import polars as pl

from rcm_assets.lake import delta
from rcm_assets.lake.addresses import LakeAddresses
from rcm_assets.lake.inventory import table_names
from rcm_assets.metadata import load_metadata

# Columns that differ between two runs of the same data (when, which run, which load).
VOLATILE = ("load", "run_id", "_at", "_time", "valid_", "timestamp", "version", "duration")
# Rows without a source id get a key that names the load that saw them.
MISSING_KEY = r"^MISSING-\d{8}T\d{6}Z-[0-9a-f]{8}-"


@dataclass(frozen=True)
class TablePrint:
    """Row count, a hash of the exact columns' rows (in any order), and each float column's
    sum: sums in another order (parallel or incremental) differ in the last bits, so floats
    compare with a relative tolerance instead of being hashed."""

    rows: int
    rows_hash: int
    float_sums: tuple[tuple[str, float], ...]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TablePrint):
            return NotImplemented
        return (
            (self.rows, self.rows_hash) == (other.rows, other.rows_hash)
            and [name for name, _ in self.float_sums] == [name for name, _ in other.float_sums]
            and all(
                math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
                for (_, a), (_, b) in zip(self.float_sums, other.float_sums, strict=True)
            )
        )

    __hash__ = None  # type: ignore[assignment]


def fingerprint(lake: LakeAddresses, layers: tuple[str, ...] = ()) -> dict[str, TablePrint]:
    """Per table (of `layers`, or all), without the columns that vary per run."""
    prints = {}
    for name in table_names(lake, load_metadata()):
        if layers and name.split("/")[0] not in layers:
            continue
        frame = delta.scan(lake.named(name), lake.storage_options).collect()
        stable = frame.select(c for c in frame.columns if not any(p in c for p in VOLATILE))
        floats = [c for c, kind in stable.schema.items() if kind.is_float()]
        exact = stable.drop(floats).with_columns(pl.col(pl.String).str.replace(MISSING_KEY, ""))
        prints[name] = TablePrint(
            frame.height,
            int(exact.hash_rows(seed=1).sum()) if exact.width else 0,  # any order: a sum
            tuple((c, float(stable[c].fill_nan(0).sum() or 0.0)) for c in floats),
        )
    return prints
