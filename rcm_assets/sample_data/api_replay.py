"""The demo's recorded-format replies of the NPPES and WHO ICD-10 APIs.

`write_api_replay` writes, next to the sample sources, the registry records of the sample
providers' NPIs (`replay/nppes.json`, the NPPES reply shape) and the WHO ICD-10 entities from the
release root down to every code of `WHO_ICD10_CODES` (`replay/who_icd.json`, one reply per
path): WHO ICD-10 codes only, as the real API serves; the ICD-10-CM-only sample codes come from
the CMS order file `rcm generate` writes to `landing/icd10cm/`.
`rcm_assets.resources.api_replay.ReplayApi` answers the clients from them, offline.

`python -m rcm_assets.sample_data.api_replay` (re)writes the fixtures of an existing RCM_HOME;
`rcm generate` writes them after the sources.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from rcm_assets.resources.api_replay import (
    NPPES_FIXTURE,
    WHO_CONTEXT,
    WHO_FIXTURE,
    WHO_ID_ROOT,
    replay_dir,
)

from . import icd10_blocks
from .database import open_server, open_sqlite, sqlite_path
from .generator import SAMPLE_HOSPITALS, HospitalProfile
from .reference_codes import WHO_ICD10_CODES
from .synth import npi_check_digit

WHO_RELEASE = "2019"
# Entity ids are http:// URIs in the real API too; clients must call them over https.

# NUCC taxonomy (code, description) of each specialization the generator uses.
TAXONOMIES: dict[str, tuple[str, str]] = {
    "Cardiologist": ("207RC0000X", "Internal Medicine, Cardiovascular Disease"),
    "Interventional Cardiologist": ("207RI0011X", "Internal Medicine, Interventional Cardiology"),
    "Electrophysiologist": (
        "207RC0001X",
        "Internal Medicine, Clinical Cardiac Electrophysiology",
    ),
    "Emergency Medicine Physician": ("207P00000X", "Emergency Medicine"),
    "Medical Oncologist": ("207RX0202X", "Internal Medicine, Medical Oncology"),
    "Radiation Oncologist": ("2085R0001X", "Radiology, Radiation Oncology"),
    "Hematologist": ("207RH0000X", "Internal Medicine, Hematology"),
    "Orthopedic Surgeon": ("207X00000X", "Orthopaedic Surgery"),
    "Sports Medicine Physician": ("207XX0005X", "Orthopaedic Surgery, Sports Medicine"),
    "Pediatrician": ("208000000X", "Pediatrics"),
    "Neonatologist": ("2080N0001X", "Pediatrics, Neonatal-Perinatal Medicine"),
    "Neurologist": ("2084N0400X", "Psychiatry & Neurology, Neurology"),
    "Radiologist": ("2085R0202X", "Radiology, Diagnostic Radiology"),
    "Interventional Radiologist": (
        "2085R0204X",
        "Radiology, Vascular & Interventional Radiology",
    ),
    "General Surgeon": ("208600000X", "Surgery"),
    "Colorectal Surgeon": ("208C00000X", "Colon & Rectal Surgery"),
    "Internist": ("207R00000X", "Internal Medicine"),
    "Hospitalist": ("208M00000X", "Hospitalist"),
    "Family Physician": ("207Q00000X", "Family Medicine"),
    "Obstetrician-Gynecologist": ("207V00000X", "Obstetrics & Gynecology"),
    "Dermatologist": ("207N00000X", "Dermatology"),
    "Gastroenterologist": ("207RG0100X", "Internal Medicine, Gastroenterology"),
    "Pulmonologist": ("207RP1001X", "Internal Medicine, Pulmonary Disease"),
    "Nephrologist": ("207RN0300X", "Internal Medicine, Nephrology"),
    "Endocrinologist": (
        "207RE0101X",
        "Internal Medicine, Endocrinology, Diabetes & Metabolism",
    ),
    "Psychiatrist": ("2084P0800X", "Psychiatry & Neurology, Psychiatry"),
    "Ophthalmologist": ("207W00000X", "Ophthalmology"),
    "Urologist": ("208800000X", "Urology"),
    "Anesthesiologist": ("207L00000X", "Anesthesiology"),
    "Physiatrist": ("208100000X", "Physical Medicine & Rehabilitation"),
    "Pathologist": ("207ZP0102X", "Pathology, Anatomic Pathology & Clinical Pathology"),
    "Infectious Disease Specialist": ("207RI0200X", "Internal Medicine, Infectious Disease"),
    "Otolaryngologist": ("207Y00000X", "Otolaryngology"),
    "Rheumatologist": ("207RR0500X", "Internal Medicine, Rheumatology"),
}
GENERAL_PRACTICE = ("208D00000X", "General Practice")
# (city, state, postal code, area code) of the sample practices.
CITIES: tuple[tuple[str, str, str, str], ...] = (
    ("BOSTON", "MA", "02115", "617"),
    ("CAMBRIDGE", "MA", "02139", "617"),
    ("WORCESTER", "MA", "01608", "508"),
    ("PROVIDENCE", "RI", "02903", "401"),
    ("HARTFORD", "CT", "06106", "860"),
)
STREETS = ("MAIN ST", "HOSPITAL DR", "MEDICAL PKWY", "ELM ST", "WASHINGTON ST", "PARK AVE")
SAMPLE_ORGANIZATIONS = ("HOSPITAL A MEDICAL CENTER", "HOSPITAL B HEALTH SYSTEM")


def _hash(text: str) -> int:
    """Process-independent pseudo-randomness from a text (Python's hash() is salted)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _day(seed: int, first: date, last: date) -> date:
    return first + timedelta(days=seed % ((last - first).days + 1))


def _epoch_ms(day: date) -> str:
    return str(int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000))


