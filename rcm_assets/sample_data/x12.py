"""Deterministic ASC X12 5010 sample files (837P, 837I, 835) for the sample claims.

`write_x12_files` reads the claims CSVs and EMR sources `generate_sources` wrote and writes, into
``<home>/landing/x12/``, claims (837P 005010X222A1 for outpatient, emergency, telehealth and
follow-up visits; 837I 005010X223A2 for inpatient stays) and remittances (835 005010X221A1, per
payer) for a seeded subset of the claims. `write_x12_change_batch` writes later 835s that reverse
and re-adjudicate some of those claims, as ``rcm generate --mutate`` would receive them.

Hospital A's files carry the hospital in their name (``hospital1_*``); hospital B's do not
(``claims_*``, ``remit_*``), so a loader must recognise it from the billing provider (837
2010AA NM1*85 / REF*EI) or payee (835 N1*PE / REF*TJ) identifiers, listed in `X12_HOSPITALS`.

Money is handled in integer cents so every 835 balances exactly: per service line
SVC02 = SVC03 + its CAS amounts, per claim CLP03 = CLP04 + claim and line CAS amounts, per
transaction BPR02 = sum(CLP04) - sum(PLB amounts). Everything derives from the data and the seed,
never the wall clock, so one (seed, scale) always yields byte-identical files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from . import reference_codes as ref
from .database import SampleDatabase, open_server, open_sqlite, sqlite_path
from .generator import SAMPLE_HOSPITALS, HospitalProfile, active_cpt, claims_csv_path
from .schema import quote_ident
from .synth import rng_for, stable_key

__all__ = [
    "HOSPITAL_A",
    "HOSPITAL_B",
    "X12_HOSPITALS",
    "X12Hospital",
    "read_segments",
    "write_x12_change_batch",
    "write_x12_files",
]

# ---------------------------------------------------------------------------------------------
# Identifiers (metadata/x12_identifiers.csv lists the same values)


@dataclass(frozen=True)
class X12Hospital:
    """One hospital as it appears in X12: billing provider in 837s, payee in 835s."""

    datasource: str
    profile: HospitalProfile
    name: str
    npi: str
    tin: str
    street: str
    city: str
    state: str
    zip_code: str
    # Interchange sender / submitter: the hospital itself, or the clearinghouse it bills through.
    submitter_id: str
    submitter_name: str
    file_prefix: str | None  # None: the file names do not tell the hospital

    def claims_name(self, kind: str, number: int) -> str:
        head = f"{self.file_prefix}_837{kind}" if self.file_prefix else f"claims_837{kind}"
        return f"{head}_{number}.x12"

    def remit_name(self, payer: str, number: int, batch: int | None = None) -> str:
        head = f"{self.file_prefix}_835_{payer}" if self.file_prefix else f"remit_{payer}"
        tail = f"batch{batch}_{number}" if batch is not None else str(number)
        return f"{head}_{tail}.x12"


HOSPITAL_A_NPI = "1234567893"
HOSPITAL_A_TIN = "111111111"
# 1598765436 (first proposed) fails the NPI Luhn check (80840 prefix); 1598765430 passes.
HOSPITAL_B_NPI = "1598765430"
HOSPITAL_B_TIN = "222222222"

HOSPITAL_A = X12Hospital(
    datasource="hos-a",
    profile=SAMPLE_HOSPITALS[0],
    name="HEALTHCARE RCM HOSPITAL A",
    npi=HOSPITAL_A_NPI,
    tin=HOSPITAL_A_TIN,
    street="100 MAIN STREET",
    city="SPRINGFIELD",
    state="IL",
    zip_code="627010001",
    submitter_id="HOSPITAL1",
    submitter_name="HEALTHCARE RCM HOSPITAL A",
    file_prefix="hospital1",
)
HOSPITAL_B = X12Hospital(
    datasource="hos-b",
    profile=SAMPLE_HOSPITALS[1],
    name="HEALTHCARE RCM HOSPITAL B",
    npi=HOSPITAL_B_NPI,
    tin=HOSPITAL_B_TIN,
    street="200 OAK AVENUE",
    city="RIVERSIDE",
    state="CA",
    zip_code="925010002",
    submitter_id="RCMCLEARING01",
    submitter_name="RCM CLEARINGHOUSE",
    file_prefix=None,
)
X12_HOSPITALS: tuple[X12Hospital, ...] = (HOSPITAL_A, HOSPITAL_B)

CLEARINGHOUSE_ID = "RCMCLEARING01"
CLEARINGHOUSE_NAME = "RCM CLEARINGHOUSE"

# PAYER001..PAYER009 (see generator.payer_numbers); PAYER010 is self-pay and never billed.
PAYER_NAMES: dict[str, str] = {
    "PAYER001": "MEDICARE",
    "PAYER002": "MEDICAID",
    "PAYER003": "BLUE RIVER HEALTH",
    "PAYER004": "SUMMIT CARE INSURANCE",
    "PAYER005": "HORIZON MUTUAL",
    "PAYER006": "PINNACLE HEALTH PLAN",
    "PAYER007": "EVERGREEN ASSURANCE",
    "PAYER008": "LIBERTY MEDICAL",
    "PAYER009": "CORNERSTONE HEALTH",
}
SELF_PAY = "Self-Pay"

CLAIMS_PER_SCALE = 300
MIN_CLAIMS = 20
CLAIMS_PER_837 = 50
CLAIMS_PER_835 = 10
CHANGE_REVERSALS = 2  # per hospital and change batch
CHANGE_OVERTURNED_DENIALS = 1
CHANGE_BATCH_BASE_DAY = date(2026, 2, 1)
BATCH_CONTROL_BASE = 1_000_000  # batch b's interchanges are numbered from b * this

_S_SELECT, _S_DETAIL, _S_DENIAL, _S_LAG = 1, 2, 3, 4
_S_CHANGE = 10

# Denial reason (CARC) -> remark code (RARC) sent in LQ*HE.
DENIALS: tuple[tuple[str, str], ...] = (
    ("16", "M51"),
    ("50", "N115"),
    ("97", "M15"),
    ("197", "M62"),
)
REJECTED_REMARK = "MA130"  # claim-level CO-16 for claims the CSV says were rejected

_CATEGORY_REVENUE: dict[str, str] = {
    ref.EM: "0510",
    ref.ANESTHESIA: "0370",
    ref.SURGERY: "0360",
    ref.RADIOLOGY: "0320",
    ref.LAB: "0300",
    ref.MEDICINE: "0940",
    ref.CATEGORY_III: "0940",
}
_PLACE_OF_SERVICE: dict[str, str] = {
    "Outpatient": "22",
    "Emergency": "23",
    "Telehealth": "10",
    "Follow-up": "11",
}
INSTITUTIONAL_VISIT = "Inpatient"

# ---------------------------------------------------------------------------------------------
# Segments and envelopes

Element = str | tuple[str, ...]  # a tuple is a composite
Segment = tuple[Element, ...]


@dataclass(frozen=True)
class Separators:
    element: str = "*"
    component: str = ":"
    repetition: str = "^"
    terminator: str = "~"
    newline: str = "\n"


STANDARD = Separators()
# One file proves separator handling: pipes, another component separator, no line breaks.
PIPES = Separators(element="|", component=">", newline="")

_UNSAFE = re.compile(r"[^A-Z0-9 &'()+,\-./;?=]")


def clean(text: str) -> str:
    """Upper-case text with nothing a separator could use, as payers expect."""
    return re.sub(r"\s+", " ", _UNSAFE.sub("", text.upper())).strip()


def render(segment: Segment, seps: Separators) -> str:
    parts = [
        seps.component.join(e).rstrip(seps.component) if isinstance(e, tuple) else e
        for e in segment
    ]
    while parts and parts[-1] == "":
        parts.pop()
    return seps.element.join(parts) + seps.terminator + seps.newline


def money(cents: int) -> str:
    """X12 decimal: no trailing zeros, as the standard prefers."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}" if frac == 0 else f"{sign}{whole}.{frac:02d}".rstrip("0")


