"""Saved states are encrypted at rest with AES-256-GCM (authenticated), keys from settings.

SAVED_STATE_KEYS is a list of `id:base64-of-32-bytes`; the first key seals, every key opens
(rotation: put a new key first, keep the old ones until every state was saved again or expired).
Without it, one key is derived from DJANGO_SECRET_KEY (HKDF), id `sk`.

A sealed state: b"BFS1" | key id length (1 byte) | key id | 12-byte nonce | ciphertext+tag. The
state's id is the associated data: a blob copied onto another state's row does not open.
The plaintext is zlib-compressed first (the state's size is not a secret from its owner).
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import zlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_MAGIC = b"BFS1"


class StateSealError(Exception):
    """A sealed state that cannot be opened: unknown key, tampered or truncated bytes."""


@functools.cache
def _keys() -> tuple[tuple[str, bytes], ...]:
    configured: list[str] = list(settings.SAVED_STATE_KEYS)
    if not configured:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"browserfleet saved state v1"
        ).derive(settings.SECRET_KEY.encode())
        return (("sk", derived),)
    keys = []
    for item in configured:
        key_id, _, encoded = item.partition(":")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not key_id or len(key_id) > 32 or len(key) != 32:
            raise ImproperlyConfigured(
                "SAVED_STATE_KEYS: each item is id:base64 of 32 random bytes, e.g. "
                "k1:$(python -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')"
            )
        keys.append((key_id, key))
    return tuple(keys)


def state_seal(*, state_id: str, plaintext: bytes) -> bytes:
    key_id, key = _keys()[0]
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, zlib.compress(plaintext, 6), state_id.encode())
    encoded_id = key_id.encode()
    return _MAGIC + bytes([len(encoded_id)]) + encoded_id + nonce + sealed


def state_open(*, state_id: str, sealed: bytes) -> bytes:
    if sealed[:4] != _MAGIC or len(sealed) < 6:
        raise StateSealError("not a sealed state")
    id_length = sealed[4]
    key_id = sealed[5 : 5 + id_length].decode(errors="replace")
    rest = sealed[5 + id_length :]
    key = dict(_keys()).get(key_id)
    if key is None:
        raise StateSealError(f"sealed with key {key_id!r}, which SAVED_STATE_KEYS no longer holds")
    try:
        return zlib.decompress(AESGCM(key).decrypt(rest[:12], rest[12:], state_id.encode()))
    except (InvalidTag, zlib.error) as exc:
        raise StateSealError("the sealed state does not open (tampered or truncated)") from exc


def state_key_id() -> str:
    """The id of the key new seals use."""
    return _keys()[0][0]
