"""The `s3` saved-state store against a real S3-compatible server on loopback (moto's server mode,
started here on a free 127.0.0.1 port): what it stores is ciphertext, a save replaces its object
whole, switching the setting strands nothing, and `saved_states_move` copies what is elsewhere."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Plan
from accounts.plans import seed_plans
from accounts.services import account_create
from sessions.models import SavedState, SavedStateBlob
from sessions.saved_state import (
    EnvironmentRestoreFailed,
    saved_state_delete,
    saved_state_load,
    saved_state_store,
    saved_states_purge,
)
from sessions.state_store import state_store_sweep
from tests.sessions.test_saved_state import STATE, _session
from tests.support.private_services import free_port
from tests.support.processes import stop_process, wait_until

BUCKET = "browserfleet-states"


@pytest.fixture
def account(db: Any) -> Any:
    seed_plans(Plan)
    return account_create(name="state", plan_name="pro", credits=0)[0]


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stop_process ends its process group
        )
    endpoint = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{endpoint}/moto-api/", timeout=1).status_code < 500
        except requests.ConnectionError:
            assert server.poll() is None, log.read_text()
            return False

    try:
        wait_until(up, timeout=60, message="moto's S3 server to answer")
        yield endpoint
    finally:
        stop_process(server)


@pytest.fixture
def s3(settings: Any, s3_endpoint: str) -> Any:
    """The s3 store configured (a fresh bucket), and a boto3 client to look into it."""
    import boto3

    settings.SAVED_STATE_STORE = "s3"
    settings.SAVED_STATE_S3_BUCKET = BUCKET
    settings.SAVED_STATE_S3_PREFIX = "states/"
    settings.SAVED_STATE_S3_ENDPOINT_URL = s3_endpoint
    settings.SAVED_STATE_S3_ACCESS_KEY_ID = "test"
    settings.SAVED_STATE_S3_SECRET_ACCESS_KEY = "test"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    requests.post(f"{s3_endpoint}/moto-api/reset", timeout=5).raise_for_status()
    client.create_bucket(Bucket=BUCKET)
    return client


def _objects(client: Any) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


def test_the_object_store_holds_ciphertext_only_and_restores_it(
    s3, account, django_capture_on_commit_callbacks
):
    saver = _session(account)
    with django_capture_on_commit_callbacks(execute=True):
        row = saved_state_store(session=saver, state=STATE)
    assert row.store == "s3" and row.object_key.startswith(f"states/{saver.pk}/")
    objects = _objects(s3)
    assert list(objects) == [row.object_key]
    assert b"secret-cookie-value" not in objects[row.object_key]
    assert b"secret-storage-value" not in objects[row.object_key]
    assert not SavedStateBlob.objects.exists()  # nothing in PostgreSQL but the row
    reader = _session(account, persistent=False, environment_id=saver.pk)
    assert saved_state_load(session=reader) == STATE


def test_a_new_save_is_a_new_object_and_the_old_one_goes_after_commit(
    s3, account, django_capture_on_commit_callbacks
):
    saver = _session(account)
    with django_capture_on_commit_callbacks(execute=True):
        first = saved_state_store(session=saver, state=STATE).object_key
    newer = {**STATE, "cookies": [{**STATE["cookies"][0], "value": "newer"}]}
    with django_capture_on_commit_callbacks(execute=False) as pending:
        second = saved_state_store(session=saver, state=newer).object_key
    assert second != first
    assert set(_objects(s3)) == {first, second}  # until the commit, the old object stays
    for callback in pending:
        callback()
    assert set(_objects(s3)) == {second}
    reader = _session(account, environment_id=saver.pk)
    assert saved_state_load(session=reader)["cookies"][0]["value"] == "newer"


def test_a_state_saved_in_postgres_restores_after_the_switch_and_moves_with_the_command(
    s3,
    settings,
    account,
    django_capture_on_commit_callbacks,
):
    settings.SAVED_STATE_STORE = "postgres"
    saver = _session(account)
    saved_state_store(session=saver, state=STATE)
    assert SavedState.objects.get(pk=saver.pk).store == "postgres"

    settings.SAVED_STATE_STORE = "s3"
    reader = _session(account, environment_id=saver.pk)
    assert saved_state_load(session=reader) == STATE  # read from where it is
    assert _objects(s3) == {}

    with django_capture_on_commit_callbacks(execute=True):
        call_command("saved_states_move")
    row = SavedState.objects.get(pk=saver.pk)
    assert row.store == "s3" and list(_objects(s3)) == [row.object_key]
    assert not SavedStateBlob.objects.filter(state_id=saver.pk).exists()  # the old copy went
    assert saved_state_load(session=reader) == STATE

    # And back: switching to postgres again reads the s3 copy until moved.
    settings.SAVED_STATE_STORE = "postgres"
    assert saved_state_load(session=reader) == STATE
    with django_capture_on_commit_callbacks(execute=True):
        call_command("saved_states_move")
    assert SavedState.objects.get(pk=saver.pk).store == "postgres" and _objects(s3) == {}
    assert saved_state_load(session=reader) == STATE


def test_delete_purge_and_sweep_remove_objects(s3, account, django_capture_on_commit_callbacks):
    kept, forgotten, expired = _session(account), _session(account), _session(account)
    with django_capture_on_commit_callbacks(execute=True):
        for session in (kept, forgotten, expired):
            saved_state_store(session=session, state=STATE)
    s3.put_object(Bucket=BUCKET, Key=f"states/{kept.pk}/left-behind", Body=b"x")  # a failed commit's
    with django_capture_on_commit_callbacks(execute=True):
        saved_state_delete(account=account, environment_id=forgotten.pk)
    SavedState.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert saved_states_purge() == 1
    kept_key = SavedState.objects.get(pk=kept.pk).object_key
    assert set(_objects(s3)) == {kept_key, f"states/{kept.pk}/left-behind"}
    assert state_store_sweep(older_than=timezone.now() - timedelta(hours=1)) == 0  # too recent
    assert state_store_sweep(older_than=timezone.now() + timedelta(seconds=5)) == 1
    assert set(_objects(s3)) == {kept_key}


def test_an_unreachable_or_emptied_store_fails_the_restore_clearly(
    s3, settings, account, django_capture_on_commit_callbacks
):
    saver = _session(account)
    with django_capture_on_commit_callbacks(execute=True):
        row = saved_state_store(session=saver, state=STATE)
    reader = _session(account, environment_id=saver.pk)
    s3.delete_object(Bucket=BUCKET, Key=row.object_key)
    with pytest.raises(EnvironmentRestoreFailed, match="has no stored state"):
        saved_state_load(session=reader)
    settings.SAVED_STATE_S3_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"  # nobody listens
    settings.SAVED_STATE_S3_TIMEOUT_SECONDS = 1
    with pytest.raises(EnvironmentRestoreFailed, match="could not be read"):
        saved_state_load(session=reader)
