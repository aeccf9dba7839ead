"""X12 from a dropped file to gold, with the real sensor and Dagster runs; public samples."""

from pathlib import Path

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance

from rcm_assets.x12 import X12FileRejected, parse_x12
from rcm_assets_tests.conftest import Project, execute
from rcm_assets_tests.test_bronze_landing import check_passed, drop
from rcm_assets_tests.test_sensors import tick
from rcm_assets_tests.x12_corpus import CASES

HOS_A_NPI = "1234567893"
SILVER = [
    "remittance_payments",
    "remittance_claims",
    "remittance_service_lines",
    "remittance_adjustments",
    "remittance_provider_adjustments",
    "claim_submissions",
]
GOLD = ["fact_remittance_lines", "fact_adjustments"]
PUBLIC = Path(__file__).parent / "data" / "x12" / "public"


def claim(pcn: str, status: str, charge: int, paid: int) -> list[str]:
    """A balanced CLP with one service line: the rest of the charge is coinsurance (PR-2)."""
    rest = charge - paid
    return [
        f"CLP*{pcn}*{status}*{charge}*{paid}*{rest}*12*PAYER{pcn}",
        "NM1*QC*1*DOE*JANE****MR*HOSP1-000001",
        f"SVC*HC:99213*{charge}*{paid}**1",
        "DTM*472*20250301",
        f"CAS*PR*2*{rest}",
    ]


def remittance_file(trace: str, date: str, *claims: list[str]) -> bytes:
    paid = sum(int(c[0].split("*")[4]) for c in claims)
    body = [
        "ST*835*0001",
        f"BPR*I*{paid}*C*CHK************{date}",
        f"TRN*1*{trace}*1386000134",
        f"DTM*405*{date}",
        "N1*PR*ACME HEALTH PLAN",
        "N3*PO BOX 1",
        "N4*LANSING*MI*48909",
        "PER*BL*CLAIMS*TE*9995551212",
        f"N1*PE*HOSPITAL A*XX*{HOS_A_NPI}",
        "LX*1",
        *[segment for c in claims for segment in c],
    ]
    body.append(f"SE*{len(body) + 1}*0001")
    control = trace[-9:].rjust(9, "0")
    segments = [
        "ISA*00*          *00*          *ZZ*PAYER01        *ZZ*HOSPA          *250310*1200*^*"
        f"00501*{control}*0*P*:",
        f"GS*HP*PAYER01*HOSPA*{date}*1200*7*X*005010X221A1",
        *body,
        "GE*1*7",
        f"IEA*1*{control}",
    ]
    return ("~\n".join(segments) + "~\n").encode()


def run(instance: DagsterInstance, keys: list[str], partition: str | None) -> None:
    result = execute(instance, [AssetKey(key.split("/")) for key in keys], partition)
    failures = [e.message for e in result.all_events if e.is_step_failure]
    assert not failures, failures


def sensor_run(instance: DagsterInstance, cursor: str | None) -> str:
    """One sensor tick; its run requests executed as the daemon would. Returns the cursor."""
    evaluation = tick(instance, cursor)
    assert evaluation.run_requests, evaluation.skip_message
    for request in evaluation.run_requests:
        selection = list(request.asset_selection or [])
        assert execute(instance, selection, request.partition_key, request.run_config).success
    return evaluation.cursor


def gold(project: Project, table: str) -> pl.DataFrame:
    return pl.read_delta(str(project.lake / "gold" / table))


