"""Where saved states' encrypted bytes live: one small interface, two stores, chosen by a setting.

- `postgres` (the default) keeps them in SavedStateBlob rows, shared by every host as the database
  is, written in the same transaction as the state's row.
- `s3` keeps them in an S3-compatible object store (AWS S3, MinIO, Ceph, R2, ...). Each save is a
  new object (`<prefix><state id>/<random>`); the row is pointed at it in the save's transaction
  and the object it replaces is deleted after commit, so a save is still whole or not at all: a
  reader sees the old object or the new one, never half of one.

Both only ever see ciphertext (sessions/state_crypto.py seals before, opens after).

New saves go to SAVED_STATE_STORE; a state is read from the store its row names (`store`,
`object_key`), so switching the setting strands nothing: states saved before keep restoring from
where they are, move at their next save, or at once with `manage.py saved_states_move`.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction

from sessions.models import SavedState, SavedStateBlob


class StateStoreError(Exception):
    """The store could not be reached or refused the request (never holds a stored value)."""


class StateStore(Protocol):
    name: str

    def put(self, state_id: str, sealed: bytes) -> str:
        """Store the sealed bytes of a state inside the caller's transaction; return the object's
        key ("" for a store that keys by the state's id)."""

    def get(self, state_id: str, key: str) -> bytes | None: ...

    def delete(self, state_id: str, key: str) -> None:
        """Forget the bytes once the caller's transaction commits (at once if it has none)."""


class PostgresStateStore:
    name = "postgres"

    def put(self, state_id: str, sealed: bytes) -> str:
        SavedStateBlob.objects.update_or_create(state_id=state_id, defaults={"data": sealed})
        return ""

    def get(self, state_id: str, key: str) -> bytes | None:
        data = SavedStateBlob.objects.filter(state_id=state_id).values_list("data", flat=True).first()
        return bytes(data) if data is not None else None

    def delete(self, state_id: str, key: str) -> None:
        SavedStateBlob.objects.filter(state_id=state_id).delete()


class S3StateStore:
    name = "s3"

    def __init__(self) -> None:
        if not settings.SAVED_STATE_S3_BUCKET:
            raise StateStoreError("the s3 store is not configured (SAVED_STATE_S3_BUCKET)")
        self.bucket = settings.SAVED_STATE_S3_BUCKET
        self.prefix = settings.SAVED_STATE_S3_PREFIX
        self.client = _s3_client(
            settings.SAVED_STATE_S3_ENDPOINT_URL,
            settings.SAVED_STATE_S3_REGION,
            settings.SAVED_STATE_S3_ACCESS_KEY_ID,
            settings.SAVED_STATE_S3_SECRET_ACCESS_KEY,
            settings.SAVED_STATE_S3_TIMEOUT_SECONDS,
        )

    def put(self, state_id: str, sealed: bytes) -> str:
        # A new name per save: the row flips to it at commit, the old object goes after.
        key = f"{self.prefix}{state_id}/{secrets.token_hex(8)}"
        with _errors("put"):
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=sealed, ContentType="application/octet-stream"
            )
        return key

    def get(self, state_id: str, key: str) -> bytes | None:
        if not key:
            return None
        from botocore.exceptions import ClientError

        try:
            with _errors("get"):
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except StateStoreError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") in (
                "NoSuchKey",
                "404",
            ):
                return None  # named by its row but gone: nothing to restore
            raise
        return bytes(body)

    def delete(self, state_id: str, key: str) -> None:
        if key:
            transaction.on_commit(lambda: self.delete_now(key))

    def delete_now(self, key: str) -> None:
        with _errors("delete"):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def keys(self) -> Iterator[tuple[str, datetime]]:
        """Every object under the prefix, with its last modification time."""
        with _errors("list"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield str(item["Key"]), item["LastModified"]


@contextlib.contextmanager
def _errors(operation: str) -> Iterator[None]:
    """botocore's errors as StateStoreError: the kind and the operation, never a URL or a value."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise StateStoreError(f"object store {operation} failed: ClientError {code}") from exc
    except BotoCoreError as exc:
        raise StateStoreError(f"object store {operation} failed: {type(exc).__name__}") from exc


@functools.lru_cache(maxsize=4)
def _s3_client(endpoint: str, region: str, key_id: str, secret: str, timeout: int) -> Any:
    # boto3 is imported here: only a host configured for the s3 store pays for it.
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint or None,
        region_name=region,
        aws_access_key_id=key_id or None,
        aws_secret_access_key=secret or None,
        config=Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"max_attempts": 3, "mode": "standard"},
            # Path-style URLs work with every S3-compatible server (MinIO, moto, Ceph).
            s3={"addressing_style": "path"},
        ),
    )


def state_store(name: str | None = None) -> StateStore:
    """The store named `name`, or the one new saves go to (SAVED_STATE_STORE)."""
    name = name or settings.SAVED_STATE_STORE
    if name == "postgres":
        return PostgresStateStore()
    if name == "s3":
        return S3StateStore()
    raise StateStoreError(f"no store named {name!r}")


def state_bytes_put(state: SavedState, sealed: bytes) -> None:
    """Store a save of `state` in the configured store; inside the caller's transaction, which
    must then save the row (its `store` and `object_key` now name the new bytes). The bytes it
    replaces, wherever they were, are deleted with the commit."""
    target = state_store()
    old_store, old_key = state.store, state.object_key
    key = target.put(state.pk, sealed)
    state.store, state.object_key = target.name, key
    if (old_store, old_key) != (target.name, key) and not (old_store == target.name == "postgres"):
        state_store(old_store).delete(state.pk, old_key)


def state_bytes_get(state: SavedState) -> bytes | None:
    """The sealed bytes of `state`'s last good save, from the store that holds them."""
    if not state.has_data:
        return None
    return state_store(state.store).get(state.pk, state.object_key)


def state_bytes_delete(state: SavedState) -> None:
    """Forget `state`'s bytes (with the caller's transaction)."""
    state_store(state.store).delete(state.pk, state.object_key)


def saved_states_move(*, batch_size: int = 100) -> int:
    """Copy every state whose bytes are in another store than SAVED_STATE_STORE into it (the old
    copy goes with each row's commit); return how many moved. Safe to run twice or alongside
    saves: each row moves under its row lock, and a state saved meanwhile is already there."""
    target = settings.SAVED_STATE_STORE
    moved = 0
    while True:
        with transaction.atomic():
            rows = list(
                SavedState.objects.select_for_update(skip_locked=True)
                .filter(saved_at__isnull=False)
                .exclude(store=target)
                .order_by("pk")[:batch_size]
            )
            for row in rows:
                sealed = state_bytes_get(row)
                if sealed is None:  # named but missing: nothing to copy, and nothing to restore
                    raise StateStoreError(f"state {row.pk}: no bytes in its store {row.store!r}")
                state_bytes_put(row, sealed)
                row.save(update_fields=["store", "object_key"])
        moved += len(rows)
        if len(rows) < batch_size:
            return moved


def state_store_sweep(*, older_than: datetime) -> int:
    """Delete objects of the s3 store that no state names and that were written before
    `older_than` (a save writes its object before its row commits; an object is left behind only
    when that commit failed). Return how many went."""
    store = S3StateStore()
    named = set(SavedState.objects.filter(store="s3").values_list("object_key", flat=True))
    swept = 0
    for key, modified in list(store.keys()):
        if key not in named and modified < older_than:
            store.delete_now(key)
            swept += 1
    return swept
