"""bronze/x12_segments through Dagster: routing by name or NPI, set-level rejects, the 999."""

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance

from rcm_assets.automation.sensors import landing_run_requests
from rcm_assets.metadata import load_metadata
from rcm_assets.resources.landing import LandingStoreResource
from rcm_assets_tests.conftest import Project, execute
from rcm_assets_tests.test_bronze_landing import check_passed, drop, ingest
from rcm_assets_tests.x12_corpus import CASES, X12Case

HOS_B_NPI = "1598765430"


def remittance(payee_id: str = f"XX*{HOS_B_NPI}", paid: str = "80", control: str = "0001") -> str:
    """A small balanced 835 (one claim, one line) in the shape of pyx12's public sample."""
    body = [
        f"ST*835*{control}",
        "BPR*I*80*C*CHK************20250310",
        "TRN*1*TRACE001*1386000134",
        "DTM*405*20250310",
        "N1*PR*ACME HEALTH PLAN",
        "N3*PO BOX 1",
        "N4*LANSING*MI*48909",
        "PER*BL*CLAIMS*TE*9995551212",
        f"N1*PE*HOSPITAL B*{payee_id}",
        "LX*1",
        f"CLP*CLAIM0001*1*100*{paid}*20*12*PAYERCLM1",
        "NM1*QC*1*DOE*JANE****MR*HOSP2-000001",
        "SVC*HC:99213*100*80**1",
        "DTM*472*20250301",
        "CAS*PR*2*20",
        "AMT*B6*100",
    ]
    body.append(f"SE*{len(body) + 1}*{control}")
    return "~\n".join(body) + "~\n"


def interchange(*sets: str, guide: str = "005010X221A1", code: str = "HP") -> bytes:
    isa = (
        "ISA*00*          *00*          *ZZ*PAYER01        *ZZ*HOSPB          *250310*1200*^*"
        "00501*000000101*0*P*:~\n"
    )
    return (
        isa
        + f"GS*{code}*PAYER01*HOSPB*20250310*1200*101*X*{guide}~\n"
        + "".join(sets)
        + f"GE*{len(sets)}*101~\nIEA*1*000000101~\n"
    ).encode()


def segments_of(project: Project, path: str) -> pl.DataFrame:
    uri = project.lake / "bronze" / "x12_segments"
    return pl.read_delta(str(uri)).filter(pl.col("source_file") == path)


def test_an_835_named_for_no_hospital_is_routed_by_its_payee_npi(
    project: Project, instance: DagsterInstance
) -> None:
    path = drop(project, "x12/remit_acme_1.x12", interchange(remittance()))
    store = LandingStoreResource(root=str(project.home / "landing"))
    requests, _, skipped = landing_run_requests(load_metadata(), store, {})
    assert [(r.partition_key, r.tags["rcm/landing_file"]) for r in requests] == [("hos-b", path)]
    assert skipped == []

    result = ingest(instance, [path], partition="hos-b", table="x12_segments")
    assert result.success
    rows = segments_of(project, path)
    assert rows.height == 21  # ISA, GS, 17 in the set, GE, IEA
    assert rows["datasource"].unique().to_list() == ["hos-b"]
    clp = rows.filter(pl.col("segment_id") == "CLP").row(0, named=True)
    assert clp["raw_text"] == "CLP*CLAIM0001*1*100*80*20*12*PAYERCLM1"
    assert (clp["segment_number"], clp["loop_id"], clp["transaction_type"]) == (13, "2100", "835")
    assert clp["transaction_set_control_number"] == "0001"
    assert list((project.home / "landing" / "processed" / "x12").glob("*/remit_acme_1.x12"))


def test_an_x12_file_of_no_known_provider_stays_in_landing_and_is_reported(
    project: Project, instance: DagsterInstance
) -> None:
    drop(project, "x12/remit_other.x12", interchange(remittance(payee_id="XX*1999999984")))
    store = LandingStoreResource(root=str(project.home / "landing"))
    requests, _, skipped = landing_run_requests(load_metadata(), store, {})
    assert requests == []
    assert "NPI 1999999984" in skipped[0] and "x12_identifiers.csv" in skipped[0]

    result = ingest(instance, [], partition="hos-b", table="x12_segments")
    assert result.success and not check_passed(result, "no_unmatched_files")
    assert (project.home / "landing" / "x12" / "remit_other.x12").exists()


