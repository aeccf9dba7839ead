"""The report as a PDF, printed by headless Chromium from the written HTML page.

The page is self-contained (inline SVG charts, no scripts), so Chromium's own `--print-to-pdf`
gives the same figures on paper without another rendering library.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from rcm_assets.errors import RcmError

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
PRINT_SECONDS = 120


class PdfExportError(RcmError):
    """Chromium is missing or could not print the report."""


def write_pdf(page: Path, target: Path) -> None:
    """Print the HTML report at `page` to `target`, on Chromium's default page size."""
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    if browser is None:
        raise PdfExportError(
            f"no Chromium on PATH to print the PDF (apt-get install chromium); "
            f"the HTML report is at {page}"
        )
    with tempfile.TemporaryDirectory(prefix="rcm-pdf-") as profile:
        printed = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--no-pdf-header-footer",
                f"--print-to-pdf={target}",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=PRINT_SECONDS,
            check=False,
        )
    if printed.returncode != 0 or not target.is_file() or target.stat().st_size == 0:
        last = (printed.stderr.strip().splitlines() or ["no output"])[-1]
        raise PdfExportError(f"Chromium could not print {page} to {target}: {last}")
