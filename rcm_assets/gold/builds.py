"""How a gold table is brought up to date with its inputs: left alone, refreshed, or rebuilt.

Every build commit records what it read, so the next build knows what changed since:
`rcm.input_versions` (the Delta version of each input, read at exactly that version) and
`rcm.watermarks` (per silver input and datasource, the newest `modified_at` it held).

- **Unchanged**: every input is still at the recorded version; no commit at all.
- **Refresh**: the only commits on the inputs since are SCD2 merges into silver (and, for a KPI
  mart, refreshes of the fact). A dimension or the fact takes the silver rows modified since the
  recorded watermarks and rebuilds only the rows of those keys; the table's other rows stream
  through unchanged into one overwrite commit (a key no longer current, or now quarantined, is
  gone); the fact's commit records the KPI cells the
  old and new rows touch (`rcm.changed_months`). A KPI mart recomputes only those
  (datasource, month end) cells, from the fact rows that contribute to them, and replaces them
  in one commit, unless they are most of the mart (a change to an old claim still open touches
  every month since: its balance is in each month end's A/R), which is rebuilt instead.
- **Rebuild**, whole, in one overwrite commit: the first build, `rcm lake rebuild`, a masked
  table, a changed enrichment dimension, any other commit on an input (a restore, an erasure, a
  full-snapshot replace, a fact rebuilt whole), a changed column set, or KPI months that moved.
"""

from __future__ import annotations

import itertools
import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from rcm_assets.gold import changes, denials, kpis, revenue_kpis
from rcm_assets.gold.adjudications import denial_reasons_frame
from rcm_assets.gold.dims import dimension
from rcm_assets.gold.facts import FACTS
from rcm_assets.gold.masking import mask
from rcm_assets.lake import delta
from rcm_assets.lake import predicates as P
from rcm_assets.lake.addresses import LakeAddresses
from rcm_assets.metadata import GoldTable, Metadata

FACT = "fact_transactions"
INPUT_VERSIONS = "input_versions"
WATERMARKS = "watermarks"
CHANGED_MONTHS = "changed_months"
MONTH_BOUNDS = "month_bounds"
REFRESH, REBUILD, UNCHANGED = "refresh", "rebuild", "unchanged"
SCD2_MERGE = "scd2_merge"
# A dimension or the fact whose keyed silver input holds more rows than this is rebuilt in key
# ranges of about this many rows, streamed one after another into the one commit: a dimension's
# `unique` and the fact's join with its claims hold one range, not the table.
RANGE_ROWS = 2_000_000
# Keys sampled per range to place the cuts between ranges.
SAMPLE_PER_RANGE = 1_000
# A KPI refresh touching more of the mart's cells than this recomputes them all: a rebuild
# reads the fact once, a refresh also works out what changed.
MAX_REFRESH_SHARE = 0.5

KpiMart = Callable[[pl.LazyFrame, pl.LazyFrame], pl.LazyFrame]  # (fact, month ends) → rows
KPI_MARTS: dict[str, KpiMart] = {
    "kpi_ar_aging": kpis.ar_aging,
    "kpi_monthly": kpis.monthly,
    "kpi_payer_mix": lambda fact, _ends: kpis.payer_mix(fact),
    "kpi_provider_department": lambda fact, _ends: kpis.provider_department(fact),
}
# The marts of 837 / 835 data: the tables each reads, in the order its function takes them.
# They are small next to the EMR fact and follow whole adjudications, so they are rebuilt.
REMITTANCE_MARTS: dict[str, tuple[tuple[str, ...], Callable[..., pl.LazyFrame]]] = {
    "kpi_map_keys": (
        (
            "gold/fact_claim_adjudications",
            "gold/fact_claim_submissions",
            "gold/fact_remittance_lines",
        ),
        revenue_kpis.map_keys,
    ),
    "kpi_payer_scorecard": (
        ("gold/fact_claim_adjudications", "gold/fact_remittance_lines"),
        revenue_kpis.payer_scorecard,
    ),
    "kpi_denials": (
        (
            "gold/fact_claim_adjudications",
            "silver/remittance_adjustments",
            "silver/remittance_service_lines",
            "silver/carc_codes",
            "metadata/denial_reasons",
        ),
        denials.denials,
    ),
    "kpi_denied_claims": (
        ("gold/fact_claim_adjudications", "silver/carc_codes"),
        denials.denied_claims,
    ),
}
# Inputs that are metadata, not tables: their "version" is a checksum of the rows.
METADATA_INPUTS: dict[str, Callable[[Metadata], pl.LazyFrame]] = {
    "metadata/denial_reasons": lambda metadata: denial_reasons_frame(metadata.denial_reasons),
}
Frames = Mapping[str, pl.LazyFrame]  # input name ("silver/claims", "gold/dim_npi") → rows