def test_a_set_that_fails_the_guide_is_rejected_alone_and_the_other_loads(
    project: Project, instance: DagsterInstance
) -> None:
    good, bad = remittance(control="0001"), remittance(paid="8O", control="0002")
    path = drop(project, "x12/hospital1_two_sets.x12", interchange(good, bad))
    result = ingest(instance, [path], partition="hos-a", table="x12_segments")
    assert result.success and not check_passed(result, "no_rejected_rows")
    rows = segments_of(project, path)
    assert set(rows["transaction_set_control_number"].drop_nulls()) == {"0001"}
    rejected = pl.read_delta(str(project.lake / "audit" / "rejected_rows")).filter(
        pl.col("source_file") == path
    )
    assert rejected.height == 17  # every segment of set 0002, none lost
    reason = rejected["reason"][0]
    assert "ST02 0002" in reason and "segment 30 (CLP) CLP04 '8O'" in reason


def test_an_envelope_error_rejects_the_file_naming_the_segment(
    project: Project, instance: DagsterInstance
) -> None:
    data = interchange(remittance()).replace(b"SE*17*0001", b"SE*16*0001")
    path = drop(project, "x12/hospital1_bad_count.x12", data)
    result = ingest(instance, [path], partition="hos-a", table="x12_segments")
    assert not check_passed(result, "no_rejected_files")
    rejected = list((project.home / "landing" / "rejected" / "x12").glob("*/hospital1_bad_count*"))
    report = next(p for p in rejected if p.name.endswith(".error.txt")).read_text()
    assert "ST02 0001 (segment 19)" in report and "SE count of 16" in report


@pytest.mark.parametrize("name", [n for n in CASES if not CASES[n].duplicate_of])
def test_bad_x12_corpus_is_rejected_by_segment_and_loses_nothing(
    project: Project, instance: DagsterInstance, name: str
) -> None:
    case: X12Case = CASES[name]
    path = drop(project, f"x12/hospital1_{name}.x12", case.data)
    result = ingest(instance, [path], partition="hos-a", table="x12_segments")
    assert result.success
    if case.rejected_file:
        assert not check_passed(result, "no_rejected_files")
        folder = project.home / "landing" / "rejected" / "x12"
        report = next(folder.glob(f"*/hospital1_{name}.x12.error.txt")).read_text().lower()
        assert case.rejected_file.lower() in report
        if case.segment:
            assert f"segment {case.segment}" in report
        return
    rows = segments_of(project, path)
    assert set(rows["transaction_set_control_number"].drop_nulls()) == set(case.loaded_sets)
    rejected = (
        pl.read_delta(str(project.lake / "audit" / "rejected_rows")).filter(
            pl.col("source_file") == path
        )
        if (project.lake / "audit" / "rejected_rows").exists()
        else pl.DataFrame()
    )
    # every segment of the file is in bronze or, with its set's reason, in the rejected rows
    total = len([s for s in case.data.decode().split("~") if s.strip()])
    assert rows.height + rejected.height == total
    for reason in rejected["reason"].unique().to_list() if rejected.height else []:
        assert case.set_reason.lower() in reason.lower()
        assert f"segment {case.segment}" in reason


def test_the_same_interchange_sent_twice_is_ingested_once(
    project: Project, instance: DagsterInstance
) -> None:
    case = CASES["duplicate_interchange"]
    first = drop(project, "x12/hospital1_first.x12", CASES[case.duplicate_of].data)
    again = drop(project, "x12/hospital1_again.x12", case.data)
    assert ingest(instance, [first], partition="hos-a", table="x12_segments").success
    assert ingest(instance, [again], partition="hos-a", table="x12_segments").success
    assert segments_of(project, again).height == 0
    assert segments_of(project, first).height > 0


def test_an_837_gets_a_999_acknowledgment(project: Project, instance: DagsterInstance) -> None:
    path = drop(project, "x12/hospital1_claims.x12", CASES["non_numeric_charge_837p"].data)
    assert ingest(instance, [path], partition="hos-a", table="x12_segments").success
    ack = (project.home / "landing" / "outbound" / "999" / "hospital1_claims.x12.999").read_text()
    assert "ST*999*" in ack and "AK2*837*0002" in ack and "IK5*R" in ack and "IK5*A" in ack


def test_an_unbalanced_claim_is_quarantined_in_silver_with_its_difference(
    project: Project, instance: DagsterInstance
) -> None:
    case = CASES["unbalanced_claim"]
    path = drop(project, "x12/hospital1_unbalanced.x12", case.data)
    assert ingest(instance, [path], partition="hos-a", table="x12_segments").success
    run = execute(instance, [AssetKey(["silver", "remittance_claims"])], "hos-a")
    # written, then the blocking quarantine-rate check stops what reads it (1 claim in 3)
    assert not check_passed(run, "quarantine_rate")
    claims = pl.read_delta(str(project.lake / "silver" / "remittance_claims"))
    bad = claims.filter(pl.col("is_quarantined"))
    assert bad.height == 1
    assert bad["quarantine_reasons"][0].to_list() == [case.quarantined]
    assert str(bad["balance_difference"][0]) == case.difference
    assert claims.filter(~pl.col("is_quarantined")).height > 0
