"""Apply one deterministic change batch (updates + inserts) to existing hospital sources.

New watermark values start one minute after the table's current maximum and only increase, so
an incremental loader that remembers the previous maximum sees exactly this batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from . import reference_codes as ref
from . import schema
from .database import SampleDatabase, check_target, open_server, open_sqlite, sqlite_path
from .generator import (
    ACTIVITY_ID_WIDTH,
    DEPARTMENT_ID_WIDTH,
    DOB_FIRST_DAY,
    DOB_LAST_DAY,
    PATIENT_ID_WIDTH,
    PROVIDER_ID_WIDTH,
    SAMPLE_HOSPITALS,
    SNAPSHOT_END,
    HospitalProfile,
    TableCount,
    active_cpt,
    amount_types,
    payer_numbers,
    specializations,
    with_patient_layout,
)
from .schema import quote_ident
from .synth import (
    NamePools,
    addresses,
    build_pools,
    days_to_dates,
    epoch_seconds,
    first_names,
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

__all__ = ["ChangeProfile", "mutate_sources"]


class ChangeProfile(StrEnum):
    """Which existing records a change batch updates."""

    RECENT = "recent"  # 90 % of updates on the newest 10 % of records, as visits and claims change
    UNIFORM = "uniform"  # any record alike


RECENT_RECORDS = 0.10  # the newest share of records ...
RECENT_UPDATES = 0.90  # ... that gets this share of a `recent` batch's updates

_WATERMARK_GAP = 60  # first new watermark = current max + 1 minute
_TEMP_TABLE = quote_ident("_rcm_mutation")
_GENERIC_SPECIALIZATIONS = ("General Practitioner", "Nurse Practitioner", "Physician Assistant")
# Separate from the generator's streams so a mutation never replays generated values.
_S_POOLS, _S_PROVIDERS, _S_PATIENTS, _S_ENCOUNTERS, _S_TRANSACTIONS = range(101, 106)


@dataclass(frozen=True)
class MutationContext:
    db: SampleDatabase
    profile: HospitalProfile
    seed: int
    update_share: float
    insert_share: float
    pools: NamePools
    change_profile: ChangeProfile = ChangeProfile.RECENT

    def rng(self, stream: int) -> np.random.Generator:
        return rng_for(self.seed, stable_key(self.profile.id_prefix), stream)

    @property
    def patient_key(self) -> str:
        return "PatientID" if self.profile.patient_layout == "a" else "ID"

    @property
    def patient_watermark(self) -> str:
        return "ModifiedDate" if self.profile.patient_layout == "a" else "Updated_Date"

    def count(self, table: str) -> int:
        return int(self.db.fetch_one(f"SELECT COUNT(*) FROM {self.db.table(table)}"))

    def table_count(self, table: str, *, updated: int, inserted: int) -> TableCount:
        return TableCount(self.profile.database, table, self.count(table), updated, inserted)


# ---------------------------------------------------------------------------------------------
# Reading current state


def batch_size(share: float, rows: int) -> int:
    """``share`` of ``rows``, but at least one row whenever the share and the table are non-zero."""
    if share <= 0 or rows <= 0:
        return 0
    return max(1, round(share * rows))


def max_number(db: SampleDatabase, table: str, column: str, prefix: str) -> int:
    start = len(prefix) + 1
    sql = (
        f"SELECT MAX(CAST(SUBSTR({quote_ident(column)}, {start}) AS {db.integer_type})) "
        f"FROM {db.table(table)}"
    )
    value = db.fetch_one(sql)
    return int(value) if value is not None else 0


def existing_numbers(db: SampleDatabase, table: str, column: str, prefix: str) -> np.ndarray:
    """Numeric parts of all non-null ids, sorted so the seeded choice never depends on row order."""
    col = quote_ident(column)
    sql = (
        f"SELECT CAST(SUBSTR({col}, {len(prefix) + 1}) AS {db.integer_type}) "
        f"FROM {db.table(table)} "
        f"WHERE {col} IS NOT NULL"
    )
    return np.sort(db.fetch_int64(sql))


def max_watermark(db: SampleDatabase, table: str, column: str) -> int:
    value: Any = db.fetch_one(f"SELECT MAX({quote_ident(column)}) FROM {db.table(table)}")
    if value is None:
        return SNAPSHOT_END
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return epoch_seconds(value)


def new_watermarks(rng: np.random.Generator, current_max: int, count: int) -> np.ndarray:
    """Strictly increasing, distinct second-resolution values above ``current_max``."""
    steps = rng.integers(1, 4, count)
    return current_max + _WATERMARK_GAP + np.cumsum(steps) - steps[0] if count else steps


def read_frame(
    db: SampleDatabase, table: str, columns: Sequence[str], order_by: str
) -> pl.DataFrame:
    cols = ", ".join(quote_ident(c) for c in columns)
    rows = db.fetch_all(f"SELECT {cols} FROM {db.table(table)} ORDER BY {quote_ident(order_by)}")
    return pl.DataFrame(rows, schema=list(columns), orient="row")


# ---------------------------------------------------------------------------------------------
# Writing


def apply_updates(
    db: SampleDatabase,
    table: str,
    key: str,
    assignments: dict[str, str],
    values: pl.DataFrame,
    kinds: dict[str, schema.Kind],
) -> int:
    """UPDATE ... FROM a temporary table holding one row of new values per key ``k``."""
    columns = [(name, kinds.get(name, "text")) for name in values.columns]
    db.create_table(_TEMP_TABLE, columns, temporary=True)
    db.load(_TEMP_TABLE, values)
    # Lets SQLite probe the small batch per source row instead of scanning the source per key.
    db.execute(f"CREATE INDEX {quote_ident('_rcm_mutation_k')} ON {_TEMP_TABLE} (k)")
    if db.dialect == "mysql":
        # No UPDATE ... FROM there; the multi-table form needs qualified targets, since column
        # names are case-insensitive (`Address` would clash with `u.address`).
        sets = ", ".join(f"t.{quote_ident(col)} = {expr}" for col, expr in assignments.items())
        statement = (
            f"UPDATE {db.table(table)} AS t JOIN {_TEMP_TABLE} AS u "
            f"ON t.{quote_ident(key)} = u.k SET {sets}"
        )
    else:
        sets = ", ".join(f"{quote_ident(col)} = {expr}" for col, expr in assignments.items())
        statement = (
            f"UPDATE {db.table(table)} AS t SET {sets} FROM {_TEMP_TABLE} AS u "
            f"WHERE t.{quote_ident(key)} = u.k"
        )
    updated = db.execute(statement)
    db.execute(f"DROP TABLE {_TEMP_TABLE}")
    return updated


def choose(
    rng: np.random.Generator,
    numbers: np.ndarray,
    count: int,
    profile: ChangeProfile = ChangeProfile.UNIFORM,
) -> np.ndarray:
    """`count` distinct record numbers to update; `numbers` is sorted, newest last."""
    count = min(count, len(numbers))
    if profile is ChangeProfile.UNIFORM:
        return numbers[rng.choice(len(numbers), count, replace=False)]
    split = int(len(numbers) * (1 - RECENT_RECORDS))
    older, recent = numbers[:split], numbers[split:]
    from_older = min(len(older), count - min(len(recent), round(count * RECENT_UPDATES)))
    from_recent = count - from_older
    return np.concatenate(
        [
            recent[rng.choice(len(recent), from_recent, replace=False)],
            older[rng.choice(len(older), from_older, replace=False)],
        ]
    )


# ---------------------------------------------------------------------------------------------
# Full-load tables


def mutate_departments(ctx: MutationContext) -> tuple[TableCount, pl.DataFrame]:
    db = ctx.db
    current = read_frame(db, "departments", ("DeptID", "Name"), "DeptID")
    inserted = 0
    if ctx.insert_share > 0:
        number = max_number(db, "departments", "DeptID", "DEPT") + 1
        taken = set(current["Name"].to_list())
        name = next((n for n, _ in ref.DEPARTMENTS if n not in taken), f"Clinic {number}")
        new = pl.DataFrame(
            {"DeptID": numbered("DEPT", np.array([number]), DEPARTMENT_ID_WIDTH), "Name": [name]}
        )
        db.load(db.table("departments"), new)
        current = pl.concat([current, new])
        inserted = 1
    return ctx.table_count("departments", updated=0, inserted=inserted), current


def mutate_providers(
    ctx: MutationContext, departments: pl.DataFrame
) -> tuple[TableCount, pl.DataFrame]:
    db, rng = ctx.db, ctx.rng(_S_PROVIDERS)
    columns = [name for name, _ in schema.PROVIDERS]
    current = read_frame(db, "providers", columns, "ProviderID")
    updated = inserted = 0
    if ctx.update_share > 0 and current.height:
        updated = update_one_specialization(ctx, rng, current, departments)
    if ctx.insert_share > 0 and departments.height:
        new = new_providers(ctx, rng, current, departments)
        db.load(db.table("providers"), new)
        current = pl.concat([current, new])
        inserted = new.height
    return ctx.table_count("providers", updated=updated, inserted=inserted), current


def update_one_specialization(
    ctx: MutationContext,
    rng: np.random.Generator,
    providers: pl.DataFrame,
    departments: pl.DataFrame,
) -> int:
    row = providers.row(int(rng.integers(0, providers.height)), named=True)
    dept_names = dict(zip(departments["DeptID"], departments["Name"], strict=True))
    own = dict(ref.DEPARTMENTS).get(dept_names.get(row["DeptID"], ""), ())
    options = [s for s in (*own, *_GENERIC_SPECIALIZATIONS) if s != row["Specialization"]]
    mark = ctx.db.placeholder
    return ctx.db.execute(
        f"UPDATE {ctx.db.table('providers')} SET {quote_ident('Specialization')} = {mark} "
        f"WHERE {quote_ident('ProviderID')} = {mark}",
        (options[int(rng.integers(0, len(options)))], row["ProviderID"]),
    )


def new_providers(
    ctx: MutationContext,
    rng: np.random.Generator,
    providers: pl.DataFrame,
    departments: pl.DataFrame,
) -> pl.DataFrame:
    # One provider staffs the newest department, the other joins a random one.
    dept_idx = np.array([departments.height - 1, int(rng.integers(0, departments.height))])
    start = max_number(ctx.db, "providers", "ProviderID", "PROV") + 1
    female = rng.random(2) < 0.5
    return pl.DataFrame(
        {
            "ProviderID": numbered("PROV", np.arange(start, start + 2), PROVIDER_ID_WIDTH),
            "FirstName": first_names(ctx.pools, rng, female),
            "LastName": pick(ctx.pools.last, rng, 2),
            "Specialization": specializations(rng, departments["Name"].gather(dept_idx).to_list()),
            "DeptID": departments["DeptID"].gather(dept_idx),
            "NPI": npis(rng, 2, taken=providers["NPI"].drop_nulls().to_list()),
        }
    )


# ---------------------------------------------------------------------------------------------
# Incremental tables


def mutate_patients(ctx: MutationContext) -> tuple[TableCount, np.ndarray]:
    db, rng = ctx.db, ctx.rng(_S_PATIENTS)
    prefix = f"{ctx.profile.id_prefix}-"
    rows = ctx.count("patients")
    numbers = existing_numbers(db, "patients", ctx.patient_key, prefix)
    targets = choose(rng, numbers, batch_size(ctx.update_share, rows), ctx.change_profile)
    n_new = batch_size(ctx.insert_share, rows)
    marks = new_watermarks(
        rng, max_watermark(db, "patients", ctx.patient_watermark), len(targets) + n_new
    )

    values = pl.DataFrame(
        {
            "k": numbered(prefix, targets, PATIENT_ID_WIDTH),
            "address": addresses(ctx.pools, rng, len(targets)),
            "phone": phones(rng, len(targets)),
            "wm": seconds_to_datetimes(marks[: len(targets)]),
        }
    )
    updated = apply_updates(
        db,
        "patients",
        ctx.patient_key,
        {"Address": "u.address", "PhoneNumber": "u.phone", ctx.patient_watermark: "u.wm"},
        values,
        {"wm": "datetime"},
    )
    new_numbers = np.arange(1, n_new + 1) + (int(numbers[-1]) if len(numbers) else 0)
    db.load(db.table("patients"), new_patient_rows(ctx, rng, new_numbers, marks[len(targets) :]))
    count = ctx.table_count("patients", updated=updated, inserted=n_new)
    return count, np.concatenate([numbers, new_numbers])


def new_patient_rows(
    ctx: MutationContext, rng: np.random.Generator, numbers: np.ndarray, marks: np.ndarray
) -> pl.DataFrame:
    n = len(numbers)
    female = rng.random(n) < 0.51
    frame = pl.DataFrame(
        {
            "PatientID": numbered(f"{ctx.profile.id_prefix}-", numbers, PATIENT_ID_WIDTH),
            "FirstName": first_names(ctx.pools, rng, female),
            "LastName": pick(ctx.pools.last, rng, n),
            "MiddleName": first_names(ctx.pools, rng, female),
            "SSN": ssns(rng, n),
            "PhoneNumber": phones(rng, n),
            "Gender": pl.Series(np.where(female, "F", "M"), dtype=pl.String),
            "DOB": days_to_dates(rng.integers(DOB_FIRST_DAY, DOB_LAST_DAY + 1, n)),
            "Address": addresses(ctx.pools, rng, n),
            "ModifiedDate": seconds_to_datetimes(marks),
        }
    )
    return with_patient_layout(frame, ctx.profile.patient_layout)


def mutate_encounters(
    ctx: MutationContext, patients: np.ndarray, providers: pl.DataFrame, n_new: int
) -> tuple[TableCount, pl.DataFrame]:
    db, rng = ctx.db, ctx.rng(_S_ENCOUNTERS)
    numbers = existing_numbers(db, "encounters", "EncounterID", "ENC")
    targets = choose(
        rng, numbers, batch_size(ctx.update_share, ctx.count("encounters")), ctx.change_profile
    )
    marks = new_watermarks(
        rng, max_watermark(db, "encounters", "ModifiedDate"), len(targets) + n_new
    )
    types = pl.Series(ref.ENCOUNTER_TYPES)
    # Two different candidate types per row: the SQL picks whichever differs from the current one.
    first = rng.integers(0, len(types), len(targets))
    second = (first + rng.integers(1, len(types), len(targets))) % len(types)
    values = pl.DataFrame(
        {
            "k": numbered("ENC", targets, ACTIVITY_ID_WIDTH),
            "a": types.gather(first),
            "b": types.gather(second),
            "wm": seconds_to_datetimes(marks[: len(targets)]),
        }
    )
    current = quote_ident("EncounterType")
    updated = apply_updates(
        db,
        "encounters",
        "EncounterID",
        {
            "EncounterType": f"CASE WHEN t.{current} = u.a THEN u.b ELSE u.a END",
            "ModifiedDate": "u.wm",
        },
        values,
        {"wm": "datetime"},
    )
    start = max_number(db, "encounters", "EncounterID", "ENC") + 1
    new = new_encounter_rows(ctx, rng, start, patients, providers, marks[len(targets) :])
    db.load(db.table("encounters"), new)
    return ctx.table_count("encounters", updated=updated, inserted=new.height), new


def new_encounter_rows(
    ctx: MutationContext,
    rng: np.random.Generator,
    start: int,
    patients: np.ndarray,
    providers: pl.DataFrame,
    marks: np.ndarray,
) -> pl.DataFrame:
    n = len(marks)
    if n == 0:
        return pl.DataFrame(schema=_encounter_schema())
    provider = rng.integers(0, providers.height, n)
    codes, _ = active_cpt()
    visit_type = rng.choice(len(ref.ENCOUNTER_TYPES), n, p=ref.ENCOUNTER_TYPE_WEIGHTS)
    # The visit happened up to two weeks before it was recorded.
    visit_day = marks // 86_400 - rng.integers(0, 15, n)
    return pl.DataFrame(
        {
            "EncounterID": numbered("ENC", np.arange(start, start + n), ACTIVITY_ID_WIDTH),
            "PatientID": numbered(
                f"{ctx.profile.id_prefix}-",
                patients[rng.integers(0, len(patients), n)],
                PATIENT_ID_WIDTH,
            ),
            "EncounterDate": days_to_dates(visit_day),
            "EncounterType": pl.Series(ref.ENCOUNTER_TYPES).gather(visit_type),
            "ProviderID": providers["ProviderID"].gather(provider),
            "DepartmentID": providers["DeptID"].gather(provider),
            "ProcedureCode": pl.Series(codes).gather(rng.integers(0, len(codes), n)),
            "InsertedDate": seconds_to_datetimes(marks),
            "ModifiedDate": seconds_to_datetimes(marks),
        }
    )


def _encounter_schema() -> dict[str, pl.DataType]:
    types: dict[str, pl.DataType] = {
        "text": pl.String(),
        "date": pl.Date(),
        "datetime": pl.Datetime(),
    }
    return {name: types[kind] for name, kind in schema.ENCOUNTERS}


def mutate_transactions(ctx: MutationContext, encounters: pl.DataFrame, n_new: int) -> TableCount:
    db, rng = ctx.db, ctx.rng(_S_TRANSACTIONS)
    numbers = existing_numbers(db, "transactions", "TransactionID", "TRANS")
    targets = choose(
        rng, numbers, batch_size(ctx.update_share, ctx.count("transactions")), ctx.change_profile
    )
    marks = new_watermarks(
        rng, max_watermark(db, "transactions", "ModifiedDate"), len(targets) + n_new
    )
    # Charge corrections only ever raise the amount, so PaidAmount <= Amount keeps holding.
    values = pl.DataFrame(
        {
            "k": numbered("TRANS", targets, ACTIVITY_ID_WIDTH),
            "f": np.round(rng.uniform(1.02, 1.2, len(targets)), 4),
            "wm": seconds_to_datetimes(marks[: len(targets)]),
        }
    )
    updated = apply_updates(
        db,
        "transactions",
        "TransactionID",
        {"Amount": f"ROUND(t.{quote_ident('Amount')} * u.f, 2)", "ModifiedDate": "u.wm"},
        values,
        {"f": "ratio", "wm": "datetime"},
    )
    new = new_transaction_rows(ctx, rng, encounters, marks[len(targets) :]) if n_new else None
    if new is not None:
        db.load(db.table("transactions"), new)
    inserted = 0 if new is None else new.height
    return ctx.table_count("transactions", updated=updated, inserted=inserted)


def new_transaction_rows(
    ctx: MutationContext, rng: np.random.Generator, encounters: pl.DataFrame, marks: np.ndarray
) -> pl.DataFrame:
    n = len(marks)
    db = ctx.db
    start = max_number(db, "transactions", "TransactionID", "TRANS") + 1
    claim_start = max_number(db, "transactions", "ClaimID", "CLAIM") + 1
    # Each new visit gets its charge; extra transactions (if any) add charges to the same visits.
    visit = encounters[np.arange(n) % encounters.height]
    codes, charges = active_cpt()
    code_index = {code: i for i, code in enumerate(codes)}
    charge = charges[[code_index.get(c, 0) for c in visit["ProcedureCode"].to_list()]]
    amount = money(np.maximum(charge * rng.lognormal(0, 0.25, n), 5))
    lob = rng.choice(len(ref.PAYOR_TYPES), n, p=(0.25, 0.2, 0.45, 0.1))
    entropy = rng.integers(0, np.iinfo(np.int64).max, (2, n), dtype=np.int64).astype(np.uint64)
    service = visit["EncounterDate"]
    return pl.DataFrame(
        {
            "TransactionID": numbered("TRANS", np.arange(start, start + n), ACTIVITY_ID_WIDTH),
            "EncounterID": visit["EncounterID"],
            "PatientID": visit["PatientID"],
            "ProviderID": visit["ProviderID"],
            "DeptID": visit["DepartmentID"],
            "VisitDate": service,
            "ServiceDate": service,
            "PaidDate": pl.Series([None] * n, dtype=pl.Date),
            "VisitType": visit["EncounterType"],
            "Amount": amount,
            "AmountType": amount_types(lob, np.zeros(n)),
            "PaidAmount": np.zeros(n),
            "ClaimID": numbered(
                "CLAIM", np.arange(claim_start, claim_start + n), ACTIVITY_ID_WIDTH
            ),
            "PayorID": numbered("PAYER", payer_numbers(lob, entropy[0]), 3),
            "ProcedureCode": visit["ProcedureCode"],
            "ICDCode": pl.Series([c for c, _ in ref.ICD10_CODES]).gather(
                rng.integers(0, len(ref.ICD10_CODES), n)
            ),
            "LineOfBusiness": pl.Series(ref.PAYOR_TYPES).gather(lob),
            "MedicaidID": _only_where(lob == 1, medicaid_ids(entropy[1])),
            "MedicareID": _only_where(lob == 0, medicare_ids(entropy[1])),
            "InsertDate": seconds_to_datetimes(marks),
            "ModifiedDate": seconds_to_datetimes(marks),
        }
    )


def _only_where(mask: np.ndarray, values: pl.Series) -> pl.Series:
    return pl.select(pl.when(pl.Series(mask)).then(values)).to_series()


# ---------------------------------------------------------------------------------------------
# Entry point


def _mutate_hospital(ctx: MutationContext) -> list[TableCount]:
    departments_count, departments = mutate_departments(ctx)
    providers_count, providers = mutate_providers(ctx, departments)
    patients_count, patient_numbers = mutate_patients(ctx)
    n_encounters = batch_size(ctx.insert_share, ctx.count("encounters"))
    n_transactions = batch_size(ctx.insert_share, ctx.count("transactions"))
    if not len(patient_numbers) or not providers.height:
        n_encounters = 0  # nothing a new visit could legitimately reference
    elif n_transactions:
        n_encounters = max(n_encounters, 1)  # new charges need a new visit to point at
    encounters_count, new_encounters = mutate_encounters(
        ctx, patient_numbers, providers, n_encounters
    )
    transactions_count = mutate_transactions(
        ctx, new_encounters, n_transactions if new_encounters.height else 0
    )
    return [
        departments_count,
        providers_count,
        patients_count,
        encounters_count,
        transactions_count,
    ]


def _validate_shares(update_share: float, insert_share: float) -> None:
    for name, value in (("update_share", update_share), ("insert_share", insert_share)):
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must be within [0, 1], got {value!r}")


def mutate_sources(
    home: Path,
    *,
    seed: int = 1,
    target: str | None = None,
    update_share: float = 0.02,
    insert_share: float = 0.01,
    hospitals: Sequence[HospitalProfile] = SAMPLE_HOSPITALS,
    change_profile: ChangeProfile = ChangeProfile.RECENT,
) -> list[TableCount]:
    """Update and insert rows in every hospital's sources; one TableCount per table.

    ``rows`` is the row count after the batch. Each hospital's batch is one transaction.
    ``change_profile`` picks which records the updates hit (see `ChangeProfile`).
    """
    _validate_shares(update_share, insert_share)
    if target is not None:
        check_target(target)
    counts: list[TableCount] = []
    for profile in hospitals:
        db = (
            open_sqlite(sqlite_path(Path(home), profile.database))
            if target is None
            else open_server(target, profile.database)
        )
        with db:
            pools = build_pools(
                salt_for(seed, stable_key(profile.id_prefix), _S_POOLS) & 0x7FFFFFFF
            )
            ctx = MutationContext(
                db, profile, seed, update_share, insert_share, pools, change_profile
            )
            counts.extend(_mutate_hospital(ctx))
            db.commit()
    return counts
