"""bf: the Browserfleet command-line client (batch jobs, sessions, account).

Talks to the HTTP API only (it imports nothing of the server). Configuration:
BROWSERFLEET_API_KEY (required) and BROWSERFLEET_BASE_URL (default http://127.0.0.1:8000).

    bf jobs submit urls.txt --scrape scrape.json [--watch]
    bf jobs watch ID | bf jobs get ID | bf jobs ls [--status S] | bf jobs cancel ID
    bf jobs results ID [--format json|jsonl|csv] [--status succeeded|failed] > out.csv
    bf sessions ls | bf account
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, BinaryIO

FINISHED = {"completed", "failed", "cancelled"}


class ApiError(Exception):
    pass


class Api:
    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.key = key

    def _open(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.key}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            return urllib.request.urlopen(request, timeout=120)
        except urllib.error.HTTPError as exc:
            try:
                detail = json.load(exc).get("detail") or exc.reason
            except ValueError:
                detail = exc.reason
            raise ApiError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
        except urllib.error.URLError as exc:
            raise ApiError(f"{method} {path}: cannot reach {self.base_url}: {exc.reason}") from None

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        with self._open(method, path, body, headers) as response:
            return json.load(response)

    def stream(self, path: str, out: BinaryIO) -> None:
        with self._open("GET", path) as response:
            shutil.copyfileobj(response, out, 64 * 1024)


def _read_urls(path: str) -> list[str]:
    if path == "-":
        text = sys.stdin.read()
    else:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _summary(job: dict[str, Any]) -> str:
    counts = job["counts"]
    return (
        f"job {job['id']} {job['status']}"
        + (f" ({job['ended_reason']})" if job.get("ended_reason") else "")
        + f": {counts['succeeded']} succeeded, {counts['failed']} failed, {counts['skipped']} skipped, "
        f"{counts['cancelled']} cancelled of {job['total']}; {job['credits_used']} credits used"
    )


def watch(api: Api, job_id: str, *, interval: float = 1.0) -> dict[str, Any]:
    """A live progress bar until the job ends. Ctrl-C stops watching, never the job."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    job = api.call("GET", f"/jobs/{job_id}")
    try:
        print(f"Watching job {job_id} (Ctrl-C stops watching, not the job)", file=sys.stderr, flush=True)
        with Progress(
            TextColumn("[bold]{task.fields[status]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}"),
            TextColumn("{task.fields[rate]} pages/min"),
            TextColumn("ETA {task.fields[eta]}"),
            TextColumn("{task.fields[credits]} credits"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task(job_id, total=job["total"], **_fields(job))
            while True:
                done = job["counts"]["succeeded"] + job["counts"]["failed"]
                progress.update(task, completed=done, **_fields(job))
                if job["status"] in FINISHED:
                    break
                time.sleep(interval)
                job = api.call("GET", f"/jobs/{job_id}")
    except KeyboardInterrupt:
        console.print(f"Stopped watching. Job {job_id} keeps running; `bf jobs cancel {job_id}` stops it.")
        raise SystemExit(130) from None
    console.print(_summary(job))
    return job


def _fields(job: dict[str, Any]) -> dict[str, Any]:
    eta = job.get("eta_seconds")
    return {
        "status": job["status"],
        "failed": job["counts"]["failed"],
        "rate": job.get("pages_per_minute") if job.get("pages_per_minute") is not None else "-",
        "eta": f"{eta}s" if eta is not None else "-",
        "credits": job["credits_used"],
    }


def cmd_jobs_submit(api: Api, args: argparse.Namespace) -> int:
    urls = _read_urls(args.file)
    body: dict[str, Any] = {"urls": urls}
    if args.scrape:
        with open(args.scrape, encoding="utf-8") as f:
            body["scrape"] = json.load(f)
    for name in (
        "max_concurrency",
        "per_domain_concurrency",
        "max_retries",
        "max_credits",
        "page_timeout_seconds",
    ):
        value = getattr(args, name)
        if value is not None:
            body[name] = value
    if args.screenshot:
        body["screenshot"] = True
    if args.ignore_invalid_urls:
        body["ignore_invalid_urls"] = True
    if args.webhook:
        body["webhook"] = {
            "url": args.webhook,
            **({"secret": args.webhook_secret} if args.webhook_secret else {}),
        }
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    job = api.call("POST", "/jobs", body, headers)
    print(job["id"])
    sys.stdout.flush()
    skipped = len(job.get("invalid_urls") or []) + len(job.get("duplicate_urls") or [])
    print(f"{job['total']} pages queued, up to {job['credits_reserved']} credits held", file=sys.stderr)
    if skipped:
        print(
            f"{len(job['invalid_urls'])} invalid and {len(job['duplicate_urls'])} duplicate URLs skipped",
            file=sys.stderr,
        )
    if args.watch:
        job = watch(api, job["id"])
        return 0 if job["status"] == "completed" else 1
    return 0


def cmd_jobs_watch(api: Api, args: argparse.Namespace) -> int:
    job = watch(api, args.id)
    return 0 if job["status"] == "completed" else 1


def cmd_jobs_get(api: Api, args: argparse.Namespace) -> int:
    _print_json(api.call("GET", f"/jobs/{args.id}"))
    return 0


def cmd_jobs_ls(api: Api, args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode(
        {k: v for k, v in {"status": args.status, "limit": args.limit}.items() if v}
    )
    jobs = api.call("GET", f"/jobs?{query}")["results"]
    print(f"{'ID':<30} {'STATUS':<11} {'DONE':>13} {'FAILED':>7} {'CREDITS':>8}  CREATED")
    for job in jobs:
        done = f"{job['counts']['succeeded'] + job['counts']['failed']}/{job['total']}"
        print(
            f"{job['id']:<30} {job['status']:<11} {done:>13} {job['counts']['failed']:>7} "
            f"{job['credits_used']:>8}  {job['created_at']}"
        )
    return 0


def cmd_jobs_cancel(api: Api, args: argparse.Namespace) -> int:
    job = api.call("POST", f"/jobs/{args.id}/cancel")
    print(f"job {job['id']} {job['status']}")
    return 0


def cmd_jobs_results(api: Api, args: argparse.Namespace) -> int:
    query = {"format": args.format, **({"status": args.status} if args.status else {})}
    if args.format != "json":
        api.stream(f"/jobs/{args.id}/results?{urllib.parse.urlencode(query)}", sys.stdout.buffer)
        return 0
    # JSON: follow the cursor and print one array.
    rows: list[Any] = []
    cursor = None
    while True:
        page_query = {**query, "limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = api.call("GET", f"/jobs/{args.id}/results?{urllib.parse.urlencode(page_query)}")
        rows += page["results"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    _print_json(rows)
    return 0


def cmd_sessions_ls(api: Api, args: argparse.Namespace) -> int:
    sessions = api.call("GET", "/computers")
    print(f"{'ID':<30} {'STATUS':<11} {'CREDITS':>8}  CREATED")
    for session in sessions:
        print(
            f"{session['id']:<30} {session['status']:<11} {session.get('credits_spent', ''):>8}  "
            f"{session.get('created_at', '')}"
        )
    return 0


def cmd_account(api: Api, args: argparse.Namespace) -> int:
    account = api.call("GET", "/account")
    plan = account["plan"]
    print(f"{account['name']} (plan {plan['name']}): balance {account['balance']} credits")
    print(f"live sessions {account['live_sessions']} of {plan['max_concurrent_sessions'] or 'unlimited'}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="bf", description="Browserfleet command-line client")
    groups = root.add_subparsers(dest="group", required=True)

    jobs = groups.add_parser("jobs", help="batch scraping jobs").add_subparsers(dest="command", required=True)
    submit = jobs.add_parser("submit", help="submit a file of URLs (one a line; - for stdin)")
    submit.add_argument("file")
    submit.add_argument("--scrape", help="a JSON file with the scrape body (schema, format)")
    submit.add_argument("--watch", action="store_true", help="show live progress until the job ends")
    submit.add_argument("--screenshot", action="store_true")
    submit.add_argument("--max-concurrency", type=int)
    submit.add_argument("--per-domain-concurrency", type=int)
    submit.add_argument("--max-retries", type=int)
    submit.add_argument("--max-credits", type=int)
    submit.add_argument("--page-timeout-seconds", type=int)
    submit.add_argument("--ignore-invalid-urls", action="store_true")
    submit.add_argument("--webhook")
    submit.add_argument("--webhook-secret")
    submit.add_argument("--idempotency-key")
    submit.set_defaults(run=cmd_jobs_submit)
    for name, run, text in (
        ("watch", cmd_jobs_watch, "live progress of a job"),
        ("get", cmd_jobs_get, "a job as JSON"),
        ("cancel", cmd_jobs_cancel, "cancel a job (results so far stay)"),
    ):
        sub = jobs.add_parser(name, help=text)
        sub.add_argument("id")
        sub.set_defaults(run=run)
    ls = jobs.add_parser("ls", help="the account's jobs, newest first")
    ls.add_argument("--status")
    ls.add_argument("--limit", type=int, default=50)
    ls.set_defaults(run=cmd_jobs_ls)
    res = jobs.add_parser("results", help="a job's results on stdout")
    res.add_argument("id")
    res.add_argument("--format", choices=("json", "jsonl", "csv"), default="jsonl")
    res.add_argument("--status", choices=("succeeded", "failed", "skipped", "cancelled"))
    res.set_defaults(run=cmd_jobs_results)

    sessions = groups.add_parser("sessions", help="browser sessions").add_subparsers(
        dest="command", required=True
    )
    sessions.add_parser("ls", help="live sessions").set_defaults(run=cmd_sessions_ls)
    groups.add_parser("account", help="plan and balance").set_defaults(run=cmd_account)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    key = os.environ.get("BROWSERFLEET_API_KEY", "")
    if not key:
        print("bf: set BROWSERFLEET_API_KEY", file=sys.stderr)
        return 2
    api = Api(os.environ.get("BROWSERFLEET_BASE_URL", "http://127.0.0.1:8000"), key)
    try:
        return int(args.run(api, args))
    except ApiError as exc:
        print(f"bf: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