def d8(day: date) -> str:
    return day.strftime("%Y%m%d")


def hhmm(sequence: int) -> str:
    minutes = 6 * 60 + (sequence * 7) % (12 * 60)
    return f"{minutes // 60:02d}{minutes % 60:02d}"


@dataclass(frozen=True)
class TransactionSet:
    segments: list[Segment]  # between ST and SE, exclusive


@dataclass(frozen=True)
class Group:
    functional_id: str  # HC (837) or HP (835)
    version: str  # 005010X222A1 ...
    sets: list[TransactionSet]


@dataclass(frozen=True)
class Interchange:
    sender: str
    receiver: str
    day: date
    groups: list[Group]


class ControlNumbers:
    """ISA13 / GS06 counters, unique across everything one call writes."""

    def __init__(self, start: int) -> None:
        self.interchange = start
        self.group = start

    def next_interchange(self) -> int:
        self.interchange += 1
        return self.interchange

    def next_group(self) -> int:
        self.group += 1
        return self.group


def envelope(
    interchanges: Sequence[Interchange], controls: ControlNumbers, seps: Separators, seq: int
) -> str:
    out: list[str] = []
    for interchange in interchanges:
        isa_no = controls.next_interchange()
        time = hhmm(seq + isa_no)
        isa = (
            "ISA",
            "00",
            " " * 10,
            "00",
            " " * 10,
            "ZZ",
            f"{interchange.sender:<15}",
            "ZZ",
            f"{interchange.receiver:<15}",
            interchange.day.strftime("%y%m%d"),
            time,
            seps.repetition,
            "00501",
            f"{isa_no:09d}",
            "0",
            "P",
            seps.component,
        )
        # ISA is fixed width: render it raw so no trailing element is dropped.
        out.append(seps.element.join(isa) + seps.terminator + seps.newline)
        for group in interchange.groups:
            gs_no = controls.next_group()
            out.append(
                render(
                    (
                        "GS",
                        group.functional_id,
                        interchange.sender,
                        interchange.receiver,
                        d8(interchange.day),
                        time,
                        str(gs_no),
                        "X",
                        group.version,
                    ),
                    seps,
                )
            )
            for number, tset in enumerate(group.sets, start=1):
                st_no = f"{number:04d}"
                kind = "835" if group.functional_id == "HP" else "837"
                # The 835 guide (X221A1) does not use ST03; the 837 guides require it.
                st: Segment = (
                    ("ST", kind, st_no) if kind == "835" else ("ST", kind, st_no, group.version)
                )
                body = [st, *tset.segments]
                out.extend(render(s, seps) for s in body)
                out.append(render(("SE", str(len(body) + 1), st_no), seps))
            out.append(render(("GE", str(len(group.sets)), str(gs_no)), seps))
        out.append(render(("IEA", str(len(interchange.groups)), f"{isa_no:09d}"), seps))
    return "".join(out)


def read_segments(text: str) -> list[list[str]]:
    """Segments of an X12 text as element lists, separators taken from its ISA (composites are
    left joined by their component separator)."""
    start = text.index("ISA")
    element, terminator = text[start + 3], text[start + 105]
    segments = []
    for raw in text[start:].split(terminator):
        raw = raw.strip("\r\n ")
        if raw:
            segments.append(raw.split(element))
    return segments


def component_separator(text: str) -> str:
    start = text.index("ISA")
    return text[start + 104]


# ---------------------------------------------------------------------------------------------
# The claims as billed


@dataclass(frozen=True)
class Patient:
    patient_id: str
    last: str
    first: str
    middle: str
    dob: date
    gender: str
    street: str
    city: str
    state: str
    zip_code: str


@dataclass(frozen=True)
class Provider:
    last: str
    first: str
    npi: str


@dataclass(frozen=True)
class Line:
    code: str
    revenue: str  # used by 837I / 835 SVC04 only
    charge: int
    day: date
    control: str  # REF*6R


@dataclass(frozen=True)
class Claim:
    claim_id: str
    status: str  # the claims CSV ClaimStatus
    payer: str
    line_of_business: str
    institutional: bool
    place: str  # 837P place of service / 837I facility type
    icd: str  # without its dot
    from_day: date
    to_day: date
    claim_day: date
    remit_day: date
    patient: Patient
    provider: Provider | None
    lines: tuple[Line, ...]
    paid: int
    deductible: int
    coinsurance: int
    copay: int
    denial: tuple[str, str]

    @property
    def charge(self) -> int:
        return sum(line.charge for line in self.lines)

    @property
    def remitted(self) -> bool:
        return self.status != "Pending"


def claim_count(scale: float) -> int:
    return max(MIN_CLAIMS, round(CLAIMS_PER_SCALE * scale))


def cents(column: str) -> pl.Expr:
    return (pl.col(column) * 100).round(0).cast(pl.Int64)


_ADDRESS = r"^(.+), ([^,]+), ([A-Z]{2}) (\d{5})$"
# USPS state codes pyx12's code list knows: it lacks PW (Palau), which the sample addresses use.
X12_STATES = frozenset((
    "AA", "AE", "AK", "AL", "AP", "AR", "AS", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "FM", "GA",
    "GU", "HI", "IA", "ID", "IL", "IN", "KS", "KY", "LA", "MA", "MD", "ME", "MH", "MI", "MN", "MO",
    "MP", "MS", "MT", "NC", "ND", "NE", "NH", "NJ", "NM", "NV", "NY", "OH", "OK", "OR", "PA", "PR",
    "RI", "SC", "SD", "TN", "TX", "UT", "VA", "VI", "VT", "WA", "WI", "WV", "WY",
))  # fmt: skip


def read_claims_csv(path: Path) -> pl.DataFrame:
    frame = pl.read_csv(path, infer_schema_length=0)  # all text: ids keep their zeros
    money_cols = ("ClaimAmount", "PaidAmount", "Deductible", "Coinsurance", "Copay")
    return frame.with_columns(
        *(pl.col(c).cast(pl.Float64, strict=False) for c in money_cols),
        pl.col("ServiceDate").str.to_date(strict=False),
        pl.col("ClaimDate").str.to_date(strict=False),
    ).with_columns(*(cents(c).alias(c) for c in money_cols))


