"""scd2_merge and consumed_load_ids on hand-made frames and real Delta tables."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from rcm_assets.lake import delta, scd2
from rcm_assets.lake.scd2 import MergeStats, consumed_load_ids, scd2_merge

T0 = datetime(2024, 3, 1, 6, 0, tzinfo=UTC)
COMPARE = ["first_name", "city"]
ORDER_BY = ["source_modified_at", "load_id"]


def at(day: int) -> datetime:
    return T0 + timedelta(days=day)


def patients(rows: list[tuple], datasource: str = "hos-a", load_id: str = "L1") -> pl.DataFrame:
    """Rows of (source id, first name, city[, source_modified_at day]) for one datasource."""
    return pl.DataFrame(
        {
            "patient_key": [f"{row[0]}-{datasource}" for row in rows],
            "datasource": datasource,
            "first_name": [row[1] for row in rows],
            "city": [row[2] for row in rows],
            "source_modified_at": [at(row[3] if len(row) > 3 else 0) for row in rows],
            "load_id": load_id,
        },
        schema_overrides={"first_name": pl.String, "city": pl.String},
    )


def merge(uri: str, batch: pl.DataFrame, loaded_at: datetime, **options: object) -> MergeStats:
    options.setdefault("commit_metadata", {})
    return scd2_merge(
        uri,
        batch,
        key="patient_key",
        datasource=batch.get_column("datasource")[0],
        compare=COMPARE,
        order_by=ORDER_BY,
        loaded_at=loaded_at,
        **options,  # type: ignore[arg-type]
    )


def read(uri: str, datasource: str | None = None) -> pl.DataFrame:
    rows = delta.scan(uri).collect()
    if datasource is not None:
        rows = rows.filter(pl.col("datasource") == datasource)
    return rows.sort("patient_key", "valid_from")


def current(uri: str) -> pl.DataFrame:
    return read(uri).filter("is_current")


def assert_one_current_row_per_key(uri: str, retired: frozenset[str] = frozenset()) -> None:
    keys = current(uri)["patient_key"]
    assert keys.is_unique().all()
    assert set(keys) == set(read(uri)["patient_key"]) - retired


def version(uri: str) -> int:
    return DeltaTable(uri).version()


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return str(tmp_path / "silver" / "patients")


@pytest.fixture
def two_hospitals(uri: str) -> str:
    """hos-a (p1..p3) and hos-b (p1..p2) loaded once."""
    merge(uri, patients([("p1", "Ann", "Oslo"), ("p2", "Bob", "Rome"), ("p3", "Cy", "Nice")]), T0)
    merge(uri, patients([("p1", "Dee", "Lima"), ("p2", "Eve", "Kyiv")], "hos-b"), T0)
    return uri


def test_first_load_creates_the_table_with_every_row_current(uri: str) -> None:
    stats = merge(uri, patients([("p1", "Ann", "Oslo"), ("p2", None, "Rome")]), T0)

    assert stats == MergeStats(inserted=2, closed=0, retired=0, unchanged=0, version=0)
    rows = read(uri)
    assert rows["patient_key"].to_list() == ["p1-hos-a", "p2-hos-a"]
    assert rows["is_current"].to_list() == [True, True]
    assert rows["valid_to"].null_count() == 2
    for column in ("valid_from", "inserted_at", "modified_at"):
        assert rows[column].to_list() == [T0, T0]
        assert rows.schema[column] == pl.Datetime("us", "UTC")
    assert rows.schema["valid_to"] == pl.Datetime("us", "UTC")
    assert DeltaTable(uri).metadata().partition_columns == ["datasource"]


def test_second_load_closes_changed_keys_and_inserts_new_versions(uri: str) -> None:
    first = [
        ("p1", "Ann", "Oslo"),
        ("p2", "Bob", "Rome"),
        ("p3", "Cy", "Nice"),
        ("p4", "Di", "Bern"),
    ]
    merge(uri, patients(first), T0)

    second = [
        ("p1", "Ann", "Paris"),
        ("p2", "Rob", "Rome"),
        ("p3", "Cy", "Nice"),
        ("p5", "Fay", "Gent"),
    ]
    stats = merge(uri, patients(second, load_id="L2"), at(1))

    assert stats == MergeStats(inserted=3, closed=2, retired=0, unchanged=1, version=1)
    rows = read(uri)
    old = rows.filter(~pl.col("is_current"))
    assert old.select("patient_key", "first_name", "city").rows() == [
        ("p1-hos-a", "Ann", "Oslo"),
        ("p2-hos-a", "Bob", "Rome"),
    ]
    assert old["valid_to"].to_list() == [at(1), at(1)]
    assert old["modified_at"].to_list() == [at(1), at(1)]
    assert old["inserted_at"].to_list() == [T0, T0]
    now = current(uri)
    assert now.select("patient_key", "first_name", "city", "valid_from", "load_id").rows() == [
        ("p1-hos-a", "Ann", "Paris", at(1), "L2"),
        ("p2-hos-a", "Rob", "Rome", at(1), "L2"),
        ("p3-hos-a", "Cy", "Nice", T0, "L1"),  # unchanged: its current version is not rewritten
        ("p4-hos-a", "Di", "Bern", T0, "L1"),  # absent, retire_absent=False: untouched
        ("p5-hos-a", "Fay", "Gent", at(1), "L2"),
    ]
    assert now["valid_to"].null_count() == now.height
    assert_one_current_row_per_key(uri)


def test_null_to_value_and_back_to_null_is_a_change_each_time(uri: str) -> None:
    cities = [None, "Oslo", None, None]
    stats = [
        merge(uri, patients([("p1", "Ann", city)]), at(day)) for day, city in enumerate(cities)
    ]

    assert [(s.inserted, s.closed, s.unchanged) for s in stats] == [
        (1, 0, 0),
        (1, 1, 0),
        (1, 1, 0),
        (0, 0, 1),
    ]
    history = read(uri)
    assert history["city"].to_list() == [None, "Oslo", None]
    # Closed versions keep their own end: only the current row is matched and closed.
    assert history["valid_to"].to_list() == [at(1), at(2), None]
    assert current(uri)["city"].to_list() == [None]


def test_the_same_batch_twice_writes_no_second_commit(uri: str) -> None:
    merge(uri, patients([("p1", "Ann", "Oslo")]), T0)
    batch = patients([("p1", "Ann", "Lyon"), ("p2", None, None)], load_id="L2")
    merge(uri, batch, at(1))
    before = read(uri)

    stats = merge(uri, batch, at(2), retire_absent=True)

    assert stats == MergeStats(inserted=0, closed=0, retired=0, unchanged=2, version=None)
    assert version(uri) == 1
    assert read(uri).equals(before)


def test_a_duplicate_key_keeps_its_latest_row_by_order_whatever_the_row_order(uri: str) -> None:
    # p1: the latest source_modified_at wins; p2: a tie on both order columns, broken by the row.
    rows = [
        ("p1", "Old", "Oslo", 1),
        ("p1", "Newest", "Oslo", 3),
        ("p1", "Mid", "Oslo", 2),
        ("p2", "Bea", "Rome", 5),
        ("p2", "Abe", "Rome", 5),
    ]
    results = []
    for order in (rows, rows[::-1], [rows[i] for i in (2, 4, 0, 3, 1)]):
        table = f"{uri}-{len(results)}"
        stats = merge(table, patients(order), T0)
        assert stats.inserted == 2
        results.append(read(table).select("patient_key", "first_name").rows())

    assert results[0] == [("p1-hos-a", "Newest"), ("p2-hos-a", "Bea")]
    assert results[1] == results[0] == results[2]


@pytest.mark.parametrize("retire_absent", [False, True])
def test_a_load_of_one_hospital_leaves_the_other_byte_identical(
    two_hospitals: str, retire_absent: bool
) -> None:
    uri = two_hospitals
    hos_b_before = read(uri, "hos-b")
    hos_b_files = {path for path in DeltaTable(uri).file_uris() if "datasource=hos-b" in path}

    # Same source ids as hos-b's, new values, and hos-b's keys absent from hos-a's snapshot.
    stats = merge(uri, patients([("p1", "Zed", "Oslo")]), at(1), retire_absent=retire_absent)

    assert (stats.closed, stats.retired) == (1, 2 if retire_absent else 0)
    assert read(uri, "hos-b").equals(hos_b_before)
    assert {p for p in DeltaTable(uri).file_uris() if "datasource=hos-b" in p} == hos_b_files


def test_without_retire_absent_a_missing_key_is_not_touched(two_hospitals: str) -> None:
    before = read(two_hospitals, "hos-a").filter(pl.col("patient_key") != "p1-hos-a")

    stats = merge(two_hospitals, patients([("p1", "Ann", "Bonn")]), at(1))

    assert (stats.closed, stats.retired, stats.inserted) == (1, 0, 1)
    assert read(two_hospitals, "hos-a").filter(pl.col("patient_key") != "p1-hos-a").equals(before)


def test_retire_absent_closes_the_missing_keys_of_this_datasource_only(two_hospitals: str) -> None:
    uri = two_hospitals
    hos_b_before = read(uri, "hos-b")

    stats = merge(uri, patients([("p2", "Bob", "Rome")]), at(1), retire_absent=True)

    assert stats == MergeStats(inserted=0, closed=0, retired=2, unchanged=1, version=2)
    hos_a = read(uri, "hos-a")
    assert hos_a.height == 3  # closed in place: no new version for a retired key
    retired = hos_a.filter(pl.col("patient_key").is_in(["p1-hos-a", "p3-hos-a"]))
    assert retired["is_current"].to_list() == [False, False]
    assert retired["valid_to"].to_list() == [at(1), at(1)]
    assert retired["modified_at"].to_list() == [at(1), at(1)]
    assert read(uri, "hos-b").equals(hos_b_before)

    back = merge(uri, patients([("p2", "Bob", "Rome"), ("p3", "Cy", "Nice")]), at(2))
    assert (back.inserted, back.closed, back.unchanged) == (1, 0, 1)  # a retired key returns new
    assert current(uri).filter(pl.col("datasource") == "hos-a")["patient_key"].to_list() == [
        "p2-hos-a",
        "p3-hos-a",
    ]


def test_consumed_load_ids_are_recorded_per_datasource_across_merges(uri: str) -> None:
    assert consumed_load_ids(uri, "hos-a") == set()  # no table yet
    merge(uri, patients([("p1", "Ann", "Oslo")]), T0, commit_metadata={"consumed_load_ids": ["a1"]})
    merge(
        uri,
        patients([("p1", "Ann", "Rome")]),
        at(1),
        commit_metadata={"consumed_load_ids": ("a2", "a3"), "run_id": "r1"},
    )
    merge(
        uri, patients([("p1", "B", None)], "hos-b"), T0, commit_metadata={"consumed_load_ids": "b1"}
    )
    # A no-op merge makes no commit, so its load ids are not recorded as consumed.
    merge(
        uri, patients([("p1", "Ann", "Rome")]), at(2), commit_metadata={"consumed_load_ids": ["a4"]}
    )

    assert consumed_load_ids(uri, "hos-a") == {"a1", "a2", "a3"}
    assert consumed_load_ids(uri, "hos-b") == {"b1"}
    assert consumed_load_ids(uri, "hos-c") == set()
    assert delta.commits(uri)[1]["rcm"] == {
        "consumed_load_ids": "a2,a3",
        "run_id": "r1",
        "operation": "scd2_merge",
        "datasource": "hos-a",
        "inserted": "1",
        "closed": "1",
        "retired": "0",
        "unchanged": "0",
    }


def test_each_changing_merge_is_one_merge_commit(two_hospitals: str) -> None:
    uri = two_hospitals
    merge(uri, patients([("p1", "Ann", "Gent"), ("p9", "Ivo", "Riga")]), at(1), retire_absent=True)

    history = DeltaTable(uri).history()
    assert [entry["operation"] for entry in history] == ["MERGE", "MERGE", "WRITE"]
    newest = history[0]["operationMetrics"]
    # p1 closed + p2, p3 retired in the same commit that inserts p1's new version and p9.
    assert newest["num_target_rows_updated"] == 3
    assert newest["num_target_rows_inserted"] == 2
    assert_one_current_row_per_key(uri, retired=frozenset({"p2-hos-a", "p3-hos-a"}))


def test_a_concurrent_merge_of_the_same_datasource_fails_rather_than_duplicating_keys(
    uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    merge(uri, patients([("p1", "Ann", "Oslo")]), T0)
    read_current_versions = scd2._current_versions

    def another_writer_commits_meanwhile(*args: object, **kwargs: object) -> pl.DataFrame:
        rows = read_current_versions(*args, **kwargs)  # type: ignore[arg-type]
        monkeypatch.setattr(scd2, "_current_versions", read_current_versions)
        merge(uri, patients([("p2", "Bob", "Rome")]), at(1))
        return rows

    monkeypatch.setattr(scd2, "_current_versions", another_writer_commits_meanwhile)
    with pytest.raises(CommitFailedError):
        merge(uri, patients([("p2", "Bob", "Rome")]), at(2))
    assert_one_current_row_per_key(uri)
    assert version(uri) == 1


def test_a_new_batch_column_joins_the_schema_with_null_in_older_rows(uri: str) -> None:
    merge(uri, patients([("p1", "Ann", "Oslo"), ("p2", "Bob", "Rome")]), T0)
    batch = patients([("p1", "Ann", "Lund"), ("p2", "Bob", "Rome")]).with_columns(
        phone=pl.Series(["555-1", "555-2"])
    )

    stats = merge(uri, batch, at(1))

    assert (stats.inserted, stats.closed, stats.unchanged) == (1, 1, 1)
    rows = read(uri)
    assert rows.schema["phone"] == pl.String
    assert rows.select("patient_key", "city", "is_current", "phone").rows() == [
        ("p1-hos-a", "Oslo", False, None),  # the closed version predates the column
        ("p1-hos-a", "Lund", True, "555-1"),
        ("p2-hos-a", "Rome", True, None),  # unchanged: not rewritten
    ]
    assert not any(name.startswith("__") for name in rows.columns)


def test_a_new_compare_column_is_a_change_where_the_batch_has_a_value(uri: str) -> None:
    merge(uri, patients([("p1", "Ann", "Oslo"), ("p2", "Bob", "Rome")]), T0)
    batch = patients([("p1", "Ann", "Oslo"), ("p2", "Bob", "Rome")]).with_columns(
        phone=pl.Series(["555-1", None])
    )

    stats = scd2_merge(
        uri, batch, key="patient_key", datasource="hos-a", compare=[*COMPARE, "phone"],
        order_by=ORDER_BY, loaded_at=at(1), commit_metadata={},
    )  # fmt: skip

    assert (stats.inserted, stats.closed, stats.unchanged) == (1, 1, 1)
    assert current(uri).select("patient_key", "phone").rows() == [
        ("p1-hos-a", "555-1"),
        ("p2-hos-a", None),
    ]


def test_mixed_case_names_and_quotes_in_the_datasource(uri: str) -> None:
    def batch(city: str) -> pl.DataFrame:
        return pl.DataFrame(
            {"PatientKey": ["P1-o'hare"], "datasource": ["o'hare"], "HomeCity": [city], "Seq": [1]}
        )

    def load(city: str, day: int) -> MergeStats:
        return scd2_merge(
            uri, batch(city), key="PatientKey", datasource="o'hare", compare=["HomeCity"],
            order_by=["Seq"], loaded_at=at(day), commit_metadata={}, retire_absent=True,
        )  # fmt: skip

    load("Oslo", 0)
    stats = load("Rome", 1)

    assert (stats.inserted, stats.closed, stats.retired) == (1, 1, 0)
    rows = delta.scan(uri).collect().sort("valid_from")
    assert rows.select("HomeCity", "is_current").rows() == [("Oslo", False), ("Rome", True)]


def test_batch_dtypes_are_cast_to_the_table_schema(uri: str) -> None:
    batch = patients([("p1", "Ann", "Oslo")]).with_columns(visits=pl.lit(3, dtype=pl.Int64))
    merge(uri, batch, T0)

    stats = merge(uri, batch.with_columns(pl.col("visits").cast(pl.Int32), city=pl.lit("X")), at(1))

    assert stats.closed == 1
    assert read(uri).schema["visits"] == pl.Int64


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.with_columns(datasource=pl.lit("hos-b")), "not of datasource"),
        (lambda b: b.with_columns(is_current=pl.lit(True)), "SCD2"),
        (lambda b: b.drop("city"), "lacks columns"),
        (lambda b: b.with_columns(patient_key=pl.lit(None, pl.String)), "NULL patient_key"),
    ],
)
def test_a_malformed_batch_is_refused_before_any_write(
    uri: str, change: Callable[[pl.DataFrame], pl.DataFrame], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        scd2_merge(
            uri, change(patients([("p1", "Ann", "Oslo")])), key="patient_key", datasource="hos-a",
            compare=COMPARE, order_by=ORDER_BY, loaded_at=T0, commit_metadata={},
        )  # fmt: skip
    assert not delta.exists(uri)


def test_loads_must_arrive_in_loaded_at_order_and_be_timezone_aware(uri: str) -> None:
    merge(uri, patients([("p1", "Ann", "Oslo")]), at(2))
    with pytest.raises(ValueError, match="precedes"):
        merge(uri, patients([("p1", "Ann", "Rome")]), at(1))
    with pytest.raises(ValueError, match="timezone-aware"):
        merge(uri, patients([("p1", "Ann", "Rome")]), datetime(2024, 5, 1))
    assert version(uri) == 0


def test_a_version_older_than_the_current_one_never_becomes_current(uri: str) -> None:
    """A re-sent old file: its rows carry an older source modification time than the current
    versions, so they are counted as stale and the newer versions stay current."""
    merge(uri, patients([("p1", "Ann", "Oslo", 5), ("p2", "Bob", "Rome", 5)]), T0)
    merge(uri, patients([("p1", "Ann", "Paris", 9)], load_id="L2"), at(1))

    stats = merge(
        uri,
        patients([("p1", "Ann", "Oslo", 5), ("p2", "Bob", "Nice", 6)], load_id="L3"),
        at(2),
        version_time="source_modified_at",
    )

    assert stats.stale == 1 and stats.inserted == 1 and stats.closed == 1
    now = current(uri).sort("patient_key")
    assert now.select("patient_key", "city").rows() == [("p1-hos-a", "Paris"), ("p2-hos-a", "Nice")]
    assert_one_current_row_per_key(uri)


def first_load(
    uri: str, batch: pl.DataFrame, datasource: str = "hos-a", **options: object
) -> MergeStats:
    frames = scd2.first_load_frames(batch.lazy(), key="patient_key", order_by=ORDER_BY)
    return scd2.scd2_append_first_load(
        uri,
        frames,
        key="patient_key",
        datasource=datasource,
        compare=COMPARE,
        loaded_at=T0,
        commit_metadata={"consumed_load_ids": ["L1"]},
        **options,  # type: ignore[arg-type]
    )


def test_a_streamed_first_load_writes_what_a_merge_writes(tmp_path: Path) -> None:
    # p2 twice (its later row by source_modified_at wins), p3 with NULLs
    batch = patients(
        [
            ("p1", "Ann", "Oslo"),
            ("p2", "Bob", "Rome", 2),
            ("p2", "Bo", "Pisa", 1),
            ("p3", None, None),
        ]
    )
    streamed, merged = str(tmp_path / "streamed"), str(tmp_path / "merged")
    merge(merged, patients([("p9", "Zed", "Bern")], "hos-b"), T0)
    merge(streamed, patients([("p9", "Zed", "Bern")], "hos-b"), T0)

    stats = first_load(streamed, batch)

    assert stats == merge(merged, batch, T0, commit_metadata={"consumed_load_ids": ["L1"]})
    assert read(streamed).equals(read(merged))
    assert read(streamed, "hos-a").filter(pl.col("patient_key") == "p2-hos-a")["city"][0] == "Rome"
    assert consumed_load_ids(streamed, "hos-a") == {"L1"}


def test_a_first_load_that_fails_a_check_writes_nothing(two_hospitals: str, tmp_path: Path) -> None:
    def refuse(rows: pl.LazyFrame) -> None:
        if rows.select(pl.col("city").null_count()).collect().item():
            raise ValueError("city is NULL")

    cases = [
        (patients([("p1", "Ann", "Oslo")], "hos-x"), "not of datasource"),
        (patients([("p1", "Ann", "Oslo")], "hos-c").with_columns(patient_key=None), "NULL"),
        (patients([("p1", "Ann", "Oslo"), ("p2", "Bob", None)], "hos-c"), "city is NULL"),
    ]
    for batch, message in cases:
        before = version(two_hospitals)
        with pytest.raises(ValueError, match=message):
            first_load(two_hospitals, batch, "hos-c", check=refuse)
        assert version(two_hospitals) == before
        assert read(two_hospitals, "hos-c").is_empty()
    fresh = str(tmp_path / "fresh")
    with pytest.raises(ValueError, match="NULL"):
        first_load(fresh, cases[1][0], "hos-c")
    assert not delta.exists(fresh)
