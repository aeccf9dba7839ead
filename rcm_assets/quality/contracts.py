"""pandera contracts of the silver tables, built from metadata/silver_columns.csv.

The contract checks the shape silver promises to gold: every column present with its type, the
key never NULL, the quality columns there. Row-level problems are not contract failures: they
are quarantined (see rules.py), so the contract failing means a bug or a metadata mistake.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import polars as pl

from rcm_assets.errors import RcmError
from rcm_assets.metadata import Metadata, SilverTable

if TYPE_CHECKING:
    import pandera.polars as pa


FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


class ContractError(RcmError):
    """A silver batch does not have the shape its table promises (a bug or a metadata mistake)."""


def contract(table: SilverTable, metadata: Metadata) -> pa.DataFrameSchema:
    # Imported when a contract is built, not with the definitions: pandera pulls in numpy and
    # pandas, which every code-location load (UI, daemon, each run worker) would pay for.
    import pandera.polars as pa

    columns = {
        c.column: pa.Column(c.type.polars_type, nullable=c.column != table.key)
        for c in metadata.columns_of(table.table)
    }
    columns |= {
        "datasource": pa.Column(pl.String, nullable=False),
        "load_id": pa.Column(pl.String, nullable=False),
        "is_quarantined": pa.Column(pl.Boolean, nullable=False),
        "quarantine_reasons": pa.Column(pl.List(pl.String)),
        "quality_flags": pa.Column(pl.List(pl.String)),
    }
    return pa.DataFrameSchema(columns, name=f"silver.{table.table}", strict=True)


def validate_contract(batch: FrameT, table: SilverTable, metadata: Metadata) -> FrameT:
    """`batch` if it keeps its table's contract, else a ContractError naming the columns.

    pandera checks the columns and their types on the batch's schema (no rows); the NOT NULL
    columns are checked by their null counts (kept per column by Arrow; a lazy batch, e.g. a
    first load's staged rows, is streamed once for them). The same verdict as pandera's
    row-level validation without its per-row work, which cost a 10M-row first load about 1 GB
    of peak memory.
    """
    import pandera.polars as pa

    schema = contract(table, metadata)
    try:
        schema.validate(pl.DataFrame(schema=batch.collect_schema()), lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases.head(10).to_dicts()
        raise ContractError(f"silver/{table.table} breaks its contract: {cases}") from None
    not_null = [name for name, column in schema.columns.items() if not column.nullable]
    counts = batch.select(pl.col(not_null).null_count())
    counts = counts.collect(engine="streaming") if isinstance(counts, pl.LazyFrame) else counts
    nulls = [
        f"{name} ({count:,} NULL)" for name, count in counts.row(0, named=True).items() if count
    ]
    if nulls:
        raise ContractError(f"silver/{table.table} breaks its contract: NOT NULL {nulls}")
    return batch
