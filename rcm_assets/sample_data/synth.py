"""Vectorised building blocks: seeded randomness, Faker pools and realistic identifier formats.

Faker is slow per call, so it only fills small pools that numpy then samples from; everything
row-sized is produced with numpy and polars.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import polars as pl
from faker import Faker

_EPOCH = date(1970, 1, 1)
_U64 = np.uint64
_MASK64 = (1 << 64) - 1
_POOL_SIZE = 2000


def day_number(d: date) -> int:
    """Days since 1970-01-01, the integer form every generated date is computed in."""
    return (d - _EPOCH).days


def epoch_seconds(value: datetime) -> int:
    return (value - datetime(1970, 1, 1)).days * 86_400 + (
        value - datetime(value.year, value.month, value.day)
    ).seconds


def stable_key(text: str) -> int:
    """Process-independent key (``hash()`` is salted per process, which would break seeds)."""
    return zlib.crc32(text.encode("utf-8"))


def rng_for(*parts: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([p & _MASK64 for p in parts]))


def salt_for(*parts: int) -> int:
    seq = np.random.SeedSequence([p & _MASK64 for p in parts])
    return int(seq.generate_state(1, dtype=np.uint64)[0])


def hash64(salt: int, values: np.ndarray) -> np.ndarray:
    """SplitMix64 of (salt, value): per-entity randomness that needs no stored state.

    Lets different chunks (and different tables) agree on an entity's traits, e.g. the
    insurance of patient 123, without keeping per-patient arrays in memory.
    """
    x = values.astype(_U64) * _U64(0x9E3779B97F4A7C15) + _U64(salt)
    x ^= x >> _U64(30)
    x *= _U64(0xBF58476D1CE4E5B9)
    x ^= x >> _U64(27)
    x *= _U64(0x94D049BB133111EB)
    x ^= x >> _U64(31)
    return x


def hash_unit(salt: int, values: np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1) derived from ``hash64``."""
    return (hash64(salt, values) >> _U64(11)).astype(np.float64) * (1.0 / (1 << 53))


@dataclass(frozen=True)
class NamePools:
    male_first: pl.Series
    female_first: pl.Series
    last: pl.Series
    streets: pl.Series
    city_lines: pl.Series


