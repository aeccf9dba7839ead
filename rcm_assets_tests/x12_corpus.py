"""The bad-input corpus for X12 files: each case with what must become of it.

Every broken case is a small edit of one of two valid bases, `BASE_835` (005010X221A1) and
`BASE_837P` (005010X222A1); pyx12 4.0 accepts both without a single error. Each base holds one
interchange (ISA/IEA) with one functional group (GS/GE) of TWO transaction sets, ST02 `0001` and
`0002`, so a case can show one set rejected while the other loads. One segment a line
(`~` + newline): the segment number of a case (ISA = 1, the way pyx12 counts `cur_line`) is
also its line number in an editor.

`BASE_835` balances: per service line SVC02 = SVC03 + its CAS amounts; per claim CLP03 = CLP04 +
every CAS of the claim and its lines; per set BPR02 = sum of CLP04 - PLB amounts
(set 0001: 150.00 + 250.00 - 15.00 = 385.00; set 0002: 80.00 + 0.00 = 80.00).
The payee is N1*PE*GOOD CLINIC*XX*1234567893, the 837 billing provider
NM1*85*2*GOOD CLINIC*****XX*1234567893 with REF*EI*111111111.

Reason fragments are meant to be matched case-insensitively against the reason the parser
gives. Each case's docstring-comment says what pyx12 itself reports: the `X12Reader` errors
(`pop_errors()`: level "isa" / "gs" / "st" / "seg", code, message) and the `x12n_document`
error tree (interchange → group → transaction set → segment → element, as its JSON output).
`test_x12_corpus.py` re-checks all of it against pyx12 directly.
"""

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class X12Case:
    """An X12 file and what must happen to it.

    `rejected_file`: a fragment of the reason when the whole file is rejected ("" = it is not);
    `rejected_sets`: ST02 of the transaction sets rejected alone (`set_reason` is a fragment of
    their reason); `loaded_sets`: ST02 of the sets that must load; `segment`: the segment number
    (ISA = 1) the rejection must name, where it is known; `quarantined`: the quarantine reason
    expected in silver for a claim that parses but is wrong (`difference` = the amount it is
    off by); `duplicate_of`: the case whose identical bytes were ingested first, so this file
    must not be ingested again.
    """

    data: bytes
    rejected_file: str = ""
    rejected_sets: tuple[str, ...] = ()
    loaded_sets: tuple[str, ...] = ()
    segment: int | None = None
    quarantined: str = ""
    set_reason: str = ""
    difference: str = ""
    duplicate_of: str = ""


TERMINATOR = "~\n"


def _interchange(
    sender: str, receiver: str, control: str, group: str, fic: str, guide: str, sets: list
) -> bytes:
    """ISA … IEA around the transaction sets (ST01, ST02, body), SE01/GE01 counted."""
    segments = [
        f"ISA*00*          *00*          *ZZ*{sender:<15}*ZZ*{receiver:<15}"
        f"*250115*1200*^*00501*{control}*0*T*:",
        f"GS*{fic}*{sender}*{receiver}*20250115*1200*{group}*X*{guide}",
    ]
    for st01, st02, body in sets:
        st = [f"ST*{st01}*{st02}" + (f"*{guide}" if st01 == "837" else ""), *body]
        segments += [*st, f"SE*{len(st) + 1}*{st02}"]
    segments += [f"GE*{len(sets)}*{group}", f"IEA*1*{control}"]
    return "".join(segment + TERMINATOR for segment in segments).encode("ascii")


def _payment(amount: str, trace: str) -> list[str]:
    """The 835 header: BPR, TRN, the payer (1000A) and the payee (1000B)."""
    return [
        f"BPR*I*{amount}*C*CHK************20250115",
        f"TRN*1*{trace}*1999999999",
        "DTM*405*20250114",
        "N1*PR*ACME HEALTH PLAN",
        "N3*PO BOX 1000",
        "N4*SPRINGFIELD*IL*62701",
        "PER*BL*EDI SUPPORT*TE*8005551212",
        "N1*PE*GOOD CLINIC*XX*1234567893",
    ]


def _paid_claim(clp: str, patient: str, member: str, lines: list) -> list[str]:
    """CLP, NM1*QC and the service lines (SVC, DTM*472, CAS…)."""
    segments = [clp, f"NM1*QC*1*{patient}****MI*{member}"]
    for svc, date, adjustments in lines:
        segments += [svc, f"DTM*472*{date}", *adjustments]
    return segments


