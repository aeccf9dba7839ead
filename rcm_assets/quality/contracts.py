"""pandera contracts of the silver tables, built from metadata/silver_columns.csv.

The contract checks the shape silver promises to gold: every column present with its type, the
key never NULL, the quality columns there. Row-level problems are not contract failures: they
are quarantined (see rules.py), so the contract failing means a bug or a metadata mistake.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from rcm_assets.errors import RcmError
from rcm_assets.metadata import Metadata, SilverTable

if TYPE_CHECKING:
    import pandera.polars as pa


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


def validate_contract(batch: pl.DataFrame, table: SilverTable, metadata: Metadata) -> pl.DataFrame:
    """`batch` if it keeps its table's contract, else a ContractError naming the columns.

    pandera checks the columns and their types on the batch's schema (no rows); the NOT NULL
    columns are checked by their null counts, which Arrow keeps per column. The same verdict as
    pandera's row-level validation, without its per-row work: a first load checks every chunk
    of a 10M-row stream, and that work, interleaved with the stream, cost about 1 GB of peak.
    """
    import pandera.polars as pa

    schema = contract(table, metadata)
    try:
        schema.validate(batch.clear(), lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases.head(10).to_dicts()
        raise ContractError(f"silver/{table.table} breaks its contract: {cases}") from None
    nulls = [
        f"{name} ({count:,} NULL)"
        for name, column in schema.columns.items()
        if not column.nullable and (count := batch.get_column(name).null_count())
    ]
    if nulls:
        raise ContractError(f"silver/{table.table} breaks its contract: NOT NULL {nulls}")
    return batch