def read_table(db: SampleDatabase, table: str, columns: Sequence[str]) -> pl.DataFrame:
    cols = ", ".join(quote_ident(c) for c in columns)
    rows = db.fetch_all(f"SELECT {cols} FROM {db.table(table)}")
    return pl.DataFrame(
        [tuple(None if v is None else str(v) for v in row) for row in rows],
        schema=dict.fromkeys(columns, pl.String),
        orient="row",
    )


def source_frames(
    home: Path, profile: HospitalProfile, target: str | None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(transactions, patients, providers) of one hospital, with the EMR's column names mapped
    to one layout."""
    path = sqlite_path(home, profile.database)
    if target is None and not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `rcm generate` first")
    db = open_sqlite(path) if target is None else open_server(target, profile.database)
    with db:
        transactions = read_table(
            db,
            "transactions",
            ("TransactionID", "ClaimID", "VisitType", "ProcedureCode", "ICDCode", "PaidDate"),
        )
        names = (
            ("PatientID", "FirstName", "LastName", "MiddleName")
            if profile.patient_layout == "a"
            else ("ID", "F_Name", "L_Name", "M_Name")
        )
        patients = read_table(db, "patients", (*names, "Gender", "DOB", "Address")).rename(
            dict(zip(names, ("PatientID", "FirstName", "LastName", "MiddleName"), strict=True))
        )
        providers = read_table(db, "providers", ("ProviderID", "FirstName", "LastName", "NPI"))
    return transactions, patients, providers


def eligible_claims(
    claims: pl.DataFrame,
    transactions: pl.DataFrame,
    patients: pl.DataFrame,
    providers: pl.DataFrame,
) -> pl.DataFrame:
    """Claims billable to a payer with every field the X12 files need; in ClaimID order."""
    patients = (
        patients.filter(
            pl.col("PatientID").is_not_null()
            & pl.col("DOB").is_not_null()
            & pl.col("FirstName").is_not_null()
            & ~pl.col("FirstName").str.to_lowercase().is_in(["null", ""])
            & pl.col("LastName").is_not_null()
            & pl.col("Gender").is_in(["M", "F"])
            & pl.col("Address").str.contains(_ADDRESS)
            & pl.col("Address").str.extract(_ADDRESS, 3).is_in(list(X12_STATES))
        )
        .unique("PatientID", keep="first")
        .with_columns(pl.col("DOB").str.slice(0, 10).str.to_date(strict=False))
    )
    providers = providers.rename(
        {"FirstName": "ProvFirst", "LastName": "ProvLast", "NPI": "ProvNPI"}
    ).unique("ProviderID", keep="first")
    needed = ["ClaimID", "TransactionID", "PatientID", "ServiceDate", "ClaimDate", "PayorID"]
    needed += ["ClaimAmount", "PaidAmount", "ClaimStatus", "PayorType"]
    needed += ["Deductible", "Coinsurance", "Copay"]
    patient_share = pl.col("Deductible") + pl.col("Coinsurance") + pl.col("Copay")
    return (
        claims.drop_nulls(needed)
        .filter(
            (pl.col("PayorType") != SELF_PAY)
            & pl.col("PayorID").is_in(list(PAYER_NAMES))
            & pl.col("ClaimStatus").is_in(list(ref.CLAIM_STATUSES))
            & (pl.col("ClaimAmount") > 0)
            # Claims whose numbers cannot balance (paid + patient share above the charge).
            & (pl.col("PaidAmount") + patient_share <= pl.col("ClaimAmount"))
            & (
                ~pl.col("ClaimStatus").is_in(["Paid", "Partially Paid"])
                | (pl.col("PaidAmount") > 0)
            )
        )
        .unique("ClaimID", keep="first")
        .join(
            transactions.drop_nulls(["VisitType", "ProcedureCode", "ICDCode"]).unique(
                "TransactionID", keep="first"
            ),
            on=["TransactionID", "ClaimID"],
            how="inner",
        )
        .join(patients, on="PatientID", how="inner")
        .join(providers, on="ProviderID", how="left")
        .sort("ClaimID")
    )


def select_claims(eligible: pl.DataFrame, count: int, seed: int, key: int) -> pl.DataFrame:
    rng = rng_for(seed, key, _S_SELECT)
    take = min(count, eligible.height)
    picked = np.sort(rng.choice(eligible.height, size=take, replace=False))
    return eligible[picked]


def build_claims(frame: pl.DataFrame, seed: int, key: int) -> list[Claim]:
    """Claim objects for the selected rows; per-claim randomness drawn in one vectorised go."""
    n = frame.height
    rng = rng_for(seed, key, _S_DETAIL)
    n_lines = rng.integers(1, 4, n)
    weights = rng.uniform(1.0, 3.0, (n, 3))
    codes, _ = active_cpt()
    category = {code: cat for cat, code, _, _ in ref.CPT_CODES}
    # Further lines bill codes of the principal code's category, so a claim stays coherent.
    by_category: dict[str, list[str]] = {}
    for code in codes:
        by_category.setdefault(category[code], []).append(code)
    extra_pick = rng.random((n, 2))
    stay = rng.integers(1, 6, n)
    denial = rng_for(seed, key, _S_DENIAL).integers(0, len(DENIALS), n)
    lag = rng_for(seed, key, _S_LAG).integers(7, 46, n)
    out = []
    for i, row in enumerate(frame.iter_rows(named=True)):
        claim_day: date = row["ClaimDate"]
        service: date = row["ServiceDate"]
        institutional = row["VisitType"] == INSTITUTIONAL_VISIT
        # An inpatient stay ends by the day it is billed.
        to_day = min(service + timedelta(days=int(stay[i])), max(claim_day, service))
        to_day = to_day if institutional else service
        siblings = by_category.get(category.get(row["ProcedureCode"], ""), codes)
        extras = (siblings[int(u * len(siblings))] for u in extra_pick[i])
        line_codes = [row["ProcedureCode"], *extras][: n_lines[i]]
        charges = split_cents(row["ClaimAmount"], weights[i, : n_lines[i]])
        lines = tuple(
            Line(
                code=code,
                revenue=_CATEGORY_REVENUE.get(category.get(code, ""), "0940"),
                charge=charge,
                day=service + timedelta(days=k) if k <= (to_day - service).days else to_day,
                control=f"{row['ClaimID']}-{k + 1}",
            )
            for k, (code, charge) in enumerate(zip(line_codes, charges, strict=True))
        )
        out.append(
            Claim(
                claim_id=row["ClaimID"],
                status=row["ClaimStatus"],
                payer=row["PayorID"],
                line_of_business=row["PayorType"],
                institutional=institutional,
                place="11" if institutional else _PLACE_OF_SERVICE.get(row["VisitType"], "22"),
                icd=row["ICDCode"].replace(".", ""),
                from_day=service,
                to_day=to_day,
                claim_day=claim_day,
                remit_day=remit_day(row, claim_day, int(lag[i])),
                patient=patient_of(row),
                provider=provider_of(row),
                lines=lines,
                paid=row["PaidAmount"],
                deductible=row["Deductible"],
                coinsurance=row["Coinsurance"],
                copay=row["Copay"],
                denial=DENIALS[int(denial[i])],
            )
        )
    return out


def remit_day(row: dict, claim_day: date, lag: int) -> date:
    """When the payer adjudicated: the EMR's paid date when it is plausible, else a lag."""
    paid = row.get("PaidDate")
    if paid:
        day = date.fromisoformat(str(paid)[:10])
        if day >= claim_day:
            return day
    return min(claim_day + timedelta(days=lag), date(2026, 1, 31))


def patient_of(row: dict) -> Patient:
    match = re.match(_ADDRESS, row["Address"])
    assert match is not None  # eligible_claims filtered on the same pattern
    street, city, state, zip_code = match.groups()
    return Patient(
        patient_id=row["PatientID"],
        last=clean(row["LastName"]),
        first=clean(row["FirstName"]),
        middle=clean(row["MiddleName"] or "")[:25],
        dob=row["DOB"],
        gender=row["Gender"],
        street=clean(street)[:55],
        city=clean(city)[:30],
        state=state,
        zip_code=zip_code,
    )


def provider_of(row: dict) -> Provider | None:
    if not (row.get("ProvNPI") and row.get("ProvLast")):
        return None
    return Provider(clean(row["ProvLast"]), clean(row["ProvFirst"] or ""), row["ProvNPI"])


def split_cents(total: int, weights: np.ndarray) -> list[int]:
    """``total`` split by ``weights`` into whole cents that sum to it exactly."""
    shares = [int(total * w // weights.sum()) for w in weights]
    shares[0] += total - sum(shares)
    return shares


# ---------------------------------------------------------------------------------------------
# 837


def filing_code(claim: Claim) -> str:
    """SBR09 claim filing indicator."""
    if claim.line_of_business == "Medicare":
        return "MA" if claim.institutional else "MB"
    return "MC" if claim.line_of_business == "Medicaid" else "CI"


def billing_provider(hospital: X12Hospital) -> list[Segment]:
    return [
        ("HL", "1", "", "20", "1"),
        ("NM1", "85", "2", hospital.name, "", "", "", "", "XX", hospital.npi),
        ("N3", hospital.street),
        ("N4", hospital.city, hospital.state, hospital.zip_code),
        ("REF", "EI", hospital.tin),
    ]


def subscriber(claim: Claim, hl: int) -> list[Segment]:
    p = claim.patient
    return [
        ("HL", str(hl), "1", "22", "0"),
        ("SBR", "P", "18", "", "", "", "", "", "", filing_code(claim)),
        ("NM1", "IL", "1", p.last, p.first, p.middle, "", "", "MI", p.patient_id),
        ("N3", p.street),
        ("N4", p.city, p.state, p.zip_code),
        ("DMG", "D8", d8(p.dob), p.gender),
        ("NM1", "PR", "2", PAYER_NAMES[claim.payer], "", "", "", "", "PI", claim.payer),
    ]


def clm(claim: Claim, facility_qualifier: str, signature: str) -> Segment:
    """CLM, frequency 1 (original); the 837I has no provider signature indicator (CLM06)."""
    location = (claim.place, facility_qualifier, "1")
    return ("CLM", claim.claim_id, money(claim.charge), "", "", location, signature, "A", "Y", "Y")


def professional_claim(claim: Claim) -> list[Segment]:
    segments: list[Segment] = [
        clm(claim, "B", "Y"),
        ("HI", ("ABK", claim.icd)),
    ]
    if claim.provider:
        pr = claim.provider
        segments.append(("NM1", "82", "1", pr.last, pr.first, "", "", "", "XX", pr.npi))
    for number, line in enumerate(claim.lines, start=1):
        segments += [
            ("LX", str(number)),
            ("SV1", ("HC", line.code), money(line.charge), "UN", "1", "", "", ("1",)),
            ("DTP", "472", "D8", d8(line.day)),
            ("REF", "6R", line.control),
        ]
    return segments


def institutional_claim(claim: Claim) -> list[Segment]:
    segments: list[Segment] = [
        clm(claim, "A", ""),
        ("DTP", "434", "RD8", f"{d8(claim.from_day)}-{d8(claim.to_day)}"),
        ("DTP", "435", "D8", d8(claim.from_day)),
        ("CL1", "1", "7", "01"),  # emergency admission, from the ER, discharged home
        ("HI", ("ABK", claim.icd)),
        ("HI", ("ABJ", claim.icd)),
    ]
    if claim.provider:
        pr = claim.provider
        segments.append(("NM1", "71", "1", pr.last, pr.first, "", "", "", "XX", pr.npi))
    for number, line in enumerate(claim.lines, start=1):
        segments += [
            ("LX", str(number)),
            ("SV2", line.revenue, ("HC", line.code), money(line.charge), "UN", "1"),
            ("DTP", "472", "D8", d8(line.day)),
            ("REF", "6R", line.control),
        ]
    return segments


def claims_set(hospital: X12Hospital, claims: Sequence[Claim], batch_id: str) -> TransactionSet:
    day = max(c.claim_day for c in claims)
    segments: list[Segment] = [
        ("BHT", "0019", "00", batch_id, d8(day), "0800", "CH"),
        ("NM1", "41", "2", hospital.submitter_name, "", "", "", "", "46", hospital.submitter_id),
        ("PER", "IC", "EDI SUPPORT", "TE", "8005550100"),
        ("NM1", "40", "2", CLEARINGHOUSE_NAME, "", "", "", "", "46", CLEARINGHOUSE_ID),
        *billing_provider(hospital),
    ]
    for hl, claim in enumerate(claims, start=2):
        segments += subscriber(claim, hl)
        segments += institutional_claim(claim) if claim.institutional else professional_claim(claim)
    return TransactionSet(segments)


# ---------------------------------------------------------------------------------------------
# 835 adjudication

Adjustment = tuple[str, str, int]  # (group, reason, cents)


@dataclass(frozen=True)
class LineRemit:
    code: str
    revenue: str
    charge: int
    paid: int
    day: date
    control: str
    adjustments: tuple[Adjustment, ...]
    remark: str = ""


@dataclass(frozen=True)
class ClaimRemit:
    claim_id: str
    status: str  # CLP02
    charge: int
    paid: int
    patient_share: int
    filing: str  # CLP06
    control: str  # CLP07 payer claim control number
    place: str  # CLP08
    patient_segment: Segment  # NM1*QC as sent
    provider_segment: Segment | None  # NM1*82
    received: date  # DTM*050
    adjustments: tuple[Adjustment, ...] = ()  # claim level
    remark: str = ""  # MOA03
    lines: tuple[LineRemit, ...] = ()


def remit_filing(claim: Claim) -> str:
    """CLP06 (the 835 list has no CI: commercial plans report as PPO, 12)."""
    if claim.line_of_business == "Medicare":
        return "MA" if claim.institutional else "MB"
    return "MC" if claim.line_of_business == "Medicaid" else "12"


def payer_control(claim_id: str, payer: str, hospital: X12Hospital, version: int) -> str:
    digits = re.sub(r"\D", "", claim_id)
    return f"{payer[-3:]}{hospital.datasource[-1].upper()}{digits}{version:02d}"


def allocate(total: int, charges: Sequence[int], room: Sequence[int]) -> list[int]:
    """``total`` over lines in proportion to their charges, never above a line's ``room``."""
    whole = sum(charges) or 1
    out = [min(r, total * c // whole) for c, r in zip(charges, room, strict=True)]
    rest = total - sum(out)
    for i, r in enumerate(room):
        step = min(rest, r - out[i])
        out[i] += step
        rest -= step
    if rest:
        raise ValueError(f"cannot place {rest} cents on lines with room {list(room)}")
    return out


def paid_lines(lines: Sequence[Line], paid: int, shares: Sequence[tuple[str, int]]) -> list[tuple]:
    """Per line: (paid, adjustments) with paid + adjustments = charge; the rest is CO-45."""
    charges = [line.charge for line in lines]
    room = list(charges)
    line_paid = allocate(paid, charges, room)
    room = [r - p for r, p in zip(room, line_paid, strict=True)]
    adjustments: list[list[Adjustment]] = [[] for _ in lines]
    for reason, amount in shares:
        part = allocate(amount, charges, room)
        for i, value in enumerate(part):
            if value:
                adjustments[i].append(("PR", reason, value))
        room = [r - v for r, v in zip(room, part, strict=True)]
    for i, rest in enumerate(room):
        if rest:
            adjustments[i].append(("CO", "45", rest))
    return list(zip(line_paid, adjustments, strict=True))


def patient_segment(patient: Patient) -> Segment:
    p = patient
    return ("NM1", "QC", "1", p.last, p.first, p.middle, "", "", "MI", p.patient_id)


def provider_segment(provider: Provider | None) -> Segment | None:
    if provider is None:
        return None
    return ("NM1", "82", "1", provider.last, provider.first, "", "", "", "XX", provider.npi)


def adjudicate(claim: Claim, hospital: X12Hospital, *, paid: int | None = None) -> ClaimRemit:
    """The payer's answer to a claim, from the claims CSV outcome (``paid`` overrides the paid
    amount, the difference going to or coming from the contractual adjustment)."""
    base = ClaimRemit(
        claim_id=claim.claim_id,
        status="1",
        charge=claim.charge,
        paid=0,
        patient_share=0,
        filing=remit_filing(claim),
        control=payer_control(claim.claim_id, claim.payer, hospital, 1),
        place=claim.place,
        patient_segment=patient_segment(claim.patient),
        provider_segment=provider_segment(claim.provider),
        received=claim.claim_day,
    )
    if claim.status == "Rejected":
        return replace(
            base,
            status="4",
            adjustments=(("CO", "16", claim.charge),),
            remark=REJECTED_REMARK,
        )
    if claim.status == "Denied":
        reason, remark = claim.denial
        lines = tuple(
            line_remit(line, 0, (("CO", reason, line.charge),), remark) for line in claim.lines
        )
        return replace(base, status="4", lines=lines)
    paid = claim.paid if paid is None else paid
    shares = (("1", claim.deductible), ("2", claim.coinsurance), ("3", claim.copay))
    lines = tuple(
        line_remit(line, line_paid, tuple(adj))
        for line, (line_paid, adj) in zip(
            claim.lines, paid_lines(claim.lines, paid, shares), strict=True
        )
    )
    share = claim.deductible + claim.coinsurance + claim.copay
    return replace(base, paid=paid, patient_share=share, lines=lines)


def line_remit(
    line: Line, paid: int, adjustments: tuple[Adjustment, ...], remark: str = ""
) -> LineRemit:
    return LineRemit(
        line.code, line.revenue, line.charge, paid, line.day, line.control, adjustments, remark
    )


def negate(remit: ClaimRemit) -> ClaimRemit:
    """The reversal (CLP02 22) of an earlier remittance: every amount with its sign flipped."""

    def flip(adjustments: tuple[Adjustment, ...]) -> tuple[Adjustment, ...]:
        return tuple((g, r, -a) for g, r, a in adjustments)

    return replace(
        remit,
        status="22",
        charge=-remit.charge,
        paid=-remit.paid,
        patient_share=-remit.patient_share,
        adjustments=flip(remit.adjustments),
        lines=tuple(
            replace(line, charge=-line.charge, paid=-line.paid, adjustments=flip(line.adjustments))
            for line in remit.lines
        ),
    )


def repay(remit: ClaimRemit, paid: int, control: str, status: str = "1") -> ClaimRemit:
    """``remit`` re-adjudicated to pay ``paid``: the difference moves between the payment and
    the contractual adjustment (CO-45), line by line."""
    lines = list(remit.lines)
    contractual = [
        sum(a for g, r, a in line.adjustments if (g, r) == ("CO", "45")) for line in lines
    ]
    delta = paid - remit.paid
    if delta > 0:
        move = allocate(delta, [line.charge for line in lines], contractual)
    else:
        move = [
            -m
            for m in allocate(
                -delta, [line.charge for line in lines], [line.paid for line in lines]
            )
        ]
    new_lines = []
    for line, step in zip(lines, move, strict=True):
        kept = tuple(a for a in line.adjustments if a[:2] != ("CO", "45"))
        co45 = sum(a for g, r, a in line.adjustments if (g, r) == ("CO", "45")) - step
        adjustments = kept + ((("CO", "45", co45),) if co45 else ())
        new_lines.append(replace(line, paid=line.paid + step, adjustments=adjustments))
    return replace(remit, status=status, paid=paid, control=control, lines=tuple(new_lines))


def overturn(remit: ClaimRemit, control: str, copay: int) -> ClaimRemit:
    """A denied remittance paid on appeal: 70 % allowed, the copay to the patient."""
    paid = max(1, remit.charge * 7 // 10 - copay)
    copay = min(copay, remit.charge - paid)
    base_lines = [Line(x.code, x.revenue, x.charge, x.day, x.control) for x in remit.lines]
    allocation = paid_lines(base_lines, paid, (("3", copay),))
    lines = tuple(
        replace(x, paid=p, adjustments=tuple(adj), remark="")
        for x, (p, adj) in zip(remit.lines, allocation, strict=True)
    )
    return replace(remit, status="1", paid=paid, patient_share=copay, control=control, lines=lines)


def cas_segments(adjustments: Iterable[Adjustment]) -> list[Segment]:
    """One CAS per group code, up to six reasons each."""
    by_group: dict[str, list[Adjustment]] = {}
    for adj in adjustments:
        by_group.setdefault(adj[0], []).append(adj)
    out: list[Segment] = []
    for group, items in by_group.items():
        for start in range(0, len(items), 6):
            body: list[Element] = []
            for _, reason, amount in items[start : start + 6]:
                body += [reason, money(amount), ""]
            out.append(("CAS", group, *body))
    return out


def remit_segments(remit: ClaimRemit) -> list[Segment]:
    segments: list[Segment] = [
        (
            "CLP",
            remit.claim_id,
            remit.status,
            money(remit.charge),
            money(remit.paid),
            money(remit.patient_share),
            remit.filing,
            remit.control,
            remit.place,
            "1",
        ),
        *cas_segments(remit.adjustments),
        remit.patient_segment,
    ]
    if remit.provider_segment:
        segments.append(remit.provider_segment)
    if remit.remark:
        segments.append(("MOA", "", "", remit.remark))
    segments.append(("DTM", "050", d8(remit.received)))
    for line in remit.lines:
        allowed = line.charge - sum(a for g, _, a in line.adjustments if g == "CO")
        segments.append(
            ("SVC", ("HC", line.code), money(line.charge), money(line.paid), line.revenue, "1")
        )
        segments.append(("DTM", "472", d8(line.day)))
        segments += cas_segments(line.adjustments)
        segments.append(("REF", "6R", line.control))
        segments.append(("AMT", "B6", money(allowed)))
        if line.remark:
            segments.append(("LQ", "HE", line.remark))
    return segments


@dataclass(frozen=True)
class Adjustment835:
    """A provider-level adjustment (PLB): negative amounts raise the payment."""

    code: str
    reference: str
    amount: int


@dataclass(frozen=True)
class Remittance:
    """One 835 transaction set: one payment (check / EFT) from one payer to one hospital."""

    hospital: X12Hospital
    payer: str
    day: date
    trace: str
    claims: tuple[ClaimRemit, ...]
    provider_adjustments: tuple[Adjustment835, ...] = ()

    @property
    def total(self) -> int:
        return sum(c.paid for c in self.claims) - sum(a.amount for a in self.provider_adjustments)


def payer_tin(payer: str) -> str:
    return f"{stable_key(payer) % 900_000_000 + 100_000_000:09d}"


def remittance_set(remit: Remittance) -> TransactionSet:
    total = remit.total
    if total < 0:
        raise ValueError(f"835 {remit.trace} would pay a negative amount")
    bpr: Segment = (
        ("BPR", "C", money(total), "C", "CHK", *[""] * 11, d8(remit.day))
        if total
        else ("BPR", "H", "0", "C", "NON", *[""] * 11, d8(remit.day))
    )
    hospital = remit.hospital
    number = int(remit.payer[-3:])
    segments: list[Segment] = [
        bpr,
        ("TRN", "1", remit.trace, f"1{payer_tin(remit.payer)}"),
        ("DTM", "405", d8(remit.day)),
        ("N1", "PR", PAYER_NAMES[remit.payer], "XV", remit.payer),
        ("N3", f"PO BOX {1000 + number * 37}"),
        ("N4", "COLUMBUS", "OH", f"43{number:03d}0001"),
        ("PER", "BL", "PROVIDER SERVICES", "TE", f"800555{number:04d}"),
        ("N1", "PE", hospital.name, "XX", hospital.npi),
        ("N3", hospital.street),
        ("N4", hospital.city, hospital.state, hospital.zip_code),
        ("REF", "TJ", hospital.tin),
        ("LX", "1"),
    ]
    for claim in remit.claims:
        segments += remit_segments(claim)
    if remit.provider_adjustments:
        plb: list[Element] = ["PLB", hospital.npi, f"{remit.day.year}1231"]
        for adj in remit.provider_adjustments:
            plb += [(adj.code, adj.reference), money(adj.amount)]
        segments.append(tuple(plb))
    return TransactionSet(segments)


# ---------------------------------------------------------------------------------------------
# Writing the base files


@dataclass(frozen=True)
class X12File:
    name: str
    interchanges: list[Interchange]
    separators: Separators = STANDARD


def chunked(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def claim_batches(claims: Sequence[Claim]) -> Iterator[tuple[str, str, int, Sequence[Claim]]]:
    """The 837 files' claims: (kind, version, number, claims), per kind CLAIMS_PER_837 at a
    time in claim-date order."""
    for kind, version, institutional in (
        ("P", "005010X222A1", False),
        ("I", "005010X223A2", True),
    ):
        mine = sorted(
            (c for c in claims if c.institutional == institutional),
            key=lambda c: (c.claim_day, c.claim_id),
        )
        for number, batch in enumerate(chunked(mine, CLAIMS_PER_837), start=1):
            yield kind, version, number, batch


def billing_weeks(batch: Sequence[Claim]) -> list[list[Claim]]:
    """A file's claims by the week they were billed in: one transaction set per week, dated
    (BHT04) the week's latest claim day."""
    weeks: dict[tuple[int, int], list[Claim]] = {}
    for claim in batch:
        weeks.setdefault(claim.claim_day.isocalendar()[:2], []).append(claim)
    return list(weeks.values())


def billed(claims: Sequence[Claim]) -> list[Claim]:
    """The claims, each adjudicated no earlier than it was billed (its transaction set's date):
    a payer cannot pay a claim before it is sent."""
    return [
        replace(claim, remit_day=max(claim.remit_day, day))
        for *_, batch in claim_batches(claims)
        for week in billing_weeks(batch)
        for day in [max(c.claim_day for c in week)]
        for claim in week
    ]


def claim_files(hospital: X12Hospital, claims: Sequence[Claim]) -> list[X12File]:
    files = []
    for kind, version, number, batch in claim_batches(claims):
        batch_id = f"{hospital.datasource.upper()}{kind}{number:04d}"
        day = max(c.claim_day for c in batch)
        sets = [
            claims_set(hospital, week, f"{batch_id}W{number:02d}")
            for number, week in enumerate(billing_weeks(batch), start=1)
        ]
        interchange = Interchange(
            hospital.submitter_id, CLEARINGHOUSE_ID, day, [Group("HC", version, sets)]
        )
        files.append(X12File(hospital.claims_name(kind, number), [interchange]))
    return files


def payer_remittances(
    hospital: X12Hospital, payer: str, claims: Sequence[Claim]
) -> list[Remittance]:
    """The payer's 835 payments to the hospital, in date order, each a run of its claims."""
    ordered = sorted(claims, key=lambda c: (c.remit_day, c.claim_id))
    # At least two payments whenever there are two claims, so files can hold two sets.
    size = min(CLAIMS_PER_835, max(1, math.ceil(len(ordered) / 2)))
    out = []
    for number, batch in enumerate(chunked(ordered, size), start=1):
        day = max(c.remit_day for c in batch)
        trace = f"{payer[-3:]}{hospital.datasource[-1].upper()}{d8(day)}{number:03d}"
        remits = tuple(adjudicate(c, hospital) for c in batch)
        out.append(Remittance(hospital, payer, day, trace, remits))
    return out


def with_readjudication(remittances: list[Remittance]) -> bool:
    """Turn one paid claim of the first payment into an underpayment that a later payment of
    the same payer reverses (CLP02 22) and pays correctly. False when no claim fits."""
    if len(remittances) < 2:
        return False
    first, last = remittances[0], remittances[-1]
    for i, remit in enumerate(first.claims):
        if remit.status != "1" or remit.paid < 10 or not remit.lines:
            continue
        under = repay(remit, remit.paid - remit.paid // 5, remit.control)
        hospital = first.hospital
        corrected = replace(remit, control=payer_control(remit.claim_id, first.payer, hospital, 2))
        changed = list(first.claims)
        changed[i] = under
        remittances[0] = replace(first, claims=tuple(changed))
        remittances[-1] = replace(last, claims=(*last.claims, negate(under), corrected))
        return True
    return False


def with_provider_adjustments(remittances: list[Remittance]) -> bool:
    """Interest (L6) and a forward-balance recoupment (FB) on the largest payment."""
    if not remittances:
        return False
    index = max(range(len(remittances)), key=lambda i: (remittances[i].total, -i))
    remit = remittances[index]
    paid = [c for c in remit.claims if c.paid > 0]
    if not paid or remit.total < 100:
        return False
    top = max(paid, key=lambda c: c.paid)
    interest = max(1, top.paid // 250)
    recoup = min(2500, remit.total // 10)
    plb = (
        Adjustment835("L6", top.claim_id, -interest),
        Adjustment835("FB", f"FB{remit.trace}", recoup),
    )
    remittances[index] = replace(remit, provider_adjustments=plb)
    return True


def remit_files(
    hospital: X12Hospital, claims: Sequence[Claim], *, batch: int | None = None
) -> list[X12File]:
    by_payer: dict[str, list[Claim]] = {}
    for claim in claims:
        if claim.remitted:
            by_payer.setdefault(claim.payer, []).append(claim)
    payments = {p: payer_remittances(hospital, p, cs) for p, cs in sorted(by_payer.items())}
    # One payer (the busiest that can) shows a reversal and re-adjudication, one a PLB.
    busiest = sorted(payments, key=lambda p: (-len(payments[p]), p))
    for payer in busiest:
        if with_readjudication(payments[payer]):
            break
    for payer in busiest:
        if with_provider_adjustments(payments[payer]):
            break
    files = []
    for payer, remittances in payments.items():
        files += payer_files(hospital, payer, remittances, batch=batch)
    return files


def payer_files(
    hospital: X12Hospital, payer: str, remittances: Sequence[Remittance], *, batch: int | None
) -> list[X12File]:
    """Payments paired into files, two then one then two...: a file holds one or two sets."""
    files = []
    index, number = 0, 1
    while index < len(remittances):
        take = 2 if number % 2 == 1 else 1
        group = remittances[index : index + take]
        day = max(r.day for r in group)
        sets = [remittance_set(r) for r in group]
        interchange = Interchange(
            payer, hospital.submitter_id, day, [Group("HP", "005010X221A1", sets)]
        )
        files.append(X12File(hospital.remit_name(payer, number, batch), [interchange]))
        index += take
        number += 1
    return files


def vary_envelopes(files: list[X12File]) -> list[X12File]:
    """Among one hospital's 835 files with two sets: the first puts each set in its own GS
    group, the second in its own interchange; the last 835 file uses pipes and no newlines."""
    out = list(files)
    doubles = [
        i
        for i, f in enumerate(out)
        if f.interchanges[0].groups[0].functional_id == "HP"
        and len(f.interchanges[0].groups[0].sets) == 2
    ]
    if doubles:
        f = out[doubles[0]]
        isa, group = f.interchanges[0], f.interchanges[0].groups[0]
        split = [replace(group, sets=[s]) for s in group.sets]
        out[doubles[0]] = replace(f, interchanges=[replace(isa, groups=split)])
    if len(doubles) > 1:
        f = out[doubles[1]]
        isa, group = f.interchanges[0], f.interchanges[0].groups[0]
        out[doubles[1]] = replace(
            f, interchanges=[replace(isa, groups=[replace(group, sets=[s])]) for s in group.sets]
        )
    return out


def write_files(folder: Path, files: Sequence[X12File], controls: ControlNumbers) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seq, f in enumerate(files):
        path = folder / f.name
        text = envelope(f.interchanges, controls, f.separators, seq)
        path.write_bytes(text.encode("ascii"))
        paths.append(path)
    return paths


def hospital_claims(
    home: Path, hospital: X12Hospital, *, seed: int, scale: float, target: str | None
) -> list[Claim]:
    key = stable_key(hospital.profile.id_prefix)
    claims = read_claims_csv(claims_csv_path(home, hospital.profile))
    transactions, patients, providers = source_frames(home, hospital.profile, target)
    eligible = eligible_claims(claims, transactions, patients, providers)
    chosen = select_claims(eligible, claim_count(scale), seed, key)
    return billed(build_claims(chosen, seed, key))


def x12_folder(home: Path) -> Path:
    return Path(home) / "landing" / "x12"


def write_x12_files(
    home: Path,
    *,
    seed: int = 42,
    scale: float = 1.0,
    target: str | None = None,
    hospitals: Sequence[HospitalProfile] = SAMPLE_HOSPITALS,
) -> list[Path]:
    """Write the sample 837P / 837I / 835 files of both hospitals into ``home/landing/x12``.

    Needs the claims CSVs and EMR sources of ``generate_sources`` (SQLite under ``home/sources``,
    or the databases on ``target``). Returns the written paths, hospital A's first.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    folder = x12_folder(home)
    for old in folder.glob("*.x12"):
        old.unlink()  # a regenerate must not leave files of a larger scale behind
    controls = ControlNumbers(0)
    paths: list[Path] = []
    for identity, profile in zip(X12_HOSPITALS, hospitals, strict=True):
        hospital = replace(identity, profile=profile)
        claims = hospital_claims(home, hospital, seed=seed, scale=scale, target=target)
        files = claim_files(hospital, claims) + vary_envelopes(remit_files(hospital, claims))
        if identity is HOSPITAL_B:
            files = with_pipes(files)
        paths += write_files(folder, files, controls)
    return paths


def with_pipes(files: list[X12File]) -> list[X12File]:
    last = max(
        (i for i, f in enumerate(files) if f.interchanges[0].groups[0].functional_id == "HP"),
        default=None,
    )
    if last is None:
        return files
    out = list(files)
    out[last] = replace(out[last], separators=PIPES)
    return out


# ---------------------------------------------------------------------------------------------
# Change batches: later 835s, read back from the files already written


@dataclass(frozen=True)
class PriorRemit:
    hospital: X12Hospital
    payer: str
    remit: ClaimRemit


_BATCH_NAME = re.compile(r"_batch(\d+)_\d+\.x12$")


def written_x12_files(folder: Path) -> list[Path]:
    """The X12 files written so far: still in landing, or already ingested (a run moves them
    to landing/processed/x12/<load id>/)."""
    processed = folder.parent / "processed" / folder.name
    return [*folder.glob("*.x12"), *processed.glob("*/*.x12")]


def next_batch(home: Path) -> int:
    """The number of the next change batch: one past the highest written so far."""
    return 1 + max((file_batch(p) for p in written_x12_files(x12_folder(home))), default=0)


def file_batch(path: Path) -> int:
    match = _BATCH_NAME.search(path.name)
    return int(match.group(1)) if match else 0


def parse_day(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def parse_cents(text: str) -> int:
    return round(float(text) * 100) if text else 0


def parse_adjustments(elements: list[str]) -> list[Adjustment]:
    group, out = elements[1], []
    for start in range(2, len(elements), 3):
        if start + 1 < len(elements) and elements[start]:
            out.append((group, elements[start], parse_cents(elements[start + 1])))
    return out


def element(seg: list[str], index: int) -> str:
    return seg[index] if index < len(seg) else ""


def parse_claim(block: list[list[str]], comp: str) -> ClaimRemit:
    """A CLP loop (CLP .. before the next CLP / PLB / SE) back into a ClaimRemit."""
    clp = block[0]
    claim_adjustments: list[Adjustment] = []
    lines: list[dict] = []
    fields: dict = {"provider": None, "remark": "", "received": None, "patient": ()}
    for seg in block[1:]:
        tag = seg[0]
        if tag == "SVC":
            code = seg[1].split(comp)[1]
            lines.append(
                {
                    "code": code,
                    "charge": parse_cents(seg[2]),
                    "paid": parse_cents(seg[3]),
                    "revenue": element(seg, 4),
                    "adjustments": [],
                    "remark": "",
                }
            )
        elif tag == "CAS":
            (lines[-1]["adjustments"] if lines else claim_adjustments).extend(
                parse_adjustments(seg)
            )
        elif tag == "NM1" and seg[1] == "QC":
            fields["patient"] = tuple(seg)
        elif tag == "NM1" and seg[1] == "82":
            fields["provider"] = tuple(seg)
        elif tag == "MOA":
            fields["remark"] = element(seg, 3)
        elif tag == "DTM" and seg[1] == "050":
            fields["received"] = parse_day(seg[2])
        elif tag == "DTM" and seg[1] == "472" and lines:
            lines[-1]["day"] = parse_day(seg[2])
        elif tag == "REF" and seg[1] == "6R" and lines:
            lines[-1]["control"] = seg[2]
        elif tag == "LQ" and lines:
            lines[-1]["remark"] = seg[2]
    return ClaimRemit(
        claim_id=clp[1],
        status=clp[2],
        charge=parse_cents(clp[3]),
        paid=parse_cents(clp[4]),
        patient_share=parse_cents(element(clp, 5)),
        filing=clp[6],
        control=clp[7],
        place=element(clp, 8),
        patient_segment=fields["patient"],
        provider_segment=fields["provider"],
        received=fields["received"],
        adjustments=tuple(claim_adjustments),
        remark=fields["remark"],
        lines=tuple(
            LineRemit(
                x["code"],
                x["revenue"],
                x["charge"],
                x["paid"],
                x["day"],
                x["control"],
                tuple(x["adjustments"]),
                x["remark"],
            )
            for x in lines
        ),
    )


def prior_remits(folder: Path, before_batch: int) -> list[PriorRemit]:
    """Every CLP of the 835s written so far (base files and earlier batches), in file order."""
    by_npi = {h.npi: h for h in X12_HOSPITALS}
    files = [p for p in written_x12_files(folder) if file_batch(p) < before_batch]
    out: list[PriorRemit] = []
    for path in sorted(files, key=lambda p: (file_batch(p), p.name)):
        text = path.read_text(encoding="ascii")
        comp = component_separator(text)
        hospital, payer, block = None, "", []
        for seg in read_segments(text):
            tag = seg[0]
            if tag in ("CLP", "PLB", "SE") and block:
                out.append(PriorRemit(hospital, payer, parse_claim(block, comp)))
                block = []
            if tag == "N1" and seg[1] == "PR":
                payer = element(seg, 4)
            elif tag == "N1" and seg[1] == "PE":
                hospital = by_npi.get(element(seg, 4))
            elif tag == "CLP" and hospital is not None:
                block = [seg]
            elif block:
                block.append(seg)
    return out


def change_candidates(
    prior: Sequence[PriorRemit], hospital: X12Hospital
) -> tuple[list[PriorRemit], list[PriorRemit]]:
    """Claims remitted exactly once so far: (paid ones, denied ones with service lines)."""
    counts: dict[str, int] = {}
    for p in prior:
        if p.hospital is hospital:
            counts[p.remit.claim_id] = counts.get(p.remit.claim_id, 0) + 1
    once = [p for p in prior if p.hospital is hospital and counts[p.remit.claim_id] == 1]
    paid = [p for p in once if p.remit.status == "1" and p.remit.paid > 0 and p.remit.lines]
    denied = [p for p in once if p.remit.status == "4" and p.remit.lines]
    return paid, denied


def pick(rng: np.random.Generator, items: Sequence[PriorRemit], count: int) -> list[PriorRemit]:
    if not items:
        return []
    chosen = np.sort(rng.choice(len(items), size=min(count, len(items)), replace=False))
    return [items[i] for i in chosen]


def changed_remits(
    hospital: X12Hospital, prior: Sequence[PriorRemit], *, seed: int, batch: int
) -> dict[str, list[ClaimRemit]]:
    """Per payer: reversals + re-adjudications of paid claims, and overturned denials."""
    rng = rng_for(seed, stable_key(hospital.profile.id_prefix), _S_CHANGE, batch)
    paid, denied = change_candidates(prior, hospital)
    out: dict[str, list[ClaimRemit]] = {}
    version = batch + 2  # base files use control versions 1 and 2
    for p in pick(rng, paid, CHANGE_REVERSALS):
        old = p.remit
        contractual = sum(a for line in old.lines for g, r, a in line.adjustments if g == "CO")
        # A successful appeal pays part of the write-off; without one, a recoupment.
        delta = contractual // 2 if contractual >= 2 else -(old.paid // 10)
        if delta == 0:
            continue
        control = payer_control(old.claim_id, p.payer, hospital, version)
        status = "2" if rng.random() < 0.3 else "1"
        out.setdefault(p.payer, []).extend(
            [negate(old), repay(old, old.paid + delta, control, status)]
        )
    for p in pick(rng, denied, CHANGE_OVERTURNED_DENIALS):
        control = payer_control(p.remit.claim_id, p.payer, hospital, version)
        copay = int(rng.integers(0, 5)) * 1000
        out.setdefault(p.payer, []).extend([negate(p.remit), overturn(p.remit, control, copay)])
    return out


def carry_forward(remittance: Remittance) -> Remittance:
    """A payment cannot be negative: when recoupments exceed the payments, a forward balance
    (PLB FB, negative) brings BPR02 to zero and the payer recovers it later."""
    if remittance.total >= 0:
        return remittance
    owed = Adjustment835("FB", f"FB{remittance.trace}", remittance.total)
    return replace(remittance, provider_adjustments=(*remittance.provider_adjustments, owed))


def write_x12_change_batch(home: Path, *, seed: int, batch: int) -> list[Path]:
    """Write change batch ``batch`` (1, 2, ...): later 835s that reverse (CLP02 22) and
    re-adjudicate some paid claims with another amount and pay a previously denied claim.

    Reads the 835s of ``write_x12_files`` and of earlier batches from ``home/landing/x12``, so
    each batch changes claims no earlier batch touched. Deterministic per (seed, batch) and files.
    """
    if batch < 1:
        raise ValueError(f"batch must be 1 or more, got {batch!r}")
    folder = x12_folder(home)
    prior = prior_remits(folder, batch)
    day = CHANGE_BATCH_BASE_DAY + timedelta(days=7 * (batch - 1))
    controls = ControlNumbers(batch * BATCH_CONTROL_BASE)
    files: list[X12File] = []
    for hospital in X12_HOSPITALS:
        for payer, remits in sorted(
            changed_remits(hospital, prior, seed=seed, batch=batch).items()
        ):
            trace = f"{payer[-3:]}{hospital.datasource[-1].upper()}{d8(day)}B{batch}"
            remittance = carry_forward(Remittance(hospital, payer, day, trace, tuple(remits)))
            interchange = Interchange(
                payer,
                hospital.submitter_id,
                day,
                [Group("HP", "005010X221A1", [remittance_set(remittance)])],
            )
            files.append(X12File(hospital.remit_name(payer, 1, batch), [interchange]))
    return write_files(folder, files, controls)
