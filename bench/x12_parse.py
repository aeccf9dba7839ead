"""X12 835 parsing and bronze load: segments per second, CPU and peak RSS by file size.

Builds one 835 interchange of N claims from the corpus's valid base (each claim: CLP, NM1,
two service lines with dates and CAS), parses and validates it with `rcm_assets.x12`
(pyx12's implementation-guide walk), and appends the segments to a Delta table the way the
landing asset does (chunks through a local staging file, one commit), in a fresh process per
size so each peak RSS is its own. A 100 MB 835 is `--claims 450000` (about 5M segments).
Usage: python bench/x12_parse.py [--claims 100 1000 10000]
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLAIM = [
    "CLP*C{n:07d}*1*200*150*20*12*PCN{n:07d}",
    "NM1*QC*1*DOE*JANE****MI*M{n:07d}",
    "SVC*HC:99213*120*90**1",
    "DTM*472*20250110",
    "CAS*CO*45*10",
    "CAS*PR*2*20",
    "AMT*B6*110",
    "SVC*HC:85025*80*60**1",
    "DTM*472*20250110",
    "CAS*CO*45*20",
    "AMT*B6*60",
]


def remittance(claims: int) -> bytes:
    body = [
        "ST*835*0001",
        f"BPR*I*{150 * claims}*C*ACH*CCP*01*999999999*DA*123456*1512345678**01*999988880*DA"
        "*98765*20250120",
        "TRN*1*TRACE0001*1512345678",
        "DTM*405*20250120",
        "N1*PR*ACME HEALTH PLAN",
        "N3*PO BOX 1",
        "N4*LANSING*MI*48909",
        "PER*BL*CLAIMS*TE*9995551212",
        "N1*PE*GOOD CLINIC*XX*1234567893",
        "LX*1",
    ]
    for n in range(claims):
        body += [segment.format(n=n) for segment in CLAIM]
    body.append(f"SE*{len(body) + 1}*0001")
    isa = (
        "ISA*00*          *00*          *ZZ*ACMEPAYER      *ZZ*GOODCLINIC     *250120*1200*^*"
        "00501*000000101*0*P*:"
    )
    segments = [isa, "GS*HP*ACMEPAYER*GOODCLINIC*20250120*1200*101*X*005010X221A1", *body]
    segments += ["GE*1*101", "IEA*1*000000101"]
    return ("~\n".join(segments) + "~\n").encode()


def measure(claims: int) -> dict:
    import polars as pl

    from rcm_assets.lake import delta
    from rcm_assets.staging import staging
    from rcm_assets.x12 import parse_x12

    data = remittance(claims)
    wall, cpu = time.perf_counter(), time.process_time()
    parsed = parse_x12(data, "bench.x12")
    parse_wall = time.perf_counter() - wall
    # As the landing asset loads it: chunk by chunk through a staging file, one Delta commit.
    with tempfile.TemporaryDirectory() as folder, staging() as staged:
        for batch in parsed.batches():
            staged.add(batch.with_columns(load_id=pl.lit("bench")))
        delta.append(f"{folder}/x12_segments", staged.reader(), {"operation": "bench"}, None)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    segments = staged.rows
    return {
        "claims": claims,
        "segments": segments,
        "megabytes": round(len(data) / 1e6, 2),
        "parse_s": round(parse_wall, 2),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "segments_per_s": round(segments / wall),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one)))
        return
    header = ("claims", "segments", "MB", "wall s", "cpu s", "seg/s", "RSS MB")
    print(" ".join(f"{name:>9}" for name in header))
    for claims in args.claims:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(claims)],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent.parent,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"{r['claims']:>9,} {r['segments']:>9,} {r['megabytes']:>9} {r['wall_s']:>9} "
            f"{r['cpu_s']:>9} {r['segments_per_s']:>9,} {r['peak_rss_mb']:>9,}"
        )


if __name__ == "__main__":
    main()
