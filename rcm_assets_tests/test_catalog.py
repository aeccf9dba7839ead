"""catalog.py and gold/masking.py: owners, tags and column classification in Dagster; masking."""

from datetime import date

import polars as pl
from dagster import AssetKey, DagsterInstance

from rcm_assets.gold.masking import mask
from rcm_assets.metadata import load_metadata
from rcm_assets.runs import load_definitions
from rcm_assets_tests.bronze_helpers import read_table, run_all
from rcm_assets_tests.conftest import Project

FULL_SSN = r"^\d{3}-?\d{2}-?\d{4}$"


def test_owners_tags_and_column_classification_come_from_metadata(project: Project) -> None:
    graph = load_definitions().resolve_asset_graph()
    patients = graph.get(AssetKey(["silver", "patients"]))
    assert patients.owners == ["team:data-platform"]
    assert patients.tags["layer"] == "silver" and "phi" in patients.tags
    columns = {c.name: c for c in patients.metadata["dagster/column_schema"].columns}
    assert set(columns["ssn"].tags) == {"pii", "phi"}
    assert columns["gender"].tags == {}
    dim = graph.get(AssetKey(["gold", "dim_patient"]))
    assert {"pii", "phi"} <= set(dim.tags) and dim.owners == ["team:rcm-analytics"]
    masked = graph.get(AssetKey(["gold", "dim_patient_masked"]))
    assert "pii" not in masked.tags and masked.tags["masked"] == ""


def test_catalog_change_is_a_metadata_change(project: Project) -> None:
    project.edit_metadata("catalog.csv", "silver/*,team:data-platform", "silver/*,dq@example.org")
    graph = load_definitions().resolve_asset_graph()
    assert graph.get(AssetKey(["silver", "claims"])).owners == ["dq@example.org"]


def test_mask_rules_on_a_hand_made_frame() -> None:
    frame = pl.LazyFrame(
        {
            "ssn": ["123-45-6789", None],
            "address": ["1 Main St", "2 Side Rd"],
            "date_of_birth": [date(1980, 2, 1), None],
        },
        schema_overrides={"date_of_birth": pl.Date},
    )
    masked = mask(frame, {"ssn": "last4", "address": "redact", "date_of_birth": "year"})
    assert masked.collect().to_dicts() == [
        {"ssn": "***-**-6789", "address": "*****", "date_of_birth": 1980},
        {"ssn": None, "address": "*****", "date_of_birth": None},
    ]


def test_masked_view_never_holds_a_full_ssn(sampled: Project, instance: DagsterInstance) -> None:
    run_all(instance)

    masked = read_table(sampled, "gold", "dim_patient_masked")
    full = read_table(sampled, "gold", "dim_patient")
    assert masked.height == full.height > 0
    assert full["ssn"].str.contains(FULL_SSN).any()  # the source does hold full SSNs
    for column in masked.columns:
        if masked.schema[column] == pl.String:
            assert not masked[column].str.contains(FULL_SSN).any(), column
    assert masked["date_of_birth"].dtype == pl.Int32  # the year only
    assert masked["address"].drop_nulls().unique().to_list() == ["*****"]


def test_describe_writes_the_catalog_into_the_delta_tables_once(
    sampled: Project, instance: DagsterInstance
) -> None:
    from deltalake import DeltaTable

    from rcm_assets.lake.describe import describe_tables
    from rcm_assets.resources import LakeResource
    from rcm_assets.runs import asset_descriptions, load_definitions

    run_all(instance)
    metadata = load_metadata()
    descriptions = asset_descriptions(load_definitions())

    describe_tables(LakeResource().addresses, metadata, descriptions, dry_run=False)

    table = DeltaTable(str(sampled.lake / "silver" / "patients"))
    assert "owner: team:data-platform" in table.metadata().description
    tags = {f.name: f.metadata.get("rcm.tags") for f in table.schema().fields}
    assert tags["ssn"] == "pii phi" and tags["gender"] is None
    version = table.version()
    again = describe_tables(LakeResource().addresses, metadata, descriptions, dry_run=False)
    assert not any(r.description_changed or r.columns_changed for r in again)
    assert DeltaTable(str(sampled.lake / "silver" / "patients")).version() == version