BASE_835 = _interchange(
    "ACMEPAYER",
    "GOODCLINIC",
    "000000101",
    "101",
    "HP",
    "005010X221A1",
    [
        (
            "835",
            "0001",
            [
                *_payment("385.00", "CHK0001"),
                "LX*1",
                *_paid_claim(
                    "CLP*CLM0001*1*200.00*150.00*20.00*12*PAYERCLM0001",
                    "DOE*JANE",
                    "MEM0001",
                    [
                        (
                            "SVC*HC:99213*120.00*90.00**1",
                            "20250110",
                            ["CAS*CO*45*10.00", "CAS*PR*2*20.00"],
                        ),
                        ("SVC*HC:85025*80.00*60.00**1", "20250110", ["CAS*CO*45*20.00"]),
                    ],
                ),
                *_paid_claim(
                    "CLP*CLM0002*1*300.00*250.00*25.00*12*PAYERCLM0002",
                    "ROE*RICHARD",
                    "MEM0002",
                    [
                        (
                            "SVC*HC:99214*300.00*250.00**1",
                            "20250111",
                            ["CAS*CO*45*25.00", "CAS*PR*1*25.00"],
                        )
                    ],
                ),
                "PLB*1234567893*20251231*WO:CLM0009*15.00",
            ],
        ),
        (
            "835",
            "0002",
            [
                *_payment("80.00", "CHK0002"),
                "LX*1",
                *_paid_claim(
                    "CLP*CLM0003*1*100.00*80.00**12*PAYERCLM0003",
                    "POE*EDGAR",
                    "MEM0003",
                    [("SVC*HC:97110*100.00*80.00**1", "20250112", ["CAS*CO*45*20.00"])],
                ),
                *_paid_claim(
                    "CLP*CLM0004*4*50.00*0.00**12*PAYERCLM0004",
                    "LOE*ANNA",
                    "MEM0004",
                    [("SVC*HC:97140*50.00*0.00**1", "20250112", ["CAS*CO*197*50.00"])],
                ),
            ],
        ),
    ],
)


def _claim(batch: str, clm: str, subscriber: str, member: str, lines: list) -> list[str]:
    """An 837P transaction set's body: submitter, receiver, billing provider, one claim."""
    segments = [
        f"BHT*0019*00*{batch}*20250115*1200*CH",
        "NM1*41*2*GOOD CLINIC*****46*GOODCLINIC",
        "PER*IC*BILLING DESK*TE*2175551212",
        "NM1*40*2*ACME HEALTH PLAN*****46*ACMEPAYER",
        "HL*1**20*1",
        "NM1*85*2*GOOD CLINIC*****XX*1234567893",
        "N3*1 MAIN ST",
        "N4*SPRINGFIELD*IL*627010001",
        "REF*EI*111111111",
        "HL*2*1*22*0",
        "SBR*P*18*******CI",
        f"NM1*IL*1*{subscriber}****MI*{member}",
        "N3*10 ELM ST",
        "N4*SPRINGFIELD*IL*627010001",
        "DMG*D8*19800101*F",
        "NM1*PR*2*ACME HEALTH PLAN*****PI*ACMEPAYER",
        clm,
        "HI*ABK:J069",
    ]
    for number, (sv1, date) in enumerate(lines, 1):
        segments += [f"LX*{number}", sv1, f"DTP*472*D8*{date}"]
    return segments


BASE_837P = _interchange(
    "GOODCLINIC",
    "ACMEPAYER",
    "000000201",
    "201",
    "HC",
    "005010X222A1",
    [
        (
            "837",
            "0001",
            _claim(
                "BATCH0001",
                "CLM*PCN0001*200.00***11:B:1*Y*A*Y*Y",
                "DOE*JANE",
                "MEM0001",
                [
                    ("SV1*HC:99213*120.00*UN*1***1", "20250110"),
                    ("SV1*HC:85025*80.00*UN*1***1", "20250110"),
                ],
            ),
        ),
        (
            "837",
            "0002",
            _claim(
                "BATCH0002",
                "CLM*PCN0002*300.00***11:B:1*Y*A*Y*Y",
                "ROE*RICHARD",
                "MEM0002",
                [("SV1*HC:99214*300.00*UN*1***1", "20250111")],
            ),
        ),
    ],
)


def _edit(data: bytes, old: str, new: str) -> bytes:
    """`data` with the one occurrence of `old` replaced by `new`."""
    text = data.decode("ascii")
    if text.count(old) != 1:
        raise ValueError(f"{old!r} occurs {text.count(old)} times")
    return text.replace(old, new).encode("ascii")