def build_pools(seed: int, size: int = _POOL_SIZE) -> NamePools:
    fake = Faker("en_US")
    fake.seed_instance(seed)
    cities = [f"{fake.city()}, {fake.state_abbr()} {fake.zipcode()}" for _ in range(size // 2)]
    return NamePools(
        male_first=pl.Series([fake.first_name_male() for _ in range(size // 2)]),
        female_first=pl.Series([fake.first_name_female() for _ in range(size // 2)]),
        last=pl.Series([fake.last_name() for _ in range(size)]),
        streets=pl.Series([fake.street_address() for _ in range(size)]),
        city_lines=pl.Series(cities),
    )


def pick(pool: pl.Series, rng: np.random.Generator, n: int) -> pl.Series:
    return pool.gather(rng.integers(0, len(pool), n))


def first_names(pools: NamePools, rng: np.random.Generator, female: np.ndarray) -> pl.Series:
    male = pick(pools.male_first, rng, len(female))
    fem = pick(pools.female_first, rng, len(female))
    return pl.select(pl.when(pl.Series(female)).then(fem).otherwise(male)).to_series()


def addresses(pools: NamePools, rng: np.random.Generator, n: int) -> pl.Series:
    street = pick(pools.streets, rng, n)
    city = pick(pools.city_lines, rng, n)
    return street + ", " + city


def numbered(prefix: str, numbers: np.ndarray, width: int) -> pl.Series:
    """``prefix`` + zero-padded number; wider numbers keep all their digits (like ``:0{w}d``)."""
    return prefix + pl.Series(numbers, dtype=pl.Int64).cast(pl.String).str.zfill(width)


def _digits(values: np.ndarray, width: int) -> pl.Series:
    return pl.Series(values, dtype=pl.Int64).cast(pl.String).str.zfill(width)


def ssns(rng: np.random.Generator, n: int) -> pl.Series:
    # Area numbers 000, 666 and 900-999 are never issued.
    area = rng.integers(1, 899, n)
    area = np.where(area == 666, 667, area)
    group = rng.integers(1, 100, n)
    serial = rng.integers(1, 10_000, n)
    return _digits(area, 3) + "-" + _digits(group, 2) + "-" + _digits(serial, 4)


def phones(rng: np.random.Generator, n: int) -> pl.Series:
    # NANP: area code and exchange never start with 0 or 1.
    area = rng.integers(201, 990, n)
    exchange = rng.integers(200, 1000, n)
    line = rng.integers(0, 10_000, n)
    return "(" + _digits(area, 3) + ") " + _digits(exchange, 3) + "-" + _digits(line, 4)


def npi_check_digit(base9: str) -> int:
    """Luhn check digit of an NPI: computed over the card-issuer prefix 80840 + 9 digits."""
    total = 0
    for i, ch in enumerate(reversed("80840" + base9)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return (10 - total % 10) % 10


def npis(rng: np.random.Generator, n: int, taken: Sequence[str] = ()) -> list[str]:
    """``n`` distinct valid NPIs (10 digits, starting with 1) not in ``taken``."""
    blocked = set(taken)
    out: list[str] = []
    while len(out) < n:
        for base in rng.choice(100_000_000, size=n - len(out), replace=False):
            base9 = f"1{int(base):08d}"
            npi = base9 + str(npi_check_digit(base9))
            if npi not in blocked:
                blocked.add(npi)
                out.append(npi)
    return out


_MBI_LETTERS = np.frombuffer(b"ACDEFGHJKMNPQRTUVWXY", dtype=np.uint8)
_MBI_ALNUM = np.frombuffer(b"0123456789ACDEFGHJKMNPQRTUVWXY", dtype=np.uint8)
_DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)
# Medicare Beneficiary Identifier layout: C A AN N A AN N A A N N (no S, L, O, I, B, Z).
_MBI_LAYOUT = (
    _DIGITS[1:],
    _MBI_LETTERS,
    _MBI_ALNUM,
    _DIGITS,
    _MBI_LETTERS,
    _MBI_ALNUM,
    _DIGITS,
    _MBI_LETTERS,
    _MBI_LETTERS,
    _DIGITS,
    _DIGITS,
)


def _ascii(chars: np.ndarray) -> pl.Series:
    width = chars.shape[1]
    raw = np.ascontiguousarray(chars).view(f"S{width}").ravel()
    return pl.Series(raw).cast(pl.String)


def medicare_ids(entropy: np.ndarray) -> pl.Series:
    """MBI-formatted ids (e.g. ``1EG4TE5MK73``) from 64-bit random values."""
    rest = entropy.astype(_U64)
    out = np.empty((len(rest), len(_MBI_LAYOUT)), dtype=np.uint8)
    for pos, alphabet in enumerate(_MBI_LAYOUT):
        size = _U64(len(alphabet))
        out[:, pos] = alphabet[(rest % size).astype(np.intp)]
        rest = rest // size
    return _ascii(out)


def medicaid_ids(entropy: np.ndarray) -> pl.Series:
    """State-style Medicaid ids: ``MCD`` + 9 digits."""
    return "MCD" + _digits((entropy.astype(_U64) % _U64(1_000_000_000)).astype(np.int64), 9)


def days_to_dates(days: np.ndarray, null_mask: np.ndarray | None = None) -> pl.Series:
    series = pl.Series(days.astype(np.int32)).cast(pl.Date)
    if null_mask is not None and null_mask.any():
        series = series.scatter(np.flatnonzero(null_mask), None)
    return series


def seconds_to_datetimes(seconds: np.ndarray) -> pl.Series:
    return pl.from_epoch(pl.Series(seconds.astype(np.int64)), time_unit="s")


def money(values: np.ndarray) -> np.ndarray:
    return np.round(values, 2)
