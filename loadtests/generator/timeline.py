"""The timeline file format: one JSON line per (second, transport), latency histograms encoded as text.

Pure (no Locust): both the recorder inside Locust and the collect stage outside it use this.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3


def new_histogram() -> HdrHistogram:
    """An empty latency histogram in microseconds, from 1 us to 1 hour."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def encode_histogram(histogram: HdrHistogram) -> str:
    """Compressed, base64 text form of a histogram (HdrHistogram's standard encoding)."""
    encoded = histogram.encode()
    return encoded.decode("ascii") if isinstance(encoded, bytes) else str(encoded)


def decode_histogram(text: str) -> HdrHistogram:
    """Inverse of `encode_histogram`."""
    return HdrHistogram.decode(text.encode("ascii"))


def read_timeline(path: Path) -> list[dict[str, Any]]:
    """Read a timeline file back, skipping a torn last line left by a crash."""
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


