"""Speech URLs: how the stock OVOS speech plugins prove they speak for a paired device.

`ovos-stt-plugin-server` and `ovos-tts-plugin-server` (OVOS's default speech plugins)
have no setting for credentials: they only take a URL. So each paired device gets its
own speech URL, `<backend>/speech/<secret>`, usable as the STT plugin's `url` (with
`/stt`) and the TTS plugin's `host`. The secret is 256 random bits from `secrets`,
kept only as a hash among the device's tokens (found through the same index, compared
in constant time), shown once to the device that asked for it, and never logged.
Asking again replaces it (the old URL stops working); token refreshes keep it;
forgetting the device revokes it with the record.
"""
import secrets
from typing import Optional

from . import pairing
from .errors import NotFound
from .store import Store

KIND = "speech"          # its name among the device's token hashes
PATH = "speech"          # the URL's first path segment


def issue(store: Store, uuid: str) -> str:
    """A new speech secret for device `uuid` (the previous one stops working)."""
    secret = secrets.token_urlsafe(32)

    def apply(device):
        if device is None:
            raise NotFound(f"unknown device: {uuid[:64]}")
        device["tokens"] = {**(device.get("tokens") or {}), KIND: pairing.hash_token(secret)}
        return device

    store.devices.update(uuid, apply)
    return secret


def revoke(store: Store, uuid: str) -> bool:
    """Stop the device's speech URL from working; False when it had none."""
    revoked = []

    def apply(device):
        if device is None or KIND not in (device.get("tokens") or {}):
            return device
        device["tokens"] = {k: v for k, v in device["tokens"].items() if k != KIND}
        revoked.append(uuid)
        return device

    store.devices.update(uuid, apply)
    return bool(revoked)


def device_for(store: Store, secret: str) -> Optional[str]:
    """The uuid of the device whose speech secret this is, else None."""
    return pairing.authenticate(store, secret, kinds=(KIND,))


def url(base_url: str, secret: str) -> str:
    """The speech URL on a backend reached at `base_url`."""
    return f"{base_url.rstrip('/')}/{PATH}/{secret}"