def build_frame(table: GoldTable, metadata: Metadata, frames: Frames) -> pl.LazyFrame:
    """The table's rows, computed lazily from its input frames."""
    if table.kind == "dimension":
        rows = dimension(frames[f"silver/{table.source}"], table)
        for reference in metadata.references_of(table.table):
            if reference.enrich_columns:  # e.g. a provider's NPI Registry taxonomy
                found = frames[f"gold/{reference.dimension}"].select(
                    pl.col(reference.dimension_key).alias(reference.column),
                    *reference.enrich_columns,
                )
                rows = rows.join(found, on=reference.column, how="left")
        return rows
    if table.kind == "fact":
        inputs, build = FACTS[table.table]
        return build(*(frames[name] for name in inputs))
    if table.table in REMITTANCE_MARTS:
        inputs, build = REMITTANCE_MARTS[table.table]
        return build(*(frames[name] for name in inputs))
    if table.kind == "masked":
        rules = metadata.masking_for(table.consumer, table.source)
        return mask(frames[f"gold/{table.source}"].drop("refreshed_at"), rules)
    fact = frames[f"gold/{FACT}"]
    return KPI_MARTS[table.table](fact, kpis.month_ends(fact))


def _empty(name: str, metadata: Metadata) -> pl.LazyFrame:
    layer, table = name.split("/")
    if layer != "silver":
        raise FileNotFoundError(f"{name} has not been built yet")
    columns = {c.column: c.type.polars_type for c in metadata.columns_of(table)}
    return pl.LazyFrame(
        schema={
            **columns,
            "datasource": pl.String,
            "is_current": pl.Boolean,
            "is_quarantined": pl.Boolean,
            changes.MODIFIED_AT: pl.Datetime("us", "UTC"),
        }
    )


def inputs_of(table: GoldTable, metadata: Metadata) -> list[str]:
    """The tables a gold table reads (its Dagster deps), as "layer/table"."""
    if table.kind == "dimension":
        names = [f"silver/{table.source}"]
    elif table.kind == "fact":
        names = list(FACTS[table.table][0])
    elif table.kind == "masked":
        names = [f"gold/{table.source}"]
    elif table.table in REMITTANCE_MARTS:
        names = list(REMITTANCE_MARTS[table.table][0])
    else:
        names = [f"gold/{FACT}"]
    return names + [f"gold/{r.dimension}" for r in metadata.references_of(table.table)]


@dataclass(frozen=True)
class Build:
    """What bringing one gold table up to date did."""

    how: str  # UNCHANGED, REFRESH or REBUILD
    inputs: dict[str, int]  # the input versions the table is now built from
    rows: int  # rows written (a refresh: rows merged or cells replaced)


