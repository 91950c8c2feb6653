"""Recordings through the stack: a session created with `record` (through the tzafon SDK's extra
body) records the screencast of a real Chromium, the recording settles `ready` after the session
ends, its replay page plays in another Chromium under its CSP; a crashed session's recording
still settles; another account's is 404."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import requests

from sessions.models import Action, BrowserSession
from sessions.recordings import recording_frames
from tests.support.processes import wait_until
from tests.support.video import ffprobe


def _create(client: Any, **extra: Any) -> str:
    """As the SDK creates: a 503 (no capacity yet, a create that outlived its wait on a loaded
    machine) is retried."""
    return str(client.sdk(max_retries=3).computers.create(kind="browser", extra_body=extra).id)


def _recording(client: Any, session_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/computers/{session_id}/recording")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _settled(client: Any, session_id: str) -> dict[str, Any]:
    return dict(
        wait_until(
            lambda: (r := _recording(client, session_id))["status"] in ("ready", "failed") and r,
            timeout=40,
            interval=0.5,
            message="the recording to settle",
        )
    )


def _body_data(client: Any, session_id: str) -> dict[str, str]:
    html = client.post(f"/v1/computers/{session_id}/html", {}).json()["result"]["html_content"]
    tags = re.findall(r"<(?:body|img)[^>]*>", html)
    return {k: v for tag in tags for k, v in re.findall(r'data-(\w+)="([^"]*)"', tag)}


def test_a_recorded_session_replays_its_frames_and_actions_and_exports_an_mp4(
    make_client: Any, pages_server: str, tmp_path: Path
) -> None:
    client = make_client(plan="pro")
    session_id = _create(client, record=True)  # an extension field, through the tzafon SDK
    assert client.get(f"/v1/computers/{session_id}").json()["record"] is True
    page = client.post(f"/v1/computers/{session_id}/navigate", {"url": f"{pages_server}/screencast.html"})
    assert page.json()["status"] == "success", page.text
    wait_until(
        lambda: _recording(client, session_id)["frames"] >= 1, timeout=30, message="a first recorded frame"
    )
    assert _recording(client, session_id)["status"] == "recording"
    # Each click toggles the page's colour; a frame of each state is recorded. (Wait for each
    # before the next click: two toggles inside one repaint, or while the caster's ack of the last
    # frame is late on a loaded host, leave nothing to paint, and no frame at all. The recorder
    # samples the screencast: it records what was painted, not one frame per action.)
    for n in range(2):
        before = _recording(client, session_id)["frames"]
        clicked = client.post(f"/v1/computers/{session_id}/click", {"x": 150, "y": 150})
        assert clicked.json()["status"] == "success", clicked.text
        wait_until(
            lambda before=before: _recording(client, session_id)["frames"] > before,
            timeout=30,
            message=f"a frame after click {n + 1}",
        )
    assert client.delete(f"/v1/computers/{session_id}").status_code == 200

    recording = _settled(client, session_id)
    assert recording["status"] == "ready", recording
    assert recording["frames"] >= 3 and recording["duration_ms"] > 0 and recording["size_bytes"] > 0
    assert recording["replay_url"] and client.key not in recording["replay_url"]
    url = recording["replay_url"]
    page_response = requests.get(url, timeout=10)
    assert page_response.status_code == 200
    csp = page_response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "<script>" not in page_response.text
    index = requests.get(url + "/index", timeout=10).json()
    assert len(index["frames"]) == recording["frames"]
    assert [a["type"] for a in index["actions"]] == ["navigate", "click", "click"]
    # Every action has a frame at or before its end to show (the replay's marker jumps to it).
    first_frame = index["frames"][0]["t"]
    assert all(a["t"] >= first_frame for a in index["actions"][1:])
    frame = requests.get(url + "/frames/0", timeout=10)
    assert frame.status_code == 200 and frame.headers["Content-Type"] == "image/jpeg"
    assert frame.content[:2] == b"\xff\xd8"
    assert requests.get(url + f"/frames/{recording['frames']}", timeout=10).status_code == 404

    # The replay page plays in a real Chromium (another session), under its CSP.
    person = _create(client)
    opened = client.post(f"/v1/computers/{person}/navigate", {"url": url})
    assert opened.json()["status"] == "success", opened.text
    wait_until(
        lambda: _body_data(client, person).get("loaded") == "true", timeout=20, message="replay loaded"
    )
    data = _body_data(client, person)
    assert data["actions"] == "3" and int(data["frame"]) == 0
    stepped = client.post(
        f"/v1/computers/{person}/step", {"action": "click", "selector": "#play", "timeout_ms": 5000}
    )
    assert stepped.json()["status"] == "success", stepped.text
    wait_until(
        lambda: int(_body_data(client, person)["frame"]) > 0, timeout=20, message="the replay to play on"
    )
    # A click on an action's marker shows that action's frame (the page as the action finished).
    last_click = len(index["actions"])
    assert index["actions"][last_click - 1]["type"] == "click"
    expected = index["actions"][last_click - 1]["frame"]
    assert expected is not None
    marked = client.post(
        f"/v1/computers/{person}/step",
        {"action": "click", "selector": f"#markers button:nth-child({last_click})", "timeout_ms": 5000},
    )
    assert marked.json()["status"] == "success", marked.text
    wait_until(
        lambda: int(_body_data(client, person)["frame"]) == expected, timeout=20, message="the marker's frame"
    )
    client.delete(f"/v1/computers/{person}")

    # The MP4: made in the background by a worker (202 processing until then), from these frames.
    stranger = make_client(plan="pro", name="stranger")
    refused = stranger.get(f"/v1/computers/{session_id}/recording?format=mp4")
    assert refused.status_code == 404 and refused.json()["code"] == "session_not_found"
    assert client.get(f"/v1/computers/{session_id}/recording?format=avi").status_code == 400
    first = client.get(f"/v1/computers/{session_id}/recording?format=mp4")
    assert first.status_code == 202 and first.json()["status"] == "processing", first.text
    assert int(first.headers["Retry-After"]) > 0
    mp4_url = f"/v1/computers/{session_id}/recording?format=mp4"
    video = wait_until(
        lambda: (r := client.get(mp4_url)).status_code == 200 and r,
        timeout=60,
        interval=0.5,
        message="the MP4 to be made",
    )
    assert video.headers["Content-Type"] == "video/mp4" and len(video.content) > 0
    path = tmp_path / "recording.mp4"
    path.write_bytes(video.content)
    probe = ffprobe(path)
    frame = index["frames"][0]
    assert probe["codec"] == "h264"
    assert probe["size"] == (frame["w"] - frame["w"] % 2, frame["h"] - frame["h"] % 2)
    # The recording's frames, and the last one again at the session's end.
    assert probe["frames"] == recording["frames"] + 1
    assert abs(probe["seconds"] * 1000 - recording["duration_ms"]) < 300
    after = _recording(client, session_id)
    assert after["mp4_status"] == "ready" and after["mp4_size_bytes"] == len(video.content)
    # The replay link serves it too.
    assert requests.get(url + "/mp4", timeout=10).content == video.content


def test_a_crashed_sessions_recording_settles_and_another_accounts_is_404(
    make_client: Any, pages_server: str
) -> None:
    client = make_client(plan="pro")
    stranger = make_client(plan="pro", name="stranger")
    session_id = _create(client, record=True)
    plain = _create(client)
    assert client.get(f"/v1/computers/{plain}").json()["record"] is False  # the pro plan's default
    missing = client.get(f"/v1/computers/{plain}/recording")
    assert missing.status_code == 404 and missing.json()["code"] == "recording_not_found"
    refused = stranger.get(f"/v1/computers/{session_id}/recording")
    assert refused.status_code == 404 and refused.json()["code"] == "session_not_found"
    bad = client.post("/v1/computers", {"record": "yes"})
    assert bad.status_code == 400, bad.text

    page = client.post(f"/v1/computers/{session_id}/navigate", {"url": f"{pages_server}/screencast.html"})
    assert page.json()["status"] == "success", page.text
    wait_until(lambda: _recording(client, session_id)["frames"] >= 1, timeout=30, message="a recorded frame")
    os.killpg(BrowserSession.objects.get(pk=session_id).browser_pid, signal.SIGKILL)
    wait_until(
        lambda: BrowserSession.objects.filter(pk=session_id, status="terminated").exists(),
        timeout=30,
        message="reconcile to end the session as crashed",
    )
    recording = _settled(client, session_id)
    # What was written before the crash is a valid recording.
    assert recording["status"] == "ready" and recording["frames"] >= 1, recording
    client.delete(f"/v1/computers/{plain}")


def _panel_rgb(jpeg: bytes, width: int, height: int) -> tuple[int, ...]:
    """The colour of a pixel inside screencast.html's panel (white, or red once toggled; the panel
    spans the page's width from 250 to 650 CSS pixels down a 768-pixel display), decoded by
    Debian's ffmpeg (no Pillow in the virtualenv)."""
    assert jpeg[:2] == b"\xff\xd8", jpeg[:100]
    x, y = width * 150 // 1024, height * 450 // 768
    decoded = subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-f", "jpeg_pipe", "-i", "-"),
            *("-vf", f"format=rgb24,crop=1:1:{x}:{y}", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"),
        ],
        input=jpeg,
        capture_output=True,
    )
    assert decoded.returncode == 0 and len(decoded.stdout) >= 3, decoded.stderr
    return tuple(decoded.stdout[:3])


