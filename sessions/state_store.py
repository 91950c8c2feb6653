"""Where saved states' encrypted bytes live: one small interface, chosen by SAVED_STATE_STORE.

`postgres` (the default) keeps them in SavedStateBlob rows, shared by every host as the database
is, and written in the same transaction as the state's row, so a save is whole or not at all.
An object-storage store (S3 and the like) is an extension point (docs/saved-state.md): implement
StateStore, write each save under a new object name and flip the row to it in one transaction.
"""

from __future__ import annotations

from typing import Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from sessions.models import SavedState, SavedStateBlob


class StateStore(Protocol):
    def put(self, state: SavedState, sealed: bytes) -> None:
        """Store the sealed bytes of `state` (replacing what it held); inside the caller's transaction."""

    def get(self, state: SavedState) -> bytes | None: ...

    def delete(self, state: SavedState) -> None: ...


class PostgresStateStore:
    def put(self, state: SavedState, sealed: bytes) -> None:
        SavedStateBlob.objects.update_or_create(state=state, defaults={"data": sealed})

    def get(self, state: SavedState) -> bytes | None:
        data = SavedStateBlob.objects.filter(state=state).values_list("data", flat=True).first()
        return bytes(data) if data is not None else None

    def delete(self, state: SavedState) -> None:
        SavedStateBlob.objects.filter(state=state).delete()


def state_store() -> StateStore:
    if settings.SAVED_STATE_STORE == "postgres":
        return PostgresStateStore()
    raise ImproperlyConfigured(f"SAVED_STATE_STORE {settings.SAVED_STATE_STORE!r} is not a known store")
