"""How the sync agent reaches a backend: one interface, two ways.

* `LocalTransport`: the backend runs in this process (the skill's own server). Calls
  go straight to the domain layer, and the store tells the agent the moment a device
  record or shared skill settings change: no HTTP, no polling.
* `HttpTransport`: a backend elsewhere, reached with the device's own token. Reads are
  conditional (`If-None-Match`), so an idle device's poll costs the server a 304.

Both answer in the wire shapes of the device API, so the agent cannot tell them apart.
"""
import threading
from typing import Callable, Dict, Optional, Tuple

import requests

from ..backend import devices, quotas, skill_settings, speech_access
from ..backend.errors import BackendError
from ..backend.store import Store


class SyncError(Exception):
    """The backend cannot be reached or refused the device; the message says which."""


class Unreachable(SyncError):
    """No answer from the backend (it is off, or moved to another address or port)."""


class Revoked(SyncError):
    """The backend no longer knows this device's token (401): it was forgotten there."""


class Transport:
    """What the agent needs from a backend."""

    def device_settings(self) -> dict:
        """The device record as `GET /device/{uuid}/setting` gives it."""
        raise NotImplementedError

    def skill_states(self) -> Dict[str, dict]:
        """{skill_id: {"gid", "settings", "updated_at"}} for the skills this device has."""
        raise NotImplementedError

    def push_values(self, skill_id: str, values: dict, gid: str) -> None:
        """Merge these setting values (only these keys) into the backend's copy."""
        raise NotImplementedError

    def upload_meta(self, meta: dict) -> None:
        """A skill's settings definition, as `PUT /settingsMeta` takes it."""
        raise NotImplementedError

    def upload_manifest(self, manifest: dict) -> None:
        """The installed skills, as `PUT /skillJson` takes them."""
        raise NotImplementedError

    def speech_url(self) -> str:
        """A new speech URL for this device (its previous one stops working): the URL of
        the backend's speech server that OVOS's stock speech plugins take."""
        raise NotImplementedError

    def revoke_speech(self) -> None:
        """Stop this device's speech URL from working."""
        raise NotImplementedError

    def watch(self, wake: Callable[[], None]) -> None:
        """Call `wake` whenever the backend's data for this device may have changed;
        a transport that cannot tell does nothing (the agent then polls)."""

    def close(self) -> None:
        """Stop watching."""


class LocalTransport(Transport):
    """Direct calls into the backend served by this very process."""

    def __init__(self, store: Store, uuid: str, limits: Dict[str, int] = quotas.DEFAULT_QUOTAS,
                 base_url: str = ""):
        self.store, self.uuid, self.base_url = store, uuid, base_url
        self.limits = limits  # the owner's quotas, as the HTTP routes apply them
        self._wake: Optional[Callable[[], None]] = None

    def _call(self, function, *args):
        try:
            return function(self.store, *args)
        except BackendError as e:  # e.g. the device was forgotten meanwhile
            raise SyncError(e.message) from e

    def _device(self) -> dict:
        return self._call(devices.peek, self.uuid)

    def device_settings(self) -> dict:
        self.store.presence.seen(self.uuid)
        return devices.wire_settings(self._device())

    def skill_states(self) -> Dict[str, dict]:
        self.store.presence.synced(self.uuid)
        return skill_settings.sync_view(self.store, self._device())["skills"]

    def push_values(self, skill_id: str, values: dict, gid: str) -> None:
        self._call(skill_settings.push_values, self.uuid, skill_id, values, gid, self.limits)

    def upload_meta(self, meta: dict) -> None:
        self._call(skill_settings.upload_meta, self.uuid, meta, self.limits)

    def upload_manifest(self, manifest: dict) -> None:
        self._call(devices.record_manifest, self.uuid, manifest, self.limits)

    def speech_url(self) -> str:
        return speech_access.url(self.base_url, self._call(speech_access.issue, self.uuid))

    def revoke_speech(self) -> None:
        self._call(speech_access.revoke, self.uuid)

    def watch(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self.store.add_listener(self._on_store_change)

    def _on_store_change(self, collection: str, key: str) -> None:
        if self._wake and (collection == "shared_skills" or key == self.uuid):
            self._wake()

    def close(self) -> None:
        self.store.remove_listener(self._on_store_change)
        self._wake = None


class HttpTransport(Transport):
    """The device API of a backend elsewhere, with the device's bearer token."""

    def __init__(self, url: str, version: str, uuid: str, token: str, timeout: float = 10):
        self.url = url.rstrip("/")
        self.base = f"{url.rstrip('/')}/{version}/device/{uuid}"
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self._cache: Dict[str, Tuple[str, object]] = {}  # path -> (etag, body)
        self._lock = threading.Lock()
        self.not_modified = 0  # answers that were a 304 (for tests and the bench)

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            response = self.session.request(method, self.base + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as e:
            raise Unreachable(f"backend unreachable at {self.base}: {e.__class__.__name__}") from e
        if response.status_code == 401:
            raise Revoked("the backend no longer accepts this device's token (401): "
                            "pair the device again")
        if response.status_code >= 400 and response.status_code != 304:
            detail = response.text[:200].strip()
            raise SyncError(f"{method} {path} answered {response.status_code}: {detail}")
        return response

    def _get(self, path: str):
        with self._lock:
            etag, body = self._cache.get(path, (None, None))
        headers = {"If-None-Match": etag} if etag else {}
        response = self._request("GET", path, headers=headers)
        if response.status_code == 304 and etag:
            self.not_modified += 1
            return body
        try:
            body = response.json()
        except ValueError as e:
            raise SyncError(f"GET {path} did not answer JSON") from e
        if response.headers.get("ETag"):
            with self._lock:
                self._cache[path] = (response.headers["ETag"], body)
        return body

    def device_settings(self) -> dict:
        return self._get("/setting")

    def skill_states(self) -> Dict[str, dict]:
        return self._get("/skill/sync")["skills"]

    def push_values(self, skill_id: str, values: dict, gid: str) -> None:
        self._request("PATCH", "/skill/sync", json={"skill_id": skill_id, "gid": gid,
                                                    "settings": values})

    def upload_meta(self, meta: dict) -> None:
        self._request("PUT", "/settingsMeta", json=meta)

    def upload_manifest(self, manifest: dict) -> None:
        self._request("PUT", "/skillJson", json=manifest)

    def speech_url(self) -> str:
        try:
            return str(self._request("POST", "/speech").json()["url"])
        except (ValueError, KeyError, TypeError) as e:
            raise SyncError("POST /speech did not answer a speech URL") from e

    def revoke_speech(self) -> None:
        self._request("DELETE", "/speech")

    def close(self) -> None:
        self.session.close()
