"""Deterministic generator of hospital EMR sources plus claims / CPT landing files.

Everything is derived from fixed base dates and the seed (never the wall clock), so one seed
always yields byte-identical data. Big tables are generated and written in fixed-size chunks,
each chunk with its own seeded RNG, which keeps memory flat at any scale.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Literal

import numpy as np
import polars as pl

from . import reference_codes as ref
from . import schema
from .database import (
    SampleDatabase,
    check_target,
    database_uri,
    recreate_server,
    recreate_sqlite,
    sqlite_path,
)
from .synth import (
    NamePools,
    addresses,
    build_pools,
    day_number,
    days_to_dates,
    epoch_seconds,
    first_names,
    hash64,
    hash_unit,
    medicaid_ids,
    medicare_ids,
    money,
    npis,
    numbered,
    phones,
    pick,
    rng_for,
    salt_for,
    seconds_to_datetimes,
    ssns,
    stable_key,
)

__all__ = [
    "SAMPLE_HOSPITALS",
    "HospitalProfile",
    "TableCount",
    "database_uri",
    "generate_sources",
    "sqlite_path",
]


@dataclass(frozen=True)
class HospitalProfile:
    database: str
    id_prefix: str
    claims_file_prefix: str
    patient_layout: Literal["a", "b"]


SAMPLE_HOSPITALS: tuple[HospitalProfile, ...] = (
    HospitalProfile("healthcare-rcm-hospital-a", "HOSP1", "hospital1", "a"),
    HospitalProfile("healthcare-rcm-hospital-b", "HOSP2", "hospital2", "b"),
)


@dataclass(frozen=True)
class TableCount:
    database: str
    table: str
    rows: int
    updated: int = 0
    inserted: int = 0


CHUNK_ROWS = 500_000
PATIENTS_PER_SCALE = 5_000
ENCOUNTERS_PER_SCALE = 10_000
PROVIDERS_PER_SCALE = 50
MIN_PATIENTS = 5
MIN_ENCOUNTERS = 10
MIN_PROVIDERS = 5
ACTIVITY_ID_WIDTH = 8  # ENC/TRANS/CLAIM + 8 digits: room for 10M+ rows at every scale
PATIENT_ID_WIDTH = 6
PROVIDER_ID_WIDTH = 4
DEPARTMENT_ID_WIDTH = 3
ORPHAN_PATIENT_BASE = 99_000_000  # never reached by real patient numbers

SERVICE_FIRST_DAY = day_number(date(2024, 1, 1))
SERVICE_LAST_DAY = day_number(date(2025, 12, 31))
SNAPSHOT_DAY = day_number(date(2026, 1, 31))
SNAPSHOT_END = epoch_seconds(datetime(2026, 1, 31, 23, 59, 59))
PATIENT_MODIFIED_START = epoch_seconds(datetime(2022, 1, 1))
DOB_FIRST_DAY = day_number(date(1930, 1, 1))
DOB_LAST_DAY = day_number(date(2020, 12, 31))
AGE_REFERENCE_DAY = day_number(date(2025, 1, 1))

# Seed streams: every random quantity has its own stream so adding one never shifts the others.
_S_FAKER, _S_DEPARTMENTS, _S_PROVIDERS, _S_PATIENTS, _S_ACTIVITY = 1, 2, 3, 4, 5
_S_DOB, _S_GENDER, _S_INSURANCE, _S_PAYER, _S_MBI, _S_MEDICAID, _S_PATIENT_DEFECT = range(10, 17)

_LOB_MEDICARE, _LOB_MEDICAID, _LOB_COMMERCIAL, _LOB_SELF_PAY = range(4)
_PAID, _PARTIAL, _DENIED, _PENDING, _REJECTED = range(5)
_TYPE_CHARGE_FACTOR = np.array([1.0, 2.6, 1.7, 0.6, 0.8])  # aligned with ENCOUNTER_TYPES
_COPAYS = np.array([0.0, 10.0, 20.0, 25.0, 30.0, 40.0, 50.0])

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class HospitalPlan:
    """Sizes and seed material for one hospital; every generator function reads from it."""

    profile: HospitalProfile
    seed: int
    key: int
    defect_rate: float
    n_patients: int
    n_providers: int
    n_encounters: int

    @classmethod
    def create(
        cls, profile: HospitalProfile, *, scale: float, seed: int, defect_rate: float
    ) -> HospitalPlan:
        return cls(
            profile=profile,
            seed=seed,
            # Keyed on the id prefix so renamed test databases get the same data as the originals.
            key=stable_key(profile.id_prefix),
            defect_rate=defect_rate,
            n_patients=max(MIN_PATIENTS, round(PATIENTS_PER_SCALE * scale)),
            n_providers=max(MIN_PROVIDERS, round(PROVIDERS_PER_SCALE * max(1.0, scale**0.5))),
            n_encounters=max(MIN_ENCOUNTERS, round(ENCOUNTERS_PER_SCALE * scale)),
        )

    def rng(self, stream: int, chunk: int = 0) -> np.random.Generator:
        return rng_for(self.seed, self.key, stream, chunk)

    def salt(self, stream: int) -> int:
        return salt_for(self.seed, self.key, stream)

    def patient_ids(self, numbers: np.ndarray) -> pl.Series:
        return numbered(f"{self.profile.id_prefix}-", numbers, PATIENT_ID_WIDTH)


@dataclass(frozen=True)
class Reference:
    """Small per-hospital lookup data shared by every activity chunk."""

    department_ids: pl.Series
    provider_ids: pl.Series
    provider_dept: np.ndarray  # department index of each provider
    cpt_codes: pl.Series  # active codes only
    cpt_charge: np.ndarray
    icd_codes: pl.Series


# ---------------------------------------------------------------------------------------------
# Reference data


def active_cpt() -> tuple[list[str], np.ndarray]:
    """Active CPT codes and a typical charge per code, spread inside its category range."""
    codes, charges = [], []
    for category, code, _, status in ref.CPT_CODES:
        if status != ref.ACTIVE:
            continue
        low, high = ref.CATEGORY_CHARGE_RANGE[category]
        position = (stable_key(code) % 1000) / 999
        codes.append(code)
        charges.append(low * (high / low) ** position)
    return codes, np.array(charges)


def cpt_frame() -> pl.DataFrame:
    rows = list(zip(*ref.CPT_CODES, strict=True))
    return pl.DataFrame(
        {name: list(values) for name, values in zip(schema.CPT_CSV_COLUMNS, rows, strict=True)}
    )


def department_frame(plan: HospitalPlan) -> pl.DataFrame:
    count = int(plan.rng(_S_DEPARTMENTS).integers(15, 21))
    return pl.DataFrame(
        {
            "DeptID": numbered("DEPT", np.arange(1, count + 1), DEPARTMENT_ID_WIDTH),
            "Name": [name for name, _ in ref.DEPARTMENTS[:count]],
        }
    )


def specializations(rng: np.random.Generator, dept_names: Sequence[str]) -> list[str]:
    catalogue = dict(ref.DEPARTMENTS)
    out = []
    for name in dept_names:
        options = catalogue.get(name, ("General Practitioner",))
        out.append(options[int(rng.integers(0, len(options)))])
    return out


def provider_frame(plan: HospitalPlan, pools: NamePools, departments: pl.DataFrame) -> pl.DataFrame:
    rng = plan.rng(_S_PROVIDERS)
    n, n_dept = plan.n_providers, departments.height
    # Round-robin first so every department has at least one provider, then random.
    dept_idx = np.concatenate(
        [np.arange(min(n, n_dept)), rng.integers(0, n_dept, max(0, n - n_dept))]
    )
    dept_names = departments["Name"].gather(dept_idx).to_list()
    female = rng.random(n) < 0.5
    return pl.DataFrame(
        {
            "ProviderID": numbered("PROV", np.arange(1, n + 1), PROVIDER_ID_WIDTH),
            "FirstName": first_names(pools, rng, female),
            "LastName": pick(pools.last, rng, n),
            "Specialization": specializations(rng, dept_names),
            "DeptID": departments["DeptID"].gather(dept_idx),
            "NPI": npis(rng, n),
        }
    )


def reference(departments: pl.DataFrame, providers: pl.DataFrame) -> Reference:
    dept_index = {d: i for i, d in enumerate(departments["DeptID"].to_list())}
    codes, charges = active_cpt()
    return Reference(
        department_ids=departments["DeptID"],
        provider_ids=providers["ProviderID"],
        provider_dept=np.array([dept_index[d] for d in providers["DeptID"].to_list()]),
        cpt_codes=pl.Series(codes),
        cpt_charge=charges,
        icd_codes=pl.Series([code for code, _ in ref.ICD10_CODES]),
    )


# ---------------------------------------------------------------------------------------------
# Per-patient traits, derived by hashing the patient number so any chunk can look them up


@dataclass(frozen=True)
class PatientTraits:
    dob_day: np.ndarray
    female: np.ndarray
    lob: np.ndarray
    payer_no: np.ndarray
    medicare_entropy: np.ndarray
    medicaid_entropy: np.ndarray


def patient_traits(plan: HospitalPlan, numbers: np.ndarray) -> PatientTraits:
    dob = DOB_FIRST_DAY + (
        hash_unit(plan.salt(_S_DOB), numbers) * (DOB_LAST_DAY - DOB_FIRST_DAY + 1)
    ).astype(np.int64)
    senior = (AGE_REFERENCE_DAY - dob) >= 65 * 365.25
    u = hash_unit(plan.salt(_S_INSURANCE), numbers)
    under_65 = np.select(
        [u < 0.02, u < 0.24, u < 0.88],
        [_LOB_MEDICARE, _LOB_MEDICAID, _LOB_COMMERCIAL],
        _LOB_SELF_PAY,
    )
    lob = np.where(senior, np.where(u < 0.9, _LOB_MEDICARE, _LOB_COMMERCIAL), under_65)
    return PatientTraits(
        dob_day=dob,
        female=hash_unit(plan.salt(_S_GENDER), numbers) < 0.51,
        lob=lob,
        payer_no=payer_numbers(lob, hash64(plan.salt(_S_PAYER), numbers)),
        medicare_entropy=hash64(plan.salt(_S_MBI), numbers),
        medicaid_entropy=hash64(plan.salt(_S_MEDICAID), numbers),
    )


def payer_numbers(lob: np.ndarray, entropy: np.ndarray) -> np.ndarray:
    """PAYER001 Medicare, PAYER002 Medicaid, PAYER003-009 commercial plans, PAYER010 self-pay."""
    commercial = 3 + (entropy % np.uint64(7)).astype(np.int64)
    return np.select(
        [lob == _LOB_MEDICARE, lob == _LOB_MEDICAID, lob == _LOB_COMMERCIAL],
        [1, 2, commercial],
        10,
    )


def patient_defect_kind(plan: HospitalPlan, numbers: np.ndarray) -> np.ndarray:
    """-1 for clean patients, else 0 = null id, 1 = null DOB, 2 = first name 'NULL'/'null'."""
    if plan.defect_rate <= 0:
        return np.full(len(numbers), -1)
    u = hash_unit(plan.salt(_S_PATIENT_DEFECT), numbers)
    kind = np.minimum((u / plan.defect_rate * 3).astype(np.int64), 2)
    return np.where(u < plan.defect_rate, kind, -1)


# ---------------------------------------------------------------------------------------------
# Patients


def patient_chunk(plan: HospitalPlan, pools: NamePools, start: int, stop: int) -> pl.DataFrame:
    rng = plan.rng(_S_PATIENTS, start // CHUNK_ROWS)
    numbers = np.arange(start + 1, stop + 1)
    n = len(numbers)
    traits = patient_traits(plan, numbers)
    defect = patient_defect_kind(plan, numbers)
    first = first_names(pools, rng, traits.female)
    # Mixed spellings, as in the original source: some rows say NULL, others null.
    fake_null = np.where(numbers % 2 == 0, "NULL", "null")
    middle_kind = rng.random(n)
    middle_full = first_names(pools, rng, traits.female)
    frame = pl.DataFrame(
        {
            "PatientID": plan.patient_ids(numbers),
            "FirstName": first,
            "LastName": pick(pools.last, rng, n),
            "MiddleName": middle_full,
            "SSN": ssns(rng, n),
            "PhoneNumber": phones(rng, n),
            "Gender": np.where(traits.female, "F", "M"),
            "DOB": days_to_dates(traits.dob_day, defect == 1),
            "Address": addresses(pools, rng, n),
            "ModifiedDate": seconds_to_datetimes(
                rng.integers(PATIENT_MODIFIED_START, SNAPSHOT_END + 1, n)
            ),
        }
    )
    frame = frame.with_columns(
        pl.when(pl.Series(defect == 0))
        .then(None)
        .otherwise(pl.col("PatientID"))
        .alias("PatientID"),
        pl.when(pl.Series(defect == 2))
        .then(pl.Series(fake_null))
        .otherwise(pl.col("FirstName"))
        .alias("FirstName"),
        pl.when(pl.Series(middle_kind < 0.3))
        .then(None)
        .when(pl.Series(middle_kind < 0.6))
        .then(pl.col("MiddleName").str.slice(0, 1))
        .otherwise(pl.col("MiddleName"))
        .alias("MiddleName"),
    )
    return with_patient_layout(frame, plan.profile.patient_layout)


def with_patient_layout(frame: pl.DataFrame, layout: Literal["a", "b"]) -> pl.DataFrame:
    if layout == "a":
        return frame
    return frame.rename(dict(zip(schema.PATIENT_COLUMNS_A, schema.PATIENT_COLUMNS_B, strict=True)))


# ---------------------------------------------------------------------------------------------
# Encounters, transactions and claims (one of each per visit)


@dataclass(frozen=True)
class Activity:
    encounters: pl.DataFrame
    transactions: pl.DataFrame
    claims: pl.DataFrame


def pick_patients(plan: HospitalPlan, rng: np.random.Generator, n: int) -> np.ndarray:
    """Random patient numbers, avoiding patients whose id is nulled (they cannot be referenced)."""
    numbers = rng.integers(1, plan.n_patients + 1, n)
    for _ in range(64):
        bad = patient_defect_kind(plan, numbers) == 0
        if not bad.any():
            break
        numbers[bad] = numbers[bad] % plan.n_patients + 1
    return numbers


def activity_chunk(plan: HospitalPlan, refs: Reference, start: int, stop: int) -> Activity:
    rng = plan.rng(_S_ACTIVITY, start // CHUNK_ROWS)
    n = stop - start
    seq = np.arange(start + 1, stop + 1)
    patient_no = pick_patients(plan, rng, n)
    traits = patient_traits(plan, patient_no)
    provider = rng.integers(0, len(refs.provider_ids), n)
    visit_type = rng.choice(len(ref.ENCOUNTER_TYPES), n, p=ref.ENCOUNTER_TYPE_WEIGHTS)
    cpt = rng.integers(0, len(refs.cpt_codes), n)
    service_day = rng.integers(SERVICE_FIRST_DAY, SERVICE_LAST_DAY + 1, n)
    amount = money(
        np.maximum(
            refs.cpt_charge[cpt] * _TYPE_CHARGE_FACTOR[visit_type] * rng.lognormal(0, 0.25, n), 5
        )
    )
    claim = claim_outcome(rng, service_day, amount, traits.lob)
    enc_inserted = np.minimum(
        service_day * 86_400 + rng.integers(6 * 3600, 2 * 86_400, n), SNAPSHOT_END
    )
    enc_modified = later_than(rng, enc_inserted, mean_days=3.0)
    trans_inserted = claim.claim_day * 86_400 + rng.integers(0, 86_400, n)
    paid_at = np.where(claim.paid, claim.paid_day * 86_400 + rng.integers(0, 86_400, n), 0)
    trans_modified = later_than(rng, np.maximum(trans_inserted, paid_at), mean_days=2.0)

    ids = {
        "EncounterID": numbered("ENC", seq, ACTIVITY_ID_WIDTH),
        "TransactionID": numbered("TRANS", seq, ACTIVITY_ID_WIDTH),
        "ClaimID": numbered("CLAIM", seq, ACTIVITY_ID_WIDTH),
        "PatientID": plan.patient_ids(patient_no),
        "ProviderID": refs.provider_ids.gather(provider),
        "DeptID": refs.department_ids.gather(refs.provider_dept[provider]),
    }
    type_names = pl.Series(ref.ENCOUNTER_TYPES).gather(visit_type)
    procedure = refs.cpt_codes.gather(cpt)
    service = days_to_dates(service_day)

    encounters = pl.DataFrame(
        {
            "EncounterID": ids["EncounterID"],
            "PatientID": ids["PatientID"],
            "EncounterDate": service,
            "EncounterType": type_names,
            "ProviderID": ids["ProviderID"],
            "DepartmentID": ids["DeptID"],
            "ProcedureCode": procedure,
            "InsertedDate": seconds_to_datetimes(enc_inserted),
            "ModifiedDate": seconds_to_datetimes(enc_modified),
        }
    )
    lob_names = pl.Series(ref.PAYOR_TYPES).gather(traits.lob)
    payer = numbered("PAYER", traits.payer_no, 3)
    transactions = pl.DataFrame(
        {
            "TransactionID": ids["TransactionID"],
            "EncounterID": ids["EncounterID"],
            "PatientID": ids["PatientID"],
            "ProviderID": ids["ProviderID"],
            "DeptID": ids["DeptID"],
            "VisitDate": service,
            "ServiceDate": service,
            "PaidDate": days_to_dates(claim.paid_day, ~claim.paid),
            "VisitType": type_names,
            "Amount": amount,
            "AmountType": amount_types(traits.lob, claim.copay),
            "PaidAmount": claim.paid_amount,
            "ClaimID": ids["ClaimID"],
            "PayorID": payer,
            "ProcedureCode": procedure,
            "ICDCode": refs.icd_codes.gather(rng.integers(0, len(refs.icd_codes), n)),
            "LineOfBusiness": lob_names,
            "MedicaidID": insurance_ids(traits, _LOB_MEDICAID),
            "MedicareID": insurance_ids(traits, _LOB_MEDICARE),
            "InsertDate": seconds_to_datetimes(trans_inserted),
            "ModifiedDate": seconds_to_datetimes(trans_modified),
        }
    )
    claims = pl.DataFrame(
        {
            "ClaimID": ids["ClaimID"],
            "TransactionID": ids["TransactionID"],
            "PatientID": ids["PatientID"],
            "EncounterID": ids["EncounterID"],
            "ProviderID": ids["ProviderID"],
            "DeptID": ids["DeptID"],
            "ServiceDate": service,
            "ClaimDate": days_to_dates(claim.claim_day),
            "PayorID": payer,
            "ClaimAmount": amount,
            "PaidAmount": claim.paid_amount,
            "ClaimStatus": pl.Series(ref.CLAIM_STATUSES).gather(claim.status),
            "PayorType": lob_names,
            "Deductible": claim.deductible,
            "Coinsurance": claim.coinsurance,
            "Copay": claim.copay,
            "InsertDate": seconds_to_datetimes(trans_inserted),
            "ModifiedDate": seconds_to_datetimes(trans_modified),
        }
    )
    return inject_activity_defects(plan, rng, Activity(encounters, transactions, claims))


def later_than(rng: np.random.Generator, base: np.ndarray, *, mean_days: float) -> np.ndarray:
    """A timestamp at or after ``base`` (seconds), never beyond the snapshot end."""
    delay = rng.exponential(mean_days * 86_400, len(base)).astype(np.int64)
    return np.minimum(base + delay, np.maximum(base, SNAPSHOT_END))


@dataclass(frozen=True)
class ClaimOutcome:
    status: np.ndarray
    claim_day: np.ndarray
    paid_day: np.ndarray
    paid: np.ndarray
    paid_amount: np.ndarray
    deductible: np.ndarray
    coinsurance: np.ndarray
    copay: np.ndarray


def claim_outcome(
    rng: np.random.Generator, service_day: np.ndarray, amount: np.ndarray, lob: np.ndarray
) -> ClaimOutcome:
    n = len(service_day)
    status = rng.choice(len(ref.CLAIM_STATUSES), n, p=ref.CLAIM_STATUS_WEIGHTS)
    claim_day = service_day + rng.integers(0, 31, n)
    paid_day = claim_day + rng.integers(5, 91, n)
    paid = np.isin(status, (_PAID, _PARTIAL))
    # A payment that would land after the snapshot has not happened yet: still pending.
    late = paid & (paid_day > SNAPSHOT_DAY)
    status = np.where(late, _PENDING, status)
    paid &= ~late
    share = np.where(status == _PAID, rng.uniform(0.6, 1.0, n), rng.uniform(0.1, 0.6, n))
    paid_amount = np.where(paid, np.clip(money(amount * share), 0.01, amount), 0.0)

    insured = lob != _LOB_SELF_PAY
    copay = np.where(lob == _LOB_COMMERCIAL, _COPAYS[rng.integers(0, len(_COPAYS), n)], 0.0)
    balance = np.where(paid, amount - paid_amount, 0.0)
    copay = np.minimum(copay, np.where(paid, balance, copay))
    has_deductible = paid & insured & (rng.random(n) < 0.3)
    deductible = np.where(
        has_deductible, money(np.minimum(balance - copay, rng.uniform(0, 1500, n))), 0.0
    )
    shares_cost = paid & np.isin(lob, (_LOB_MEDICARE, _LOB_COMMERCIAL))
    coinsurance = np.where(
        shares_cost, money(np.maximum(balance - copay - deductible, 0) * 0.2), 0.0
    )
    return ClaimOutcome(
        status=status,
        claim_day=claim_day,
        paid_day=paid_day,
        paid=paid,
        paid_amount=paid_amount,
        deductible=np.maximum(deductible, 0.0),
        coinsurance=coinsurance,
        copay=copay,
    )


def amount_types(lob: np.ndarray, copay: np.ndarray) -> pl.Series:
    return pl.Series(
        np.select([lob == _LOB_SELF_PAY, copay > 0], ["Self-pay", "Co-pay"], "Insurance")
    )


def insurance_ids(traits: PatientTraits, lob: int) -> pl.Series:
    entropy = traits.medicare_entropy if lob == _LOB_MEDICARE else traits.medicaid_entropy
    ids = medicare_ids(entropy) if lob == _LOB_MEDICARE else medicaid_ids(entropy)
    return pl.select(pl.when(pl.Series(traits.lob == lob)).then(ids)).to_series()


def inject_activity_defects(
    plan: HospitalPlan, rng: np.random.Generator, activity: Activity
) -> Activity:
    """Encounters: null PatientID. Transactions: orphan patient, paid before service, or null
    VisitDate. Claims: empty PatientID. Drawn even at rate 0 so the rate never shifts the RNG."""
    n = activity.transactions.height
    rate = plan.defect_rate
    enc_bad = rng.random(n) < rate
    trans_bad = rng.random(n) < rate
    trans_kind = rng.integers(0, 3, n)
    claim_bad = rng.random(n) < rate
    orphan_no = ORPHAN_PATIENT_BASE + rng.integers(0, 1_000_000, n)
    early_by = rng.integers(1, 31, n)

    encounters = activity.encounters.with_columns(
        _null_where(enc_bad, "PatientID"),
    )
    orphan = trans_bad & (trans_kind == 0)
    early = trans_bad & (trans_kind == 1)
    no_visit = trans_bad & (trans_kind == 2)
    early_paid = days_to_dates(
        activity.transactions["ServiceDate"].to_physical().to_numpy() - early_by
    )
    transactions = activity.transactions.with_columns(
        pl.when(pl.Series(orphan))
        .then(plan.patient_ids(orphan_no))
        .otherwise(pl.col("PatientID"))
        .alias("PatientID"),
        pl.when(pl.Series(early)).then(early_paid).otherwise(pl.col("PaidDate")).alias("PaidDate"),
        _null_where(no_visit, "VisitDate"),
    )
    claims = activity.claims.with_columns(_null_where(claim_bad, "PatientID"))
    return Activity(encounters, transactions, claims)


def _null_where(mask: np.ndarray, column: str) -> pl.Expr:
    return pl.when(pl.Series(mask)).then(None).otherwise(pl.col(column)).alias(column)


# ---------------------------------------------------------------------------------------------
# Orchestration


def chunks(total: int, size: int = CHUNK_ROWS) -> Iterator[tuple[int, int]]:
    for start in range(0, total, size):
        yield start, min(total, start + size)


def write_claims_chunk(handle: IO[bytes], frame: pl.DataFrame, *, header: bool) -> None:
    frame.write_csv(
        handle,
        include_header=header,
        null_value="",
        date_format="%Y-%m-%d",
        datetime_format="%Y-%m-%d %H:%M:%S",
        float_precision=2,
    )


def write_cpt_csv(home: Path) -> Path:
    path = home / "landing" / "cptcodes" / "cptcodes.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    cpt_frame().write_csv(path)
    return path


ADJUSTMENT_CODE_LISTS = ("carc_codes.csv", "rarc_codes.csv")  # data/ADJUSTMENT_CODES.md: source


def write_adjustment_code_lists(home: Path) -> list[Path]:
    """Land the published CARC and RARC lists (kept in the package) as a user would."""
    data = Path(__file__).with_name("data")
    paths = [home / "landing" / Path(name).stem / name for name in ADJUSTMENT_CODE_LISTS]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / path.name, path)
    return paths


ICD10CM_ORDER_FILE = "icd10cm_order_2025.txt"


def icd10cm_order_lines(codes: Sequence[tuple[str, str]] = ref.ICD10_CODES) -> list[str]:
    """`codes` as billable lines of a CMS ICD-10-CM order file, in code order.

    Layout: order number (5) blank code without its dot (7) blank billable flag `1` blank short
    title (60, truncated) blank long title.
    """
    return [
        f"{number:05d} {code.replace('.', ''):<7} 1 {title[:60]:<60} {title}"
        for number, (code, title) in enumerate(sorted(codes), start=1)
    ]


def write_icd10cm_order_file(home: Path) -> Path:
    """Write every sample ICD-10-CM code (`ICD10_CODES`) as `landing/icd10cm/{ICD10CM_ORDER_FILE}`,
    the CMS order file the ICD extract prefers to the WHO API."""
    path = home / "landing" / "icd10cm" / ICD10CM_ORDER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(icd10cm_order_lines()) + "\n", encoding="utf-8")
    return path


def claims_csv_path(home: Path, profile: HospitalProfile) -> Path:
    return home / "landing" / "claims" / f"{profile.claims_file_prefix}_claim_data.csv"


def create_source_tables(db: SampleDatabase, layout: Literal["a", "b"]) -> None:
    for name, columns in source_tables(layout):
        db.create_table(db.table(name), columns)


def source_tables(layout: Literal["a", "b"]) -> tuple[tuple[str, tuple[schema.Column, ...]], ...]:
    return (
        ("departments", schema.DEPARTMENTS),
        ("providers", schema.PROVIDERS),
        ("patients", schema.patient_columns(layout)),
        ("encounters", schema.ENCOUNTERS),
        ("transactions", schema.TRANSACTIONS),
    )


def _generate_hospital(
    db: SampleDatabase, plan: HospitalPlan, claims_path: Path, progress: ProgressFn
) -> list[TableCount]:
    name = plan.profile.database
    create_source_tables(db, plan.profile.patient_layout)
    pools = build_pools(salt_for(plan.seed, plan.key, _S_FAKER) & 0x7FFFFFFF)
    departments = department_frame(plan)
    providers = provider_frame(plan, pools, departments)
    db.load(db.table("departments"), departments)
    db.load(db.table("providers"), providers)
    progress(f"{name}: departments {departments.height}, providers {providers.height}")

    for start, stop in chunks(plan.n_patients):
        db.load(db.table("patients"), patient_chunk(plan, pools, start, stop))
        progress(f"{name}: patients {stop}/{plan.n_patients}")

    refs = reference(departments, providers)
    claims_path.parent.mkdir(parents=True, exist_ok=True)
    with claims_path.open("wb") as handle:
        for start, stop in chunks(plan.n_encounters):
            activity = activity_chunk(plan, refs, start, stop)
            db.load(db.table("encounters"), activity.encounters)
            db.load(db.table("transactions"), activity.transactions)
            write_claims_chunk(handle, activity.claims, header=start == 0)
            progress(f"{name}: transactions {stop}/{plan.n_encounters}")
    db.commit()
    progress(f"{name}: done")
    return [
        TableCount(name, "departments", departments.height),
        TableCount(name, "providers", providers.height),
        TableCount(name, "patients", plan.n_patients),
        TableCount(name, "encounters", plan.n_encounters),
        TableCount(name, "transactions", plan.n_encounters),
    ]


def _validate_generate(scale: float, defect_rate: float) -> None:
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    if not 0 <= defect_rate <= 1:
        raise ValueError(f"defect_rate must be within [0, 1], got {defect_rate!r}")


def generate_sources(
    home: Path,
    *,
    scale: float = 1.0,
    seed: int = 42,
    target: str | None = None,
    defect_rate: float = 0.01,
    hospitals: Sequence[HospitalProfile] = SAMPLE_HOSPITALS,
    progress: Callable[[str], None] | None = None,
    x12: bool = False,
) -> list[TableCount]:
    """(Re)create every hospital's source database plus the claims, CPT and ICD-10-CM landing
    files (the ICD-10-CM codes as a CMS order file in ``landing/icd10cm/``), and with ``x12``
    the hospitals' 837 / 835 files in ``landing/x12/``.

    Without ``target`` each hospital is a SQLite file under ``home/sources``; with a PostgreSQL
    server URI each hospital becomes a database of that name with its tables in schema ``dbo``;
    with a MySQL/MariaDB server URI (``mysql://``) a database of that name holding the tables.
    Returns the rows written per (database, table).
    """
    _validate_generate(scale, defect_rate)
    if target is not None:
        check_target(target)
    home = Path(home)
    report = progress or (lambda _line: None)
    write_cpt_csv(home)
    write_icd10cm_order_file(home)
    write_adjustment_code_lists(home)
    counts: list[TableCount] = []
    for profile in hospitals:
        plan = HospitalPlan.create(profile, scale=scale, seed=seed, defect_rate=defect_rate)
        claims_path = claims_csv_path(home, profile)
        if target is not None:
            with recreate_server(target, profile.database) as db:
                counts.extend(_generate_hospital(db, plan, claims_path, report))
            continue
        path = sqlite_path(home, profile.database)
        try:
            with recreate_sqlite(path) as db:
                counts.extend(_generate_hospital(db, plan, claims_path, report))
        except BaseException:
            # Written without a journal, so a half-built file would look valid but be garbage.
            path.unlink(missing_ok=True)
            raise
    if x12:
        from rcm_assets.sample_data.x12 import write_x12_files  # it reads what was generated

        write_x12_files(home, seed=seed, scale=scale, target=target, hospitals=hospitals)
    return counts
