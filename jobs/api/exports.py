"""A job's results as files: JSON lines and CSV, streamed row by row.

CSV cells are neutralised for spreadsheets (OWASP, "CSV Injection"): scraped text that starts
with `=`, `+`, `-`, `@`, a tab or a carriage return would be run as a formula by Excel, LibreOffice
or Google Sheets (`=HYPERLINK(...)` sends the reader's data away), so such a cell gets a leading
`'`, which spreadsheets show as text. JSON lines are data for programs and stay as scraped.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

from jobs.api.serializers import item_output
from jobs.models import JobItem

ScreenshotUrl = Callable[[JobItem], "str | None"]

CSV_HEAD = ["item_id", "key", "url", "final_url", "status", "http_status"]
CSV_TAIL = ["screenshot_url", "error_code", "error_message", "attempts", "credits", "finished_at"]

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralised(text: str) -> str:
    """`text` as a spreadsheet shows it, never runs it (a leading `'` before a formula start)."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list | bool):
        return neutralised(json.dumps(value, ensure_ascii=False))
    if isinstance(value, str):
        return neutralised(value)
    return value  # numbers: a negative number is a number, not a formula


def _data_cells(data: Any, columns: list[str]) -> list[Any]:
    if isinstance(data, dict):
        return [_cell(data.get(name)) for name in columns]
    if isinstance(data, list):  # a schema with list: true at the top: one JSON list per field
        return [_cell([row.get(name) if isinstance(row, dict) else None for row in data]) for name in columns]
    return [""] * len(columns)


def jsonl_lines(rows: Iterator[JobItem], screenshot_url: ScreenshotUrl) -> Iterator[str]:
    for item in rows:
        yield json.dumps(item_output(item, screenshot_url(item)), separators=(",", ":")) + "\n"


def csv_lines(rows: Iterator[JobItem], columns: list[str], screenshot_url: ScreenshotUrl) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow([neutralised(name) for name in CSV_HEAD + columns + CSV_TAIL])
    yield flush()
    for item in rows:
        writer.writerow(
            [
                item.pk,
                _cell(item.key),
                _cell(item.url),
                _cell(item.final_url),
                item.status,
                _cell(item.http_status),
                *_data_cells(item.data, columns),
                screenshot_url(item) or "",
                item.error_code,
                _cell(item.error_message),
                item.attempts,
                item.credits,
                item.finished_at.isoformat().replace("+00:00", "Z") if item.finished_at else "",
            ]
        )
        yield flush()