def test_a_dropped_835_reaches_gold_and_a_reversal_changes_it(
    project: Project, instance: DagsterInstance
) -> None:
    first = remittance_file(
        "TRACE0001", "20250310", claim("CLAIM1", "1", 100, 80), claim("CLAIM2", "1", 50, 50)
    )
    drop(project, "x12/remit_acme_0310.x12", first)  # no hospital in the name: routed by NPI
    cursor = sensor_run(instance, None)
    run(instance, [f"silver/{t}" for t in SILVER], "hos-a")
    run(instance, [f"gold/{t}" for t in GOLD], None)
    lines = gold(project, "fact_remittance_lines").sort("patient_control_number")
    assert lines.select("patient_control_number", "paid_amount").rows() == [
        ("CLAIM1", 80),
        ("CLAIM2", 50),
    ]
    assert lines["pr_adjustment_amount"].cast(pl.Float64).to_list() == [20.0, 0.0]

    # the payer reverses CLAIM1 in a later 835, and pays it again, higher, in the next one
    for name, data in [
        (
            "remit_acme_0401.x12",
            remittance_file("TRACE0002", "20250401", claim("CLAIM1", "22", -100, -80)),
        ),
        (
            "remit_acme_0415.x12",
            remittance_file("TRACE0003", "20250415", claim("CLAIM1", "1", 100, 95)),
        ),
    ]:
        drop(project, f"x12/{name}", data)
        cursor = sensor_run(instance, cursor)
        run(instance, [f"silver/{t}" for t in SILVER], "hos-a")
        run(instance, [f"gold/{t}" for t in GOLD], None)

    lines = gold(project, "fact_remittance_lines").sort("patient_control_number")
    assert lines.select("patient_control_number", "paid_amount").rows() == [
        ("CLAIM1", 95),
        ("CLAIM2", 50),
    ]
    versions = pl.read_delta(str(project.lake / "silver" / "remittance_claims")).filter(
        pl.col("patient_control_number") == "CLAIM1"
    )
    assert versions.sort("remittance_sequence")["claim_status_code"].to_list() == ["1", "22", "1"]
    assert versions.filter(pl.col("is_current"))["paid_amount"].cast(pl.Float64).to_list() == [95]
    adjustments = gold(project, "fact_adjustments").filter(
        pl.col("patient_control_number") == "CLAIM1"
    )
    assert adjustments.select("group_code", "reason_code", "reason_description").rows() == [
        ("PR", "2", None)  # no CARC list landed in this test: flagged as not known
    ]
    assert adjustments["is_known_reason"].to_list() == [False]


def test_a_remittance_without_its_837_is_reported_as_an_orphan(
    project: Project, instance: DagsterInstance
) -> None:
    drop(
        project,
        "x12/hospital1_remit.x12",
        remittance_file("TRACE0003", "20250310", claim("CLAIM9", "1", 10, 10)),
    )
    sensor_run(instance, None)
    result = execute(instance, [AssetKey(["silver", "remittance_claims"])], "hos-a")
    assert not check_passed(result, "referential_integrity")
    evaluation = next(
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.asset_check_evaluation_data.check_name == "referential_integrity"
    )
    assert "submission_key" in str(evaluation.metadata)


@pytest.mark.parametrize(
    ("name", "outcome"),
    [
        ("pyx12_835_mult_loops.txt", "loaded"),
        ("linuxforhealth_835_managed-care.835", "BPR16 '20002316'"),
        ("linuxforhealth_835_medicare-part-a.835", 'Mandatory segment "Payer Technical Contact'),
        ("imsweb_837p_x12_valid.txt", "SE01: SE count of 25"),
        ("imsweb_837i_x223-test.txt", "SE01: SE count of 25"),
        ("linuxforhealth_837p_demo.example1.837", "GS08 names an implementation guide"),
    ],
)
def test_public_sample_files_load_or_are_rejected_with_the_reason(name: str, outcome: str) -> None:
    data = (PUBLIC / name).read_bytes()
    try:
        parsed = parse_x12(data, name)
    except X12FileRejected as rejection:
        assert outcome in str(rejection)
        return
    if outcome == "loaded":
        assert parsed.rejected_sets == 0 and parsed.segments.height > 0
    else:
        assert outcome in parsed.rejected["reason"][0]


def _outcome(data: bytes, name: str) -> tuple:
    try:
        parsed = parse_x12(data, name)
    except X12FileRejected as rejection:
        return ("rejected", str(rejection))
    return (
        parsed.segments.to_dicts(),
        parsed.rejected.to_dicts(),
        # the 999's envelope carries the time it was written and a random control number
        [
            segment
            for segment in (parsed.acknowledgment or "").splitlines()
            if not segment.startswith(("ISA", "GS", "GE", "IEA"))
        ],
        parsed.transaction_sets,
    )


def test_a_guide_map_is_built_once_and_reused_maps_give_a_fresh_maps_outcome(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rcm_assets.x12 import parse

    files = [(path.read_bytes(), path.name) for path in sorted(PUBLIC.iterdir())]
    files += [(case.data, name) for name, case in CASES.items()]
    built: list[str] = []
    load = parse._load_map_file

    def build(map_file: str, *args: object) -> object:
        built.append(map_file)
        return load(map_file, *args)

    monkeypatch.setattr(parse, "_MAPS", {})
    fresh = []
    for data, name in files:
        parse._MAPS.clear()  # every file on new maps, as before they were kept
        fresh.append(_outcome(data, name))
    monkeypatch.setattr(parse, "_load_map_file", build)
    parse._MAPS.clear()

    reused = [_outcome(data, name) for data, name in files * 2]

    assert reused == fresh * 2
    assert sorted(built) == sorted(set(built))  # one build per guide (and the control map)
    assert {"835.5010.X221.A1.xml", "x12.control.00501.xml"} <= set(built)