def _address(npi: str, purpose: str) -> dict[str, str]:
    seed = _hash(f"{npi}:{purpose}")
    city, state, postal, area = CITIES[seed % len(CITIES)]
    return {
        "country_code": "US",
        "country_name": "United States",
        "address_purpose": purpose,
        "address_type": "DOM",
        "address_1": f"{100 + seed % 9000} {STREETS[(seed >> 16) % len(STREETS)]}",
        "address_2": "" if seed % 3 else f"SUITE {100 + (seed >> 8) % 400}",
        "city": city,
        "state": state,
        "postal_code": postal + f"{(seed >> 24) % 10000:04d}",
        "telephone_number": f"{area}-{200 + (seed >> 32) % 800:03d}-{(seed >> 40) % 10000:04d}",
    }


def _taxonomy(code_desc: tuple[str, str], state: str, npi: str, primary: bool) -> dict[str, Any]:
    code, desc = code_desc
    return {
        "code": code,
        "taxonomy_group": "",
        "desc": desc,
        "state": state,
        "license": f"{state}{_hash(npi + code) % 900000 + 100000}",
        "primary": primary,
    }


def _number(npi: str) -> str | int:
    # The registry has answered with `number` as a JSON string and as a JSON integer; the
    # fixture keeps both forms so the parser is exercised on each.
    return int(npi) if _hash(npi) % 2 else npi


def nppes_individual(npi: str, first: str, last: str, specialization: str) -> dict[str, Any]:
    """An NPI-1 (individual) record in the registry's v2.1 reply shape."""
    seed = _hash(npi)
    location = _address(npi, "LOCATION")
    enumerated = _day(seed, date(2005, 5, 23), date(2020, 12, 31))
    updated = _day(seed >> 20, enumerated, date(2025, 12, 31))
    taxonomies = [_taxonomy(TAXONOMIES.get(specialization, GENERAL_PRACTICE), location["state"],
                            npi, primary=True)]  # fmt: skip
    if seed % 4 == 0:  # some providers also hold a second, non-primary taxonomy
        taxonomies.append(_taxonomy(GENERAL_PRACTICE, location["state"], npi, primary=False))
    return {
        "created_epoch": _epoch_ms(enumerated),
        "enumeration_type": "NPI-1",
        "last_updated_epoch": _epoch_ms(updated),
        "number": _number(npi),
        "addresses": [_address(npi, "MAILING"), location],
        "practiceLocations": [],
        "basic": {
            "first_name": first.upper(),
            "last_name": last.upper(),
            "credential": "DO" if seed % 7 == 0 else "MD",
            "sole_proprietor": "NO",
            "enumeration_date": enumerated.isoformat(),
            "last_updated": updated.isoformat(),
            "status": "A",
            "name_prefix": "Dr.",
        },
        "taxonomies": taxonomies,
        "identifiers": [],
        "endpoints": [],
        "other_names": [],
    }


