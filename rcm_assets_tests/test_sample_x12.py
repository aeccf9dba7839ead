"""The sample X12 files: valid per pyx12's implementation guides, balanced, consistent with the
claims CSVs, deterministic, and hospital B recognisable only from its identifiers."""

import io
import logging
import shutil
from collections import Counter
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import pyx12.params
import pyx12.x12n_document

from rcm_assets.sample_data.x12 import (
    HOSPITAL_A,
    HOSPITAL_B,
    claim_count,
    write_x12_change_batch,
    write_x12_files,
)
from rcm_assets_tests.conftest import SAMPLE_SCALE

SEED = 11

# pyx12 logs every finding; the 999 it writes is what the tests read.
logging.getLogger("pyx12").setLevel(logging.CRITICAL)


def copy_sources(sample_sources: Path, home: Path) -> Path:
    """The session's sample sources and claims CSVs (never its landing/x12, which other tests'
    copies of landing/ must not see)."""
    shutil.copytree(sample_sources / "sources", home / "sources")
    shutil.copytree(sample_sources / "landing" / "claims", home / "landing" / "claims")
    return home


@pytest.fixture(scope="module")
def x12_home(sample_sources: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = copy_sources(sample_sources, tmp_path_factory.mktemp("x12"))
    write_x12_files(home, seed=SEED, scale=SAMPLE_SCALE)
    return home


@pytest.fixture(scope="module")
def batch_home(x12_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("x12batch")
    shutil.copytree(x12_home, home, dirs_exist_ok=True)
    write_x12_change_batch(home, seed=3, batch=1)
    return home


def x12_files(home: Path) -> list[Path]:
    return sorted((home / "landing" / "x12").glob("*.x12"))


# ---------------------------------------------------------------------------------------------
# An independent reader: separators from the ISA, segments as element lists


def segments(path: Path) -> list[list[str]]:
    text = path.read_text(encoding="ascii")
    element, component, terminator = text[3], text[104], text[105]
    assert text.startswith("ISA") and len(text.split(terminator)[0]) == 105
    out = []
    for raw in text.split(terminator):
        raw = raw.strip("\r\n")
        if raw:
            out.append([e.replace(component, ":") for e in raw.split(element)])
    return out


def amount(value: str) -> Decimal:
    return Decimal(value) if value else Decimal(0)


def transaction_sets(path: Path) -> list[list[list[str]]]:
    sets, current = [], None
    for seg in segments(path):
        if seg[0] == "ST":
            current = [seg]
        elif current is not None:
            current.append(seg)
            if seg[0] == "SE":
                sets.append(current)
                current = None
    return sets


def claim_blocks(tset: list[list[str]]) -> list[list[list[str]]]:
    blocks: list[list[list[str]]] = []
    for seg in tset:
        if seg[0] == "CLP":
            blocks.append([seg])
        elif seg[0] in ("PLB", "SE"):
            break
        elif blocks:
            blocks[-1].append(seg)
    return blocks


def cas_total(seg: list[str]) -> Decimal:
    return sum((amount(seg[i]) for i in range(3, len(seg), 3)), Decimal(0))


def remits(home: Path) -> list[tuple[Path, list[list[str]]]]:
    """(file, CLP block) for every claim of every 835, in file order (base, then batches)."""
    out = []
    for path in x12_files(home):
        for tset in transaction_sets(path):
            if tset[0][1] == "835":
                out += [(path, block) for block in claim_blocks(tset)]
    return out


def validate(path: Path) -> tuple[bool, str]:
    out999 = io.StringIO()
    ok = pyx12.x12n_document.x12n_document(pyx12.params.params(), str(path), out999, None, None)
    return ok, out999.getvalue()


def hospital_of(path: Path) -> str:
    text = path.read_text(encoding="ascii")
    has_a, has_b = HOSPITAL_A.npi in text, HOSPITAL_B.npi in text
    assert has_a != has_b, path.name
    return "hos-a" if has_a else "hos-b"


def claims_csv(home: Path, hospital: str) -> pl.DataFrame:
    name = "hospital1" if hospital == "hos-a" else "hospital2"
    return pl.read_csv(
        home / "landing" / "claims" / f"{name}_claim_data.csv", infer_schema_length=0
    ).with_columns(
        pl.col(c).map_elements(Decimal, return_dtype=pl.Object)
        for c in ("ClaimAmount", "PaidAmount", "Deductible", "Coinsurance", "Copay")
    )


# ---------------------------------------------------------------------------------------------
# Tests


def test_every_file_is_valid_per_pyx12(x12_home: Path, batch_home: Path) -> None:
    paths = x12_files(batch_home)
    assert len(paths) > len(x12_files(x12_home)) > 10
    for path in paths:
        ok, out999 = validate(path)
        assert ok, f"{path.name}:\n{out999}"
        assert "IK5*R" not in out999 and "AK9*R" not in out999, path.name
        # pyx12 writes a full 999 for claims only; for an 835 it stops after AK1.
        if "837" in path.name:
            assert "IK5*A" in out999 and "AK9*A" in out999, path.name


def test_file_names_and_kinds(x12_home: Path) -> None:
    names = [p.name for p in x12_files(x12_home)]
    a = [n for n in names if n.startswith("hospital1_")]
    b = [n for n in names if not n.startswith("hospital1_")]
    assert {n.split("_")[1] for n in a} == {"837P", "837I", "835"}
    assert all(n.startswith(("claims_837P_", "claims_837I_", "remit_PAYER")) for n in b)
    for path in x12_files(x12_home):
        kinds = {s[0][1] for s in transaction_sets(path)}
        assert kinds == ({"835"} if "835" in path.name or "remit" in path.name else {"837"})


def test_hospital_identifiers_in_the_right_files(x12_home: Path) -> None:
    for path in x12_files(x12_home):
        hospital = HOSPITAL_A if path.name.startswith("hospital1_") else HOSPITAL_B
        other = HOSPITAL_B if hospital is HOSPITAL_A else HOSPITAL_A
        text = path.read_text(encoding="ascii")
        assert other.npi not in text and other.tin not in text, path.name
        segs = segments(path)
        if "837" in path.name:
            billing = [s for s in segs if s[:2] == ["NM1", "85"]]
            assert billing and all(s[8:10] == ["XX", hospital.npi] for s in billing)
            assert ["REF", "EI", hospital.tin] in segs
        else:
            payee = [s for s in segs if s[:2] == ["N1", "PE"]]
            assert payee and all(s[3:5] == ["XX", hospital.npi] for s in payee)
            assert ["REF", "TJ", hospital.tin] in segs
    # hospital B's file names say nothing of the hospital
    assert not any("hospital2" in p.name for p in x12_files(x12_home))


def luhn_ok(npi: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed("80840" + npi)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def test_npis_pass_the_luhn_check() -> None:
    assert luhn_ok(HOSPITAL_A.npi) and luhn_ok(HOSPITAL_B.npi)
    assert not luhn_ok("1598765436")  # the first proposal for hospital B


def test_envelopes_are_consistent(x12_home: Path) -> None:
    isa_numbers: list[str] = []
    for path in x12_files(x12_home):
        isa = gs = st = None
        groups = sets = count = 0
        for seg in segments(path):
            tag = seg[0]
            count += 1
            if tag == "ISA":
                isa, groups = seg, 0
                isa_numbers.append(seg[13])
            elif tag == "GS":
                gs, sets, groups = seg, 0, groups + 1
            elif tag == "ST":
                st, count, sets = seg, 1, sets + 1
            elif tag == "SE":
                assert seg[2] == st[2] and int(seg[1]) == count, path.name
            elif tag == "GE":
                assert seg[2] == gs[6] and int(seg[1]) == sets, path.name
            elif tag == "IEA":
                assert seg[2] == isa[13] and int(seg[1]) == groups, path.name
    assert len(isa_numbers) == len(set(isa_numbers))


def test_envelope_variants(x12_home: Path) -> None:
    shapes = Counter()
    for path in x12_files(x12_home):
        segs = segments(path)
        tags = Counter(s[0] for s in segs)
        shapes["two_isa"] += tags["ISA"] > 1
        shapes["two_gs"] += tags["GS"] > 1 and tags["ISA"] == 1
        shapes["two_st"] += tags["ST"] > 1
        text = path.read_text(encoding="ascii")
        if text[3] != "*":
            shapes["other_separator"] += 1
            assert "\n" not in text
        else:
            assert text.count("~\n") == len(segs)
    assert shapes["two_isa"] and shapes["two_gs"] and shapes["two_st"]
    assert shapes["other_separator"] == 1


def test_every_835_balances(batch_home: Path) -> None:
    for path in x12_files(batch_home):
        for tset in transaction_sets(path):
            if tset[0][1] != "835":
                continue
            paid_total = Decimal(0)
            for block in claim_blocks(tset):
                clp = block[0]
                claim_cas = line_cas = Decimal(0)
                line = None
                for seg in [*block[1:], ["END"]]:
                    if seg[0] in ("SVC", "END") and line is not None:
                        charge, paid, cas = line
                        assert charge == paid + cas, f"{path.name} {clp[1]} line"
                        line_cas += cas
                        line = None
                    if seg[0] == "SVC":
                        line = [amount(seg[2]), amount(seg[3]), Decimal(0)]
                    elif seg[0] == "CAS":
                        if line is None:
                            claim_cas += cas_total(seg)
                        else:
                            line[2] += cas_total(seg)
                assert amount(clp[3]) == amount(clp[4]) + claim_cas + line_cas, clp[1]
                paid_total += amount(clp[4])
            plb = [s for s in tset if s[0] == "PLB"]
            adjustments = sum((amount(s[i]) for s in plb for i in range(4, len(s), 2)), Decimal(0))
            bpr = next(s for s in tset if s[0] == "BPR")
            assert amount(bpr[2]) == paid_total - adjustments, path.name
            assert amount(bpr[2]) >= 0


def test_remits_match_the_claims_csv(x12_home: Path) -> None:
    per_claim: dict[tuple[str, str], list[list[str]]] = {}
    for path, block in remits(x12_home):
        per_claim.setdefault((hospital_of(path), block[0][1]), []).append(block[0])
    assert per_claim
    for hospital in ("hos-a", "hos-b"):
        csv = {r["ClaimID"]: r for r in claims_csv(x12_home, hospital).iter_rows(named=True)}
        for (h, claim_id), clps in per_claim.items():
            if h != hospital:
                continue
            row = csv[claim_id]
            assert row["ClaimStatus"] != "Pending"
            final = [c for c in clps if c[2] != "22"]
            assert all(amount(c[3]) == row["ClaimAmount"] for c in final)
            assert amount(final[-1][4]) == row["PaidAmount"]
            assert sum(amount(c[4]) for c in clps) == row["PaidAmount"]
            if row["ClaimStatus"] in ("Paid", "Partially Paid"):
                share = row["Deductible"] + row["Coinsurance"] + row["Copay"]
                assert amount(final[-1][5]) == share and final[-1][2] == "1"
            else:
                assert final[-1][2] == "4"


def test_claims_match_the_csv_and_sources(x12_home: Path) -> None:
    for hospital in ("hos-a", "hos-b"):
        csv = {r["ClaimID"]: r for r in claims_csv(x12_home, hospital).iter_rows(named=True)}
        billed = []
        for path in x12_files(x12_home):
            if "837" not in path.name or hospital_of(path) != hospital:
                continue
            segs = segments(path)
            for i, seg in enumerate(segs):
                if seg[0] != "CLM":
                    continue
                row = csv[seg[1]]
                billed.append(seg[1])
                assert amount(seg[2]) == row["ClaimAmount"]
                assert seg[5].endswith(":1")  # frequency: original
                subscriber = next(s for s in reversed(segs[:i]) if s[:2] == ["NM1", "IL"])
                assert subscriber[9] == row["PatientID"]
                payer = next(s for s in reversed(segs[:i]) if s[:2] == ["NM1", "PR"])
                assert payer[9] == row["PayorID"]
                lines = []
                for s in segs[i + 1 :]:
                    if s[0] in ("HL", "SE"):
                        break
                    if s[0] in ("SV1", "SV2"):
                        lines.append(amount(s[2] if s[0] == "SV1" else s[3]))
                assert 1 <= len(lines) <= 3 and sum(lines) == row["ClaimAmount"]
        assert len(billed) == len(set(billed)) == claim_count(SAMPLE_SCALE)


def test_base_files_show_a_reversal_and_provider_adjustments(x12_home: Path) -> None:
    clps = [block[0] for _, block in remits(x12_home)]
    reversed_ids = {c[1] for c in clps if c[2] == "22"}
    assert reversed_ids
    for claim_id in reversed_ids:
        statuses = [c[2] for c in clps if c[1] == claim_id]
        assert statuses == ["1", "22", "1"]
    plb_codes = {
        s[i].split(":")[0]
        for path in x12_files(x12_home)
        for s in segments(path)
        if s[0] == "PLB"
        for i in range(3, len(s), 2)
    }
    assert {"L6", "FB"} <= plb_codes


def test_same_seed_is_byte_identical(sample_sources: Path, x12_home: Path, tmp_path: Path) -> None:
    again = copy_sources(sample_sources, tmp_path / "again")
    write_x12_files(again, seed=SEED, scale=SAMPLE_SCALE)
    first, second = x12_files(x12_home), x12_files(again)
    assert [p.name for p in first] == [p.name for p in second]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second, strict=True))
    other = copy_sources(sample_sources, tmp_path / "other")
    write_x12_files(other, seed=SEED + 1, scale=SAMPLE_SCALE)
    assert [p.read_bytes() for p in x12_files(other)] != [p.read_bytes() for p in first]


def test_change_batch_reverses_and_readjudicates(x12_home: Path, batch_home: Path) -> None:
    base = {p.name for p in x12_files(x12_home)}
    new = [p for p in x12_files(batch_home) if p.name not in base]
    assert new and all("_batch1_" in p.name for p in new)
    earlier = {}
    for path, block in remits(x12_home):
        earlier.setdefault((hospital_of(path), block[0][1]), []).append(block[0])
    readjudicated = overturned = 0
    for path in new:
        for tset in transaction_sets(path):
            clps = [b[0] for b in claim_blocks(tset)]
            for reversal, again in zip(clps[::2], clps[1::2], strict=True):
                assert reversal[2] == "22" and again[2] in ("1", "2")
                assert reversal[1] == again[1]
                before = earlier[(hospital_of(path), again[1])][-1]
                assert amount(reversal[4]) == -amount(before[4])
                assert amount(again[4]) != amount(before[4])
                readjudicated += before[2] == "1"
                overturned += before[2] == "4" and amount(again[4]) > 0
    assert readjudicated and overturned


def test_change_batch_is_deterministic(x12_home: Path, batch_home: Path, tmp_path: Path) -> None:
    shutil.copytree(x12_home, tmp_path, dirs_exist_ok=True)
    written = write_x12_change_batch(tmp_path, seed=3, batch=1)
    for path in written:
        assert path.read_bytes() == (batch_home / "landing" / "x12" / path.name).read_bytes()
    # A second batch changes other claims than the first.
    second = write_x12_change_batch(tmp_path, seed=3, batch=2)
    ids = [
        {b[0][1] for p in paths for t in transaction_sets(p) for b in claim_blocks(t)}
        for paths in (written, second)
    ]
    assert ids[1] and not ids[0] & ids[1]
