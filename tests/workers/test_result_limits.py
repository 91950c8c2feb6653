"""An action's stored result is cut to ACTION_RESULT_MAX_BYTES, longest strings first."""

from __future__ import annotations

import json

from workers.action_runner import result_fit


def _size(value: object) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode())


def test_a_result_that_fits_is_returned_unchanged() -> None:
    result = {"html_content": "<html></html>", "url": "http://127.0.0.1/"}
    assert result_fit(result, 1024) is result


def test_the_longest_strings_are_cut_first_and_flagged() -> None:
    result = {"url": "http://127.0.0.1/", "markdown": "é" * 300_000, "items": [{"name": "a" * 100}]}
    fitted = result_fit(result, 100_000)
    assert _size(fitted) <= 100_000
    assert fitted["truncated"] is True
    assert fitted["url"] == result["url"] and fitted["items"] == result["items"]
    assert len(fitted["markdown"]) > 40_000  # cut to what fits, not emptied
    assert len(result["markdown"]) == 300_000  # the original is untouched


def test_a_result_of_many_small_strings_that_cannot_fit_is_replaced_by_the_flag() -> None:
    result = {"elements": [{"id": f"e{i}", "tag": "a"} for i in range(20_000)]}
    assert result_fit(result, 65_536) == {"truncated": True}