@dataclass(frozen=True)
class GoldBuilder:
    table: GoldTable
    metadata: Metadata
    lake: LakeAddresses

    @property
    def uri(self) -> str:
        return self.lake.gold(self.table.table)

    def _uri_of(self, name: str) -> str:
        layer, table = name.split("/")
        return self.lake.silver(table) if layer == "silver" else self.lake.gold(table)

    def versions(self) -> dict[str, int]:
        """The Delta version of every input now (-1: not created yet)."""
        return {name: self._version(name) for name in sorted(inputs_of(self.table, self.metadata))}

    def _version(self, name: str) -> int:
        if name in METADATA_INPUTS:
            return _checksum(METADATA_INPUTS[name](self.metadata))
        uri, options = self._uri_of(name), self.lake.storage_options
        return delta.version(uri, options) if delta.exists(uri, options) else -1

    def last_build(self) -> dict[str, Any] | None:
        """The `rcm.` metadata of the table's newest commit, if a build of ours wrote it."""
        if not delta.exists(self.uri, self.lake.storage_options):
            return None
        newest = delta.commits(self.uri, self.lake.storage_options)[0]["rcm"]
        return newest if INPUT_VERSIONS in newest else None

    def frames(self, versions: Mapping[str, int]) -> dict[str, pl.LazyFrame]:
        """Each input at its version; one not written yet (no X12 file has arrived, say) is
        empty, with the columns metadata gives it."""
        return {name: self._frame(name, version) for name, version in versions.items()}

    def _frame(self, name: str, version: int) -> pl.LazyFrame:
        if name in METADATA_INPUTS:
            return METADATA_INPUTS[name](self.metadata)
        uri, options = self._uri_of(name), self.lake.storage_options
        if version >= 0:
            return delta.scan(uri, options, version)
        return (
            delta.scan(uri, options) if delta.exists(uri, options) else _empty(name, self.metadata)
        )

    def update(self, run_id: str, *, full: bool = False) -> Build:
        """Bring the table up to date in at most one commit (see the module docstring)."""
        versions = self.versions()
        last = self.last_build()
        recorded: dict[str, int] = json.loads(last[INPUT_VERSIONS]) if last else {}
        if not full and last is not None and recorded == versions:
            return Build(UNCHANGED, versions, 0)
        frames = self.frames(versions)
        commit = {"run_id": run_id, INPUT_VERSIONS: json.dumps(versions, sort_keys=True)}
        if self.table.kind in ("dimension", "fact"):
            commit[WATERMARKS] = json.dumps(self._watermarks(frames), sort_keys=True)
        if self.table.kind == "kpi" and self.table.table in KPI_MARTS:
            commit[MONTH_BOUNDS] = json.dumps(_bounds(frames[f"gold/{FACT}"]))
        if not full and last is not None and self._may_refresh(last, recorded, versions):
            written = self._refresh(last, recorded, versions, frames, commit)
            if written is not None:
                return Build(REFRESH, versions, written)
        self._overwrite(self._rebuilt(frames), commit, REBUILD)
        return Build(REBUILD, versions, delta.row_count(self.uri, self.lake.storage_options))

    def _overwrite(
        self, parts: Sequence[pl.LazyFrame], commit: Mapping[str, str], operation: str
    ) -> None:
        """One overwrite commit, streamed part after part: the table is never held whole."""
        delta.overwrite_with(
            self.uri,
            parts,
            parts[0].collect_schema(),
            {"operation": operation, **commit},
            self.lake.storage_options,
        )

    def _keyed_source(self) -> tuple[str, str]:
        """The silver input that holds the table's key (a dimension's source, the
        transactions of the fact), and that key."""
        if self.table.kind == "dimension":
            return f"silver/{self.table.source}", self.table.key
        return "silver/transactions", self.table.key

    def _restricted(self, frames: Frames, rows: pl.LazyFrame) -> dict[str, pl.LazyFrame]:
        """The inputs with the keyed source cut to `rows`; for the fact, the claims cut to
        those the rows' transactions belong to."""
        source, _ = self._keyed_source()
        restricted = {**frames, source: rows}
        if self.table.kind == "fact":
            needed = rows.select("claim_key").unique()
            restricted["silver/claims"] = frames["silver/claims"].join(
                needed, on="claim_key", how="semi"
            )
        return restricted

    def _rebuilt(self, frames: Frames) -> list[pl.LazyFrame]:
        """The whole table's rows, in parts written one after another: a large dimension or
        the fact in key ranges (`RANGE_ROWS`), anything else in one part."""
        refreshed = _refreshed_at()
        cuts: list[Any] = []
        if self.table.kind == "dimension" or self.table.table == FACT:
            source, key = self._keyed_source()
            cuts = key_cuts(frames[source], key, RANGE_ROWS)
        if not cuts:
            return [build_frame(self.table, self.metadata, frames).with_columns(refreshed)]
        edges = [None, *cuts, None]
        return [
            build_frame(
                self.table,
                self.metadata,
                self._restricted(frames, frames[source].filter(_key_range(key, low, high))),
            ).with_columns(refreshed)
            for low, high in itertools.pairwise(edges)
        ]

    def _watermarks(self, frames: Frames) -> dict[str, dict[str, str]]:
        return {
            name: changes.watermarks(frame)
            for name, frame in frames.items()
            if name.startswith("silver/") and changes.MODIFIED_AT in frame.collect_schema().names()
        }

    def _may_refresh(
        self, last: Mapping[str, Any], recorded: Mapping[str, int], versions: Mapping[str, int]
    ) -> bool:
        """Whether every input change since the last build is one a refresh can follow."""
        if self.table.kind not in ("dimension", "fact", "kpi"):
            return False
        if self.table.table in FACTS and self.table.table != FACT:
            return False  # the remittance facts are rebuilt: they follow whole adjudications
        if self.table.table in REMITTANCE_MARTS:
            return False
        check_only = {
            f"gold/{r.dimension}"
            for r in self.metadata.references_of(self.table.table)
            if not r.enrich_columns
        }
        marks = json.loads(last.get(WATERMARKS, "{}"))
        for name, version in versions.items():
            before = recorded.get(name, -1)
            if version == before or name in check_only:
                continue
            if before < 0:
                return False
            if name.startswith("silver/"):
                operations = {c["rcm"].get("operation") for c in self._commits(name, before)}
                if name not in marks or operations != {SCD2_MERGE}:
                    return False
            elif name != f"gold/{FACT}" or self.table.kind != "kpi":
                return False
        return True

    def _commits(self, name: str, after: int) -> list[dict[str, Any]]:
        """The input's commits newer than version `after`."""
        history = delta.commits(self._uri_of(name), self.lake.storage_options)
        return [c for c in history if c["version"] > after]

    def _refresh(
        self,
        last: Mapping[str, Any],
        recorded: Mapping[str, int],
        versions: Mapping[str, int],
        frames: Frames,
        commit: dict[str, str],
    ) -> int | None:
        """Rows written by a refresh, or None when the table has to be rebuilt after all."""
        if self.table.kind == "kpi":
            return self._refresh_cells(last, recorded, frames, commit)
        marks = json.loads(last[WATERMARKS])
        changed = {
            name: changes.modified_since(frames[name], marks[name])
            for name, version in versions.items()
            if name.startswith("silver/") and version != recorded.get(name)
        }
        source, key = self._keyed_source()
        if self.table.kind == "dimension":
            keys = changed[source].select(key).unique().collect()
        else:
            keys = self._changed_transactions(frames, changed).unique().collect()
        if keys.is_empty():
            return 0
        restricted = self._restricted(frames, frames[source].join(keys.lazy(), on=key, how="semi"))
        rows = build_frame(self.table, self.metadata, restricted).with_columns(_refreshed_at())
        rows = rows.collect()
        stored = delta.scan(self.uri, self.lake.storage_options)
        schema = stored.collect_schema()
        if rows.columns != schema.names():
            return None  # the table's columns changed: rebuild it
        if self.table.kind == "fact":
            before = stored.join(keys.lazy(), on=key, how="semi")
            touched_months = changes.merge_ranges(
                changes.touched_months(before), changes.touched_months(rows.lazy())
            )
            commit[CHANGED_MONTHS] = json.dumps(changes.ranges_to_json(touched_months))
        # The rows of other keys stream through unchanged, the changed keys' rows are replaced
        # (or gone): one overwrite commit, memory bounded by the changed rows. A delta-rs merge
        # would rewrite every file holding a changed key, which a batch spread over the table
        # makes all of them, and held about twice the memory (measured, docs/performance.md).
        kept = stored.join(keys.lazy(), on=key, how="anti")
        self._overwrite([kept, rows.cast(dict(schema)).lazy()], commit, REFRESH)
        return rows.height + keys.join(rows.select(key), on=key, how="anti").height

    @staticmethod
    def _changed_transactions(frames: Frames, changed: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
        """Transactions modified since, and those of claims modified since."""
        keys = []
        if "silver/transactions" in changed:
            keys.append(changed["silver/transactions"].select("transaction_key"))
        if "silver/claims" in changed:
            claims = changed["silver/claims"].select("claim_key")
            of_claims = frames["silver/transactions"].join(claims, on="claim_key", how="semi")
            keys.append(of_claims.select("transaction_key"))
        return pl.concat(keys) if keys else pl.LazyFrame(schema={"transaction_key": pl.String})

    def _refresh_cells(
        self,
        last: Mapping[str, Any],
        recorded: Mapping[str, int],
        frames: Frames,
        commit: dict[str, str],
    ) -> int | None:
        """Replace the KPI cells the fact's refreshes since the last build touched."""
        if last.get(MONTH_BOUNDS) != commit[MONTH_BOUNDS]:
            return None  # the calendar moved: every open claim's A/R reaches new months
        fact_commits = self._commits(f"gold/{FACT}", recorded[f"gold/{FACT}"])
        if any(CHANGED_MONTHS not in c["rcm"] for c in fact_commits):
            return None  # the fact was rebuilt whole
        ranges = changes.merge_ranges(
            *(changes.ranges_from_json(json.loads(c["rcm"][CHANGED_MONTHS])) for c in fact_commits)
        )
        if not ranges:
            return 0
        fact = frames[f"gold/{FACT}"]
        if _share_of_cells(fact, ranges, json.loads(commit[MONTH_BOUNDS])) > MAX_REFRESH_SHARE:
            return None  # e.g. an old, still open claim changed: its A/R is in every later month
        mart = KPI_MARTS[self.table.table]
        rows = (
            mart(changes.contributing(fact, ranges), kpis.month_ends(fact))
            .filter(changes.in_ranges(ranges))
            .with_columns(_refreshed_at())
            .collect()
        )
        stored = delta.scan(self.uri, self.lake.storage_options).collect_schema()
        if rows.columns != stored.names():
            return None
        delta.overwrite_where(
            self.uri,
            rows.cast(dict(stored)),
            P.sql(_cells_predicate(ranges)),
            {"operation": REFRESH, **commit},
            self.lake.storage_options,
        )
        return rows.height


def key_cuts(rows: pl.LazyFrame, key: str, per_range: int) -> list[Any]:
    """Keys that cut `rows` into ranges of about `per_range` rows (none when it holds fewer),
    placed by a sample of about `SAMPLE_PER_RANGE` keys per range, picked by the key's hash so
    the sample streams and every row of a key is in or out of it together."""
    total = rows.select(pl.len()).collect().item()
    ranges = -(-total // per_range)
    if ranges <= 1:
        return []
    every = max(1, total // (ranges * SAMPLE_PER_RANGE))
    sample = (
        rows.select(key)
        .filter(pl.col(key).hash(seed=0) % every == 0)
        .drop_nulls()
        .collect()
        .get_column(key)
        .sort()
    )
    cuts = {sample[len(sample) * i // ranges] for i in range(1, ranges)} if len(sample) else set()
    return sorted(cuts)


def _key_range(key: str, low: Any, high: Any) -> pl.Expr:
    """`low <= key < high`; an open end (None) is unbounded, and the first range keeps a null
    key (which sorts first)."""
    within = pl.lit(True)
    if low is not None:
        within &= pl.col(key) >= low
    if high is not None:
        within &= pl.col(key) < high
    return within if low is not None else within | pl.col(key).is_null()


def _checksum(frame: pl.LazyFrame) -> int:
    """A stable number for a metadata input's rows: it changes when they do."""
    return zlib.crc32(frame.collect().write_csv().encode())


def _refreshed_at() -> pl.Expr:
    return pl.lit(datetime.now(UTC)).cast(pl.Datetime("us", "UTC")).alias("refreshed_at")


def _bounds(fact: pl.LazyFrame) -> list[str | None]:
    """The first and last month end of the fact's calendar (`kpis.month_ends`)."""
    ends = kpis.month_ends(fact).select(
        pl.col("month_end").min().alias("first"), pl.col("month_end").max().alias("last")
    )
    first, last = ends.collect().row(0)
    return [first.isoformat() if first else None, last.isoformat() if last else None]


def _share_of_cells(
    fact: pl.LazyFrame, ranges: changes.MonthRanges, bounds: list[str | None]
) -> float:
    """The share of the mart's (datasource, month end) cells that `ranges` cover."""
    first, last = (date.fromisoformat(b) if b else None for b in bounds)
    if first is None or last is None:
        return 1.0
    sources = fact.select(pl.col("datasource").n_unique()).collect().item() or 1
    covered = sum(
        _months(start, end)
        for start, until in ranges.values()
        for end in [min(until or last, last)]
        if end >= start
    )
    return covered / (_months(first, last) * sources)


def _months(first: date, last: date) -> int:
    """Month ends from `first` to `last`, both included."""
    return (last.year - first.year) * 12 + last.month - first.month + 1


def _cells_predicate(ranges: changes.MonthRanges) -> P.Expression:
    """`(datasource = d AND month_end >= first [AND month_end <= last]) OR ...` for delta-rs."""
    cells = []
    for source, (first, last) in sorted(ranges.items()):
        month = P.column("month_end")
        bounds = [P.at_least(month, P.day(first))]
        if last is not None:
            bounds.append(P.at_most(month, P.day(last)))
        cells.append(P.all_of(P.equals(P.column("datasource"), P.literal(source)), *bounds))
    return P.any_of(*cells)
