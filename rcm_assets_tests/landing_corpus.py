"""The bad-input corpus for landing files: each case with what must become of every record."""

import gzip
from dataclasses import dataclass

CLAIM_COLUMNS = (
    "ClaimID,TransactionID,PatientID,EncounterID,ProviderID,DeptID,ServiceDate,ClaimDate,"
    "PayorID,ClaimAmount,PaidAmount,ClaimStatus,PayorType,Deductible,Coinsurance,Copay,"
    "InsertDate,ModifiedDate"
)


def claim(n: int, status: str = "Paid") -> str:
    return (
        f"CLAIM9{n:07d},TRANS9{n:07d},HOSP1-{n:06d},ENC9{n:07d},PROV0001,DEPT001,2025-01-02,"
        f"2025-01-05,PAYER001,100.00,80.00,{status},Medicare,0.00,20.00,0.00,"
        "2025-01-05 10:00:00,2025-01-06 10:00:00"
    )


@dataclass(frozen=True)
class Case:
    """A landing file and what must happen to it.

    `rejected_file`: the reason (a fragment) when the whole file is rejected; otherwise every
    data record is either `landed` or `rejected` with the reason fragments given by line.
    """

    data: bytes
    records: int = 0
    landed: int = 0
    rejected: dict[int, str] | None = None
    rejected_file: str = ""


def lines(*texts: str) -> bytes:
    return ("\n".join(texts) + "\n").encode()


CASES: dict[str, Case] = {
    "empty": Case(b"", rejected_file="the file is empty"),
    "header_only": Case(lines(CLAIM_COLUMNS)),
    "missing_column": Case(
        lines(CLAIM_COLUMNS.replace(",PaidAmount", ""), claim(1).replace(",80.00", "")),
        rejected_file="missing column(s) PaidAmount",
    ),
    "extra_column": Case(
        lines(CLAIM_COLUMNS + ",Remark", claim(1) + ",hello"),
        rejected_file="unexpected column(s) Remark",
    ),
    "wrong_delimiter": Case(
        lines(CLAIM_COLUMNS.replace(",", ";"), claim(1).replace(",", ";")),
        rejected_file="is the file delimited by ','",
    ),
    "wrong_field_count": Case(
        lines(CLAIM_COLUMNS, claim(1), claim(2) + ",extra", claim(3).rsplit(",", 2)[0]),
        records=3,
        landed=1,
        rejected={3: "expected 18 fields, found 19", 4: "expected 18 fields, found 16"},
    ),
    "non_utf8": Case(
        lines(CLAIM_COLUMNS, claim(1))
        + claim(2).replace("Medicare", "M\xe9dicare").encode("latin-1")
        + b"\n"
        + lines(claim(3)),
        records=3,
        landed=2,
        rejected={3: "column PayorType is not valid UTF-8"},
    ),
    "embedded_newline": Case(
        lines(CLAIM_COLUMNS, claim(1).replace("Paid,", '"Paid\nafter appeal",', 1), claim(2)),
        records=2,
        landed=2,
    ),
    "bad_quoting": Case(
        lines(CLAIM_COLUMNS, claim(1), claim(2).replace("Paid", '"Pa"id'), claim(3)),
        records=3,
        landed=2,
        rejected={3: "not valid CSV"},
    ),
    "unclosed_quote": Case(
        lines(CLAIM_COLUMNS, claim(1), claim(2).replace("Paid", '"Paid'), claim(3), claim(4)),
        records=4,
        landed=3,
        rejected={3: "a quote opened on this line is never closed"},
    ),
    "duplicate_claim_id": Case(
        lines(CLAIM_COLUMNS, claim(1), claim(2), claim(1, status="Denied")),
        records=3,
        landed=2,
        rejected={4: "duplicate ClaimID 'CLAIM90000001' (first on line 2)"},
    ),
    "gzip_named_csv": Case(
        gzip.compress(lines(CLAIM_COLUMNS, claim(1))),
        rejected_file="the file is gzip-compressed, not CSV text",
    ),
    "zip_named_csv": Case(b"PK\x03\x04" + bytes(40), rejected_file="the file is a ZIP archive"),
    "utf16_text": Case(
        "\n".join([CLAIM_COLUMNS, claim(1)]).encode("utf-16"), rejected_file="NUL bytes"
    ),
    "latin1_header": Case(  # the undecodable byte is named, never dropped or garbled
        lines(CLAIM_COLUMNS.replace("ClaimID", "Cl\xe9imID", 1), claim(1))
        .decode()
        .encode("latin-1"),
        rejected_file="unexpected column(s) Cl\\xe9imID",
    ),
    "crlf_and_blank_lines": Case(
        (CLAIM_COLUMNS + "\r\n" + claim(1) + "\r\n\r\n" + claim(2) + "\r\n").encode(),
        records=2,
        landed=2,
    ),
}
