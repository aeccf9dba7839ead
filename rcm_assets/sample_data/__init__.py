"""Deterministic sample source data: hospital EMR databases plus claims / CPT / ICD-10-CM landing
files."""

from .database import database_uri, sqlite_path
from .generator import SAMPLE_HOSPITALS, HospitalProfile, TableCount, generate_sources
from .mutate import mutate_sources
from .reference_codes import CPT_CODES, ICD10_CODES, WHO_ICD10_CODES

__all__ = [
    "CPT_CODES",
    "ICD10_CODES",
    "SAMPLE_HOSPITALS",
    "WHO_ICD10_CODES",
    "HospitalProfile",
    "TableCount",
    "database_uri",
    "generate_sources",
    "mutate_sources",
    "sqlite_path",
]