def nppes_organization(npi: str, name: str) -> dict[str, Any]:
    """An NPI-2 (organization) record: organization name and authorized official in `basic`."""
    seed = _hash(npi)
    location = _address(npi, "LOCATION")
    enumerated = _day(seed, date(2005, 5, 23), date(2012, 12, 31))
    updated = _day(seed >> 20, enumerated, date(2025, 12, 31))
    return {
        "created_epoch": _epoch_ms(enumerated),
        "enumeration_type": "NPI-2",
        "last_updated_epoch": _epoch_ms(updated),
        "number": _number(npi),
        "addresses": [location, _address(npi, "MAILING")],
        "practiceLocations": [],
        "basic": {
            "organization_name": name,
            "organizational_subpart": "NO",
            "enumeration_date": enumerated.isoformat(),
            "last_updated": updated.isoformat(),
            "status": "A",
            "authorized_official_first_name": "PAT",
            "authorized_official_last_name": "MORGAN",
            "authorized_official_title_or_position": "CHIEF EXECUTIVE OFFICER",
            "authorized_official_telephone_number": location["telephone_number"],
        },
        "taxonomies": [
            _taxonomy(("282N00000X", "General Acute Care Hospital"), location["state"], npi, True)
        ],
        "identifiers": [],
        "endpoints": [],
        "other_names": [],
    }


def organization_npi(name: str) -> str:
    base9 = f"1{_hash(name) % 100_000_000:08d}"
    return base9 + str(npi_check_digit(base9))


def nppes_records(providers: pl.DataFrame) -> list[dict[str, Any]]:
    """Registry records of every provider (columns NPI, FirstName, LastName, Specialization).

    Providers without an NPI are skipped; the sample hospitals are added as organizations, so a
    city or taxonomy search in nppes_queries.csv finds NPI-2 records too.
    """
    records: dict[str, dict[str, Any]] = {}
    for row in providers.iter_rows(named=True):
        npi = (row.get("NPI") or "").strip()
        if npi and npi not in records:
            records[npi] = nppes_individual(
                npi, row.get("FirstName") or "", row.get("LastName") or "",
                row.get("Specialization") or "",
            )  # fmt: skip
    for name in SAMPLE_ORGANIZATIONS:
        records.setdefault(organization_npi(name), nppes_organization(organization_npi(name), name))
    return list(records.values())


def _entity(
    relative: str, kind: str, code: str, title: str, parent: str, children: Sequence[str] = ()
) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "@context": WHO_CONTEXT,
        "@id": f"{WHO_ID_ROOT}/{relative}",
        "parent": [f"{WHO_ID_ROOT}/{parent}"],
        "classKind": kind,
        "code": code,
        "title": {"@language": "en", "@value": title},
        "browserUrl": f"https://icd.who.int/browse10/{relative.split('/')[0]}/en#/{code}",
    }
    if children:
        entity["child"] = [f"{WHO_ID_ROOT}/{child}" for child in children]
    return entity


def _category_title(descriptions: list[str]) -> str:
    """A category's title from its codes' titles: their common leading words (a paraphrase)."""
    if len(descriptions) == 1:
        return descriptions[0].split(",")[0].strip()
    words = [d.replace(",", " ,").split() for d in descriptions]
    common = []
    for group in zip(*words, strict=False):
        if len(set(group)) > 1:
            break
        common.append(group[0])
    while common and common[-1] in {",", "with", "without", "of", "and", "due", "to", "in"}:
        common.pop()
    return " ".join(common).replace(" ,", ",") or descriptions[0].split(",")[0]