def _red(rgb: tuple[int, ...]) -> bool:
    return rgb[0] > 150 and rgb[1] < 90 and rgb[2] < 120


def test_every_action_of_a_recorded_session_has_a_frame_of_the_page_as_it_finished(
    make_client: Any, pages_server: str
) -> None:
    client = make_client(plan="pro")
    session_id = _create(client, record=True)
    page = client.post(f"/v1/computers/{session_id}/navigate", {"url": f"{pages_server}/screencast.html"})
    assert page.json()["status"] == "success", page.text
    wait_until(
        lambda: _recording(client, session_id)["frames"] >= 1, timeout=30, message="a first recorded frame"
    )

    def act(kind: str) -> None:
        if kind == "wait":
            done = client.post(f"/v1/computers/{session_id}/execute", {"action": {"type": "wait", "ms": 50}})
        elif kind == "click":
            done = client.post(f"/v1/computers/{session_id}/click", {"x": 150, "y": 150})
        else:
            done = client.post(f"/v1/computers/{session_id}/{kind}", {})
        assert done.status_code == 200 and done.json()["status"] == "success", done.text

    def painted_since_last_click() -> bool:
        click = Action.objects.filter(session_id=session_id, type="click").order_by("-id").first()
        assert click is not None and click.finished_at is not None
        finished_ms = int(click.finished_at.timestamp() * 1000)
        frames = recording_frames(account_id=click.account_id, session_id=session_id)
        return any(f.at_ms >= finished_ms for f in frames)

    # Actions that change nothing on screen (a wait, the html, screenshots) and clicks that toggle
    # the panel's colour. After a click the client waits until the recording holds a frame from
    # the click's finish on (the page painted it), as a person watching would: the frame of an
    # action is painted before the next action starts only if the page painted it by then.
    for kind in ("wait", "html", "screenshot", "click", "screenshot", "html", "click", "wait"):
        act(kind)
        if kind == "click":
            wait_until(painted_since_last_click, timeout=30, message="the click's frame")
    assert client.delete(f"/v1/computers/{session_id}").status_code == 200

    recording = _settled(client, session_id)
    assert recording["status"] == "ready", recording
    url = recording["replay_url"]
    index = requests.get(url + "/index", timeout=10).json()
    frames = index["frames"]
    rows = list(Action.objects.filter(session_id=session_id).order_by("id"))
    assert [a["type"] for a in index["actions"]] == [r.type for r in rows]
    assert [r.type for r in rows][1:] == [
        "wait",
        "html",
        "screenshot",
        "click",
        "screenshot",
        "html",
        "click",
        "wait",
    ]
    starts = [r.started_at.timestamp() * 1000 for r in rows]
    # Each action has a frame at or after its finish and before the next action started.
    between = []
    for n, action in enumerate(index["actions"]):
        until = starts[n + 1] if n + 1 < len(rows) else float("inf")
        between.append([i for i, f in enumerate(frames) if action["t"] <= f["t"] < until])
    missing = [(a["type"], a["t"]) for a, b in zip(index["actions"], between, strict=True) if not b]
    assert not missing, (missing, [f["t"] for f in frames], starts)
    chosen = [b[0] for b in between]
    assert [a["frame"] for a in index["actions"]] == chosen  # where the replay's markers jump
    colours = [
        _panel_rgb(requests.get(f"{url}/frames/{i}", timeout=10).content, frames[i]["w"], frames[i]["h"])
        for i in chosen
    ]
    toggled = [_red(rgb) for rgb in colours]
    # navigate, wait, html, screenshot: white; click: red, and so it stays; the second click: white.
    assert toggled == [False, False, False, False, True, True, True, False, False], colours