def _recount(data: bytes) -> bytes:
    """Set every SE01 to its transaction set's true segment count (after an edit)."""
    lines = data.decode("ascii").split(TERMINATOR)
    start = 0
    for number, line in enumerate(lines):
        if line.startswith("ST*"):
            start = number
        elif line.startswith("SE*"):
            lines[number] = re.sub(r"^SE\*\d+\*", f"SE*{number - start + 1}*", line)
    return TERMINATOR.join(lines).encode("ascii")


def _lines(data: bytes, first: int, last: int | None = None) -> bytes:
    """Segments `first`..`last` (1-based, inclusive) of a base file."""
    segments = data.decode("ascii").split(TERMINATOR)
    return "".join(s + TERMINATOR for s in segments[first - 1 : last]).encode("ascii")


_835_LINES = BASE_835.count(b"\n")  # 52: ISA … GE at 51, IEA at 52

CASES: dict[str, X12Case] = {
    # The bases themselves: pyx12 reports nothing.
    "valid_835": X12Case(BASE_835, loaded_sets=("0001", "0002")),
    "valid_837p": X12Case(BASE_837P, loaded_sets=("0001", "0002")),
    # Cut inside segment 45 (CLP*CLM0004…): no SE for set 0002, no GE, no IEA. X12Reader at
    # the end: ("isa", "023", 'Mandatory segment "Interchange Control Trailer"
    # (IEA=000000101) missing'), ("gs", "3", … "(GE=101) missing"), ("st", "2", … "(SE=0002)
    # missing"); in the tree at interchange, group and set 0002.
    "truncated": X12Case(
        BASE_835[: BASE_835.index(b"CLP*CLM0004") + len(b"CLP*CLM00")], rejected_file="IEA"
    ),
    # The ISA declares "*" (and "~"), the body is delimited by "|": X12Reader reports at every
    # segment from 2 on ("seg", "8", 'Segment "GS|HP|…" is empty') and ("seg", "1", 'Segment
    # identifier "GS|HP|…" is invalid'), then ("isa", "023", … IEA … missing); the tree only
    # holds the interchange error (IEA missing): the first bad segment is 2.
    "wrong_separators": X12Case(
        _lines(BASE_835, 1, 1) + _lines(BASE_835, 2).replace(b"*", b"|"),
        rejected_file="segment identifier",
        segment=2,
    ),
    # ISA06 not padded to 15 characters, so the ISA is 100 characters instead of 106 and every
    # separator is read from the wrong place: X12Reader() raises X12Error("ISA Interchange
    # Control Version Number is unknown: 00000 for ISA*00*…").
    "short_isa": X12Case(
        _edit(BASE_835, "*ZZ*ACMEPAYER      *", "*ZZ*ACMEPAYER*"), rejected_file="ISA", segment=1
    ),
    # No IEA: X12Reader at the end ("isa", "023", 'Mandatory segment "Interchange Control
    # Trailer" (IEA=000000101) missing'); the tree holds it at the interchange.
    "missing_iea": X12Case(_lines(BASE_835, 1, _835_LINES - 1), rejected_file="IEA"),
    # SE*26 for a set of 27 segments: X12Reader at segment 29 ("st", "4", "SE count of 26 for
    # SE02=0001 is wrong. I count 27"), in the tree at set 0001 (err_cde 4).
    "se01_count_wrong": X12Case(
        _edit(BASE_835, "SE*27*0001", "SE*26*0001"), rejected_file="SE01", segment=29
    ),
    # SE02 0009 closes ST02 0001: X12Reader at segment 29 ("st", "3", "SE id=0009 does not
    # match ST id=0001"), in the tree at set 0001 (err_cde 3).
    "st02_se02_mismatch": X12Case(
        _edit(BASE_835, "SE*27*0001", "SE*27*0009"), rejected_file="SE02", segment=29
    ),
    # IEA02 000000102 closes ISA13 000000101: X12Reader at segment 52 ("isa", "001", "IEA
    # id=000000102 does not match ISA id=000000101"), in the tree at the interchange.
    "isa13_iea02_mismatch": X12Case(
        _edit(BASE_835, "IEA*1*000000101", "IEA*1*000000102"), rejected_file="IEA02", segment=52
    ),
    # GE02 102 closes GS06 101: X12Reader at segment 51 ("gs", "4", "GE id=102 does not match
    # GS id=101"), in the tree at the group.
    "gs06_ge02_mismatch": X12Case(
        _edit(BASE_835, "GE*2*101", "GE*2*102"), rejected_file="GE02", segment=51
    ),
    # ST*850 (a purchase order) as the second set of an 835 group (GS08 005010X221A1).
    # X12Reader reports nothing. The 835 map has no place for it: x12n_document reports
    # 'Segment ST*850 not found.  Started at /ISA_LOOP/GS_LOOP/ST_LOOP/SE' (code 1) at
    # segment 30, the same for each of its segments (31-49), and 'Segment SE exceeded max
    # count.  Found 2, should have 1' (code 5) at 50 — and files ALL of them under set 0001,
    # since no new set was opened. pyx12 never names ST01; the parser must compare ST01 with
    # GS08 itself, and must not reject set 0001 for errors past its SE (segment 29).
    "unknown_st01": X12Case(
        _edit(BASE_835, "ST*835*0002", "ST*850*0002"),
        rejected_sets=("0002",),
        loaded_sets=("0001",),
        segment=30,
        set_reason="ST01",
    ),
    # CLP04 "8A.00" in set 0002: element error at segment 40, element 4, code 6 'Data element
    # "Claim Payment Amount" (CLP04) is type R, contains an invalid character(8A.00)'.
    "non_numeric_amount": X12Case(
        _edit(BASE_835, "CLP*CLM0003*1*100.00*80.00*", "CLP*CLM0003*1*100.00*8A.00*"),
        rejected_sets=("0002",),
        loaded_sets=("0001",),
        segment=40,
        set_reason="CLP04",
    ),
    # CLP*CLM0003 without its NM1*QC (SE01 recounted): segment error at segment 41 (the SVC
    # that follows the CLP), code 3 'Mandatory segment "Patient Name" (NM1) missing'.
    "claim_without_patient": X12Case(
        _recount(_edit(BASE_835, "NM1*QC*1*POE*EDGAR****MI*MEM0003" + TERMINATOR, "")),
        rejected_sets=("0002",),
        loaded_sets=("0001",),
        segment=41,
        set_reason="NM1",
    ),
    # CLP03 of CLM0003 110.00 while CLP04 80.00 + CAS 20.00 = 100.00; BPR02 still balances.
    # IG-valid: pyx12 reports nothing, both sets load; silver quarantines claim CLM0003 as
    # unbalanced by 10.00 (CLP03 - CLP04 - all CAS of the claim and its lines).
    "unbalanced_claim": X12Case(
        _edit(BASE_835, "CLP*CLM0003*1*100.00", "CLP*CLM0003*1*110.00"),
        loaded_sets=("0001", "0002"),
        quarantined="unbalanced_claim",
        difference="10.00",
    ),
    # The same interchange again (identical bytes, another file name) after `valid_835`: pyx12
    # sees nothing wrong (nor can it: it reads one file); the lake must hold the sets once.
    "duplicate_interchange": X12Case(BASE_835, duplicate_of="valid_835"),
    # An 837P whose GS08 is 005010X222A2 (the 837P errata after A1): pyx12 4.0 has no map for
    # it; x12n_document raises EngineError("Map not found.  icvn=00501, fic=HC,
    # vriic=005010X222A2") when it reaches the GS (segment 2).
    "unsupported_guide": X12Case(
        _edit(
            BASE_837P,
            "GS*HC*GOODCLINIC*ACMEPAYER*20250115*1200*201*X*005010X222A1",
            "GS*HC*GOODCLINIC*ACMEPAYER*20250115*1200*201*X*005010X222A2",
        ),
        rejected_file="005010X222A2",
        segment=2,
    ),
    # CLM02 (total claim charge) "3OO.00" (letter O) in the 837P's set 0002: element error at
    # segment 46, element 2, code 6 'Data element "Total Claim Charge Amount" (CLM02) is type R,
    # contains an invalid character(3OO.00)'.
    "non_numeric_charge_837p": X12Case(
        _edit(BASE_837P, "CLM*PCN0002*300.00*", "CLM*PCN0002*3OO.00*"),
        rejected_sets=("0002",),
        loaded_sets=("0001",),
        segment=46,
        set_reason="CLM02",
    ),
    # Not X12: X12Reader() raises X12Error("First line does not begin with 'ISA': Cla").
    "csv_file": X12Case(
        b"ClaimID,PatientID,ClaimAmount\nCLAIM9000001,HOSP1-000001,100.00\n", rejected_file="ISA"
    ),
    # Empty: X12Reader() raises X12Error("First line does not begin with 'ISA': ").
    "empty": X12Case(b"", rejected_file="empty"),
}