def who_icd_entities(
    codes: Iterable[tuple[str, str]] = WHO_ICD10_CODES, release: str = WHO_RELEASE
) -> dict[str, dict[str, Any]]:
    """Every WHO API reply from the release root down to the codes, keyed by relative path.

    Paths are relative to `.../icd/release/10/`: `2019`, `2019/IX`, `2019/I10-I16`, `2019/I10`.
    A 3-character code without sub-codes (I10) is a leaf category, as in the real API.
    """
    by_category: dict[str, list[tuple[str, str]]] = {}
    for code, title in codes:
        by_category.setdefault(code[:3], []).append((code, title))
    entities: dict[str, dict[str, Any]] = {}
    blocks: dict[str, list[str]] = {}
    for category, members in sorted(by_category.items()):
        block = icd10_blocks.block_of(category)
        blocks.setdefault(block, []).append(category)
        subcodes = [(code, title) for code, title in members if code != category]
        own = [title for code, title in members if code == category]
        title = own[0] if own else _category_title([t for _, t in subcodes])
        entities[f"{release}/{category}"] = _entity(
            f"{release}/{category}", "category", category, title, f"{release}/{block}",
            [f"{release}/{code}" for code, _ in subcodes],
        )  # fmt: skip
        for code, sub_title in subcodes:
            entities[f"{release}/{code}"] = _entity(
                f"{release}/{code}", "category", code, sub_title, f"{release}/{category}"
            )
    chapters: dict[str, list[str]] = {}
    block_titles = dict(icd10_blocks.BLOCKS)
    for block, categories in sorted(blocks.items()):
        chapter = icd10_blocks.chapter_of_block(block)
        chapters.setdefault(chapter, []).append(block)
        entities[f"{release}/{block}"] = _entity(
            f"{release}/{block}", "block", block, block_titles[block], f"{release}/{chapter}",
            [f"{release}/{category}" for category in categories],
        )  # fmt: skip
    order = [chapter for chapter, *_ in icd10_blocks.CHAPTERS]
    for chapter, *_, title in icd10_blocks.CHAPTERS:
        if chapter in chapters:
            entities[f"{release}/{chapter}"] = _entity(
                f"{release}/{chapter}", "chapter", chapter, title, release,
                [f"{release}/{block}" for block in chapters[chapter]],
            )  # fmt: skip
    entities[release] = {
        "@context": WHO_CONTEXT,
        "@id": f"{WHO_ID_ROOT}/{release}",
        "title": {
            "@language": "en",
            "@value": "International Statistical Classification of Diseases and Related Health "
            f"Problems 10th Revision (ICD-10) Version for {release}",
        },
        "child": [f"{WHO_ID_ROOT}/{release}/{c}" for c in sorted(chapters, key=order.index)],
    }
    return entities


def sample_providers(
    home: Path, target: str | None = None, hospitals: Sequence[HospitalProfile] = SAMPLE_HOSPITALS
) -> pl.DataFrame:
    """The providers in the sample hospitals' EMR databases (SQLite, or a PostgreSQL / MySQL
    server)."""
    columns = ("NPI", "FirstName", "LastName", "Specialization")
    rows: list[tuple[Any, ...]] = []
    for profile in hospitals:
        database = (
            open_server(target, profile.database)
            if target
            else open_sqlite(sqlite_path(home, profile.database))
        )
        with database as db:
            selected = ", ".join(f'"{name}"' for name in columns)
            rows.extend(db.fetch_all(f"SELECT {selected} FROM {db.table('providers')}"))
    return pl.DataFrame(rows, schema=dict.fromkeys(columns, pl.String), orient="row")


def write_api_replay(home: Path, providers: pl.DataFrame) -> Path:
    """Write the NPPES and WHO fixtures under `home/replay/`; return that folder."""
    folder = replay_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    records = nppes_records(providers)
    (folder / NPPES_FIXTURE).write_text(
        json.dumps({"result_count": len(records), "results": records}, indent=1)
    )
    (folder / WHO_FIXTURE).write_text(
        json.dumps({"release": WHO_RELEASE, "entities": who_icd_entities()}, indent=1)
    )
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    from rcm_assets.settings import rcm_home

    parser = argparse.ArgumentParser(description="(Re)write the NPPES / WHO ICD replay fixtures")
    parser.add_argument("--target", help="PostgreSQL or MySQL server URI of the sample sources")
    args = parser.parse_args(argv)
    home = rcm_home()
    folder = write_api_replay(home, sample_providers(home, args.target))
    print(f"API replay fixtures in {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
