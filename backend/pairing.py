"""Pairing codes, activation and device tokens.

Security model: a device can only become paired through a code this server issued
(the pairing token it got with the code is the proof), and in "confirm" mode only
after the owner approved that code. Tokens come from `secrets`, are stored as SHA-256
hashes and compared in constant time. Access tokens do not expire because
ovos-backend-client never refreshes them (api-contract §2.3); they are revoked by
rotation (`/auth/token`), re-pairing and unpairing instead.
"""
import base64
import hashlib
import hmac
import math
import re
import secrets
import threading
import time
import uuid as uuidlib
from typing import Callable, List, Optional, Tuple

from flask import has_request_context, request
from ovos_utils.log import LOG

from . import devices
from .errors import BackendError, BadRequest, NotFound, TooManyRequests
from .store import Store

# Selene's alphabet: no 0/O, 1/I, 2/Z, 5/S, 6/G, 8/B, D, Q pairs to confuse when read aloud
CODE_ALPHABET = "ACEFHJKLMNPRTUVWXY3479"
CODE_LENGTH = 6
# a device that lost the answer to its activation may ask again for this long
REACTIVATION_GRACE = 600
# what the login tells clients; mycroft-core refreshes when it elapses, OVOS never does
EXPIRATION = 10 * 365 * 24 * 3600
STATE = re.compile(r"^[A-Za-z0-9-]{8,64}\Z")  # \Z: "$" lets a final newline in
# a waiting device polls every 5 s (api-contract §2.1): one silent this long has given up
ABANDONED_AFTER = 600
# a poll is written down at most this often (the owner sees "just now" for a minute anyway)
POLL_NOTE_EVERY = 30
# the idle life of a code issued before codes carried their own (server.code_idle_minutes)
IDLE_TTL = 15 * 60
DENIED = ("pairing refused: the owner of this backend denied code {code}. Start pairing again "
          "for a new code, or ask the owner to undo the denial on the admin page.")


class PairingBusy(TooManyRequests):
    """No new code now: too many codes wait to be activated, from this address or in all.
    The codes already issued keep working; `retry_after`: seconds until one is forgotten."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class ActivationRefused(BackendError):
    """Activation did not (yet) succeed. Answered as plain text: a JSON body would be
    taken by the device for a login (api-contract §2.1), and a non-JSON 4xx keeps it polling."""

    status = 403


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _new_code(store: Store) -> str:
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if store.pairings.get(code) is None:
            return code


def _expires(pairing: dict) -> float:
    """When a code not yet activated is forgotten: `idle_ttl` seconds after its device last
    asked for it or polled with it, and at the latest at `expires_at`. A device waiting for
    the owner's approval polls every 5 s, so its code waits as long as the owner needs (up
    to server.code_ttl_hours); a code requested by a stranger who never polls soon goes."""
    last_sign = pairing.get("seen_at", pairing["created_at"])
    return min(pairing["expires_at"], last_sign + pairing.get("idle_ttl", IDLE_TTL))


def _expired(pairing: dict, now: float) -> bool:
    if pairing["status"] == "activated":
        return now > pairing["activated_at"] + REACTIVATION_GRACE
    return now > _expires(pairing)


_last_purge = {}


def purge_expired(store: Store, every: float = 60) -> None:
    """Forget expired codes, at most once a minute so pairing stays cheap in bursts."""
    now = time.time()
    if now - _last_purge.get(store.path, 0) < every:
        return
    _last_purge[store.path] = now
    for code, pairing in store.pairings.all().items():
        if _expired(pairing, now):
            store.pairings.delete(code)


# counting the waiting codes and writing a new one go together, one request at a time:
# concurrent requests must not all pass a bound that has room for one more
_issuing = threading.Lock()


def request_code(store: Store, config: dict, state: str, packaging: str = "",
                 address: Optional[str] = None,
                 on_new: Optional[Callable[[str], None]] = None) -> dict:
    """GET /device/code: start a pairing session for a device. What it told us (packaging,
    address; its versions come with its first activation attempt) is shown to the owner.

    Unauthenticated, so what it may keep is bounded: the same device asking again (same
    state, same address) gets its waiting code back under a new token (the previous one
    is spent), not a new record; the codes waiting to be activated are bounded per address
    and in all (`PairingBusy` past that); a code nobody asks about is soon forgotten
    (`_expires`). `on_new(code)` is called when a new code was issued (not a repeat)."""
    if not isinstance(state, str) or not STATE.match(state):
        raise BadRequest("state must be 8 to 64 letters, digits or dashes (a uuid)")
    purge_expired(store)
    caller, token = _caller(address), secrets.token_hex(32)
    with _issuing:
        now = time.time()
        waiting = _waiting(store, now)
        record = next((dict(p) for p in waiting
                       if p["state"] == state and p.get("address", "") == caller), None)
        new = record is None
        if new:
            _check_room(config["server"], waiting, caller, now)
            record = _new_pairing(store, config, state, packaging, caller, now)
        record.update(token_hash=hash_token(token), seen_at=now)
        store.pairings.put(record["code"], record)
    if new and on_new is not None:
        on_new(record["code"])
    return {"code": record["code"], "uuid": state, "state": state, "token": token,
            "expiration": max(1, int(record["expires_at"] - now))}


def _new_pairing(store: Store, config: dict, state: str, packaging: str, caller: str,
                 now: float) -> dict:
    """The record of a new code (its token is set by the caller)."""
    server = config["server"]
    code = _new_code(store)
    return {"code": code, "state": state,
            "status": "approved" if server["pairing"] == "auto" else "pending",
            "created_at": now, "expires_at": now + int(server["code_ttl_hours"] * 3600),
            "idle_ttl": server["code_idle_minutes"] * 60, "packaging": str(packaging)[:64],
            "repair": store.devices.get(state) is not None, "address": caller}


def _waiting(store: Store, now: float) -> List[dict]:
    """The codes issued and neither activated nor expired (the stored records: read only)."""
    return [p for p in store.pairings.peek_all()
            if p["status"] != "activated" and not _expired(p, now)]


def _check_room(server: dict, waiting: List[dict], caller: str, now: float) -> None:
    """PairingBusy when the codes waiting from `caller`, or in all, reached their bound;
    it tells when the first of them will be forgotten."""
    mine = [p for p in waiting if p.get("address", "") == caller]
    for counted, key, whose in ((mine, "max_pending_codes_per_address", "from your address"),
                                (waiting, "max_pending_codes", "on this backend")):
        if len(counted) >= server[key]:
            wait = max(1, math.ceil(min(_expires(p) for p in counted) - now))
            _warn_busy(f"pairing codes refused: {len(counted)} wait {whose} (server.{key})")
            raise PairingBusy(f"too many pairing codes wait to be used {whose}; "
                              f"try again in {wait} s", wait)


_last_busy_warning = 0.0  # monotonic; written under _issuing


def _warn_busy(message: str, every: float = 60) -> None:
    """Log a refusal at most once a minute: a flood must not fill the log instead."""
    global _last_busy_warning
    if time.monotonic() - _last_busy_warning >= every:
        _last_busy_warning = time.monotonic()
        LOG.warning(message)


def _caller(address: Optional[str]) -> str:
    """Who asked: `address` when the caller names it, else the HTTP peer (the routes do
    not pass it); "" outside a request (the skill pairing the device it runs on)."""
    if address is None and has_request_context():
        address = request.remote_addr
    return str(address or "")[:64]


def _live(pairing: dict, status: str, now: float) -> bool:
    """In `status`, and still worth showing: neither expired nor abandoned by its device
    (which stops polling when it is switched off or starts over with a new code)."""
    last_poll = pairing.get("seen_at", pairing["created_at"])
    return pairing["status"] == status and not _expired(pairing, now) \
        and now - last_poll <= ABANDONED_AFTER


def _listed(store: Store, status: str) -> List[dict]:
    """The live pairings in `status`, oldest first, as the owner sees them (no secrets:
    no token, no state, which is the device's uuid to be)."""
    now = time.time()
    found = [p for p in store.pairings.all().values() if _live(p, status, now)]
    return [{"code": p["code"], "created_at": p["created_at"], "expires_at": p["expires_at"],
             "repair": p.get("repair", False), "device": p.get("device", {}),
             "packaging": p.get("packaging", ""), "address": p.get("address", ""),
             "seen_at": p.get("seen_at", p["created_at"])}
            for p in sorted(found, key=lambda p: p["created_at"])]


def pending(store: Store) -> List[dict]:
    """Pairings waiting for the owner, oldest first; those whose device stopped polling
    more than ABANDONED_AFTER seconds ago are left out (they come back if it polls again)."""
    return _listed(store, "pending")


def denied(store: Store) -> List[dict]:
    """Pairings the owner denied whose device still polls: a denial can be undone."""
    return _listed(store, "denied")


def _pending_pairing(store: Store, code: str) -> dict:
    code = (code or "").replace(" ", "").upper() if isinstance(code, str) else ""
    pairing = store.pairings.get(code)
    if pairing is None or pairing["status"] != "pending" or _expired(pairing, time.time()):
        raise NotFound(f"no pending pairing with code {code[:16]}")
    return pairing


def approve(store: Store, code: str) -> dict:
    """The owner allows the device showing `code` to pair."""
    pairing = _pending_pairing(store, code)
    pairing["status"] = "approved"
    store.pairings.put(pairing["code"], pairing)
    return {"code": pairing["code"], "status": "approved"}


def _set_status(store: Store, code: str, before: str, after: str) -> dict:
    """Move a live pairing from `before` to `after` in one atomic step (a device poll
    being noted at the same moment cannot undo it); NotFound when it is not `before`."""
    code = (code or "").replace(" ", "").upper() if isinstance(code, str) else ""

    def change(pairing):
        if pairing is None or pairing["status"] != before or _expired(pairing, time.time()):
            raise NotFound(f"no {before} pairing with code {code[:16]}")
        pairing.update(status=after, decided_at=time.time())
        return pairing

    store.pairings.update(code, change)
    return {"code": code, "status": after}


def deny(store: Store, code: str) -> dict:
    """The owner refuses: the code cannot activate, and its device is told so (DENIED) at
    each poll. Kept until the code expires, so that `undeny` can take it back."""
    return _set_status(store, code, "pending", "denied")


def undeny(store: Store, code: str) -> dict:
    """Take a denial back: the code waits for approval again. The device kept polling
    (a refusal is not JSON, api-contract §2.1), so approving it then pairs it."""
    return _set_status(store, code, "denied", "pending")


def _note_poll(store: Store, code: str, versions: dict) -> None:
    """Remember a waiting device's poll: its versions and address (shown to the owner)
    and when it came (a request nobody polls for is abandoned). Written only when
    something changed or every POLL_NOTE_EVERY seconds, not at every 5 s poll."""
    now, address = time.time(), _caller(None)

    def change(pairing):
        if pairing is None or pairing["status"] not in ("pending", "denied"):
            return None  # decided meanwhile: never overwrite the owner's answer
        seen = {"device": devices.wire_versions(versions)} if versions else {}
        if address:
            seen["address"] = address
        if all(pairing.get(k) == v for k, v in seen.items()) \
                and now - pairing.get("seen_at", 0) < POLL_NOTE_EVERY:
            return None
        pairing.update(seen, seen_at=now)
        return pairing

    store.pairings.update(code, change)


def activate(store: Store, config: dict, state: str, token: str, report: dict) -> dict:
    """POST /device/activate: exchange an issued, approved (state, token) pair for a login."""
    if not isinstance(state, str) or not isinstance(token, str) or not token:
        raise ActivationRefused("state and token are required", status=400)
    versions = _reported_versions(report)
    code = store.pairings.find(hash_token(token))
    pairing = store.pairings.get(code) if code else None
    if pairing is None or not hmac.compare_digest(pairing["token_hash"], hash_token(token)) \
            or not hmac.compare_digest(pairing["state"].encode(), state.encode()):
        raise ActivationRefused("no pairing was issued for this state and token", status=404)
    now = time.time()
    if _expired(pairing, now):
        store.pairings.delete(pairing["code"])
        raise ActivationRefused("pairing code expired; ask for a new one", status=404)
    if pairing["status"] in ("pending", "denied"):
        # shown to the owner who decides (versions under the names devices read)
        _note_poll(store, pairing["code"], versions)
        if pairing["status"] == "denied":  # 403 as well: polling on, so an undo still pairs
            raise ActivationRefused(DENIED.format(code=pairing["code"]))
        raise ActivationRefused(f"waiting for the owner to approve code {pairing['code']}")
    uuid = pairing.get("uuid") or _device_uuid(state)
    if store.devices.get(uuid) is None:
        store.devices.put(uuid, devices.new_device(config, uuid))
    devices.record_version(store, uuid, versions)
    login = issue_tokens(store, uuid)
    pairing.update(status="activated", activated_at=now, uuid=uuid)
    store.pairings.put(pairing["code"], pairing)
    return login


def _reported_versions(report: Optional[dict]) -> dict:
    """The versions in an activation, checked before anything is stored; a bad one is a
    plain-text refusal, since a JSON error would be saved by the device as its login."""
    try:
        return devices.version_report(report or {})
    except BadRequest as e:
        raise ActivationRefused(e.message, status=400) from e


def _device_uuid(state: str) -> str:
    """Devices choose their id through `state` (as with the old backend); keep it if it is one."""
    try:
        return str(uuidlib.UUID(state))
    except ValueError:
        return str(uuidlib.uuid4())


def _token_pair() -> Tuple[str, str]:
    """Two independent 256-bit tokens (as `secrets.token_urlsafe(32)` makes them) from one
    read of the system's random source: each read hands the GIL to another request."""
    raw = secrets.token_bytes(64)
    access, refresh = (base64.urlsafe_b64encode(half).rstrip(b"=").decode("ascii")
                       for half in (raw[:32], raw[32:]))
    return access, refresh


class _Rotated(Exception):
    """The token presented for a rotation was rotated meanwhile, by a concurrent request."""


def issue_tokens(store: Store, uuid: str, replacing: str = "") -> dict:
    """New access and refresh tokens for a device; the previous ones stop working.

    `replacing` is the token a rotation presents: it is checked again inside the
    device's atomic update, so of concurrent rotations with one token exactly one
    wins and the others raise `_Rotated` (a check before the update lets several pass)."""
    access, refresh = _token_pair()

    def apply(device):
        if device is None:
            raise NotFound(f"unknown device: {uuid[:64]}")
        if replacing and not _holds(device, hash_token(replacing), ROTATING):
            raise _Rotated()
        # other kinds (the speech URL's secret, speech_access.py) outlive a rotation
        device["tokens"] = {**(device.get("tokens") or {}),
                            "access": hash_token(access), "refresh": hash_token(refresh)}
        device["paired_at"] = time.time()
        return device

    store.devices.update(uuid, apply)
    return {"uuid": uuid, "accessToken": access, "refreshToken": refresh, "expiration": EXPIRATION}


def pair_directly(store: Store, config: dict, uuid: Optional[str] = None) -> dict:
    """Pair without a code (admin API, or the skill pairing the device it runs on)."""
    uuid = _device_uuid(uuid) if uuid else str(uuidlib.uuid4())
    if store.devices.get(uuid) is None:
        store.devices.put(uuid, devices.new_device(config, uuid))
    return issue_tokens(store, uuid)


def unpair(store: Store, uuid: str) -> None:
    """Forget a device for good: its record and tokens, and every pairing session that
    could bring it back (an activated device may replay its activation for a while)."""
    for code, session in store.pairings.all().items():
        if uuid in (session.get("uuid"), session.get("state")):
            store.pairings.delete(code)
    devices.delete(store, uuid)


def bearer(header: Optional[str]) -> str:
    """The token of an `Authorization: Bearer <token>` header ("" when absent)."""
    if not header or not header.startswith("Bearer "):
        return ""
    return header[len("Bearer "):].strip()


def authenticate(store: Store, token: str, kinds: Tuple[str, ...] = ("access",)) -> Optional[str]:
    """The uuid of the device owning `token` as one of `kinds`, else None."""
    device = authenticated_device(store, token, kinds)
    return device["uuid"] if device is not None else None


def authenticated_device(store: Store, token: str,
                         kinds: Tuple[str, ...] = ("access",)) -> Optional[dict]:
    """The stored record (read only) of the device owning `token` as one of `kinds`, with
    its "uuid" set to its key, else None."""
    if not token:
        return None
    digest = hash_token(token)
    uuid = store.devices.find(digest)
    device = store.devices.peek(uuid) if uuid else None
    if device is None or not _holds(device, digest, kinds):
        return None
    return device if device.get("uuid") == uuid else {**device, "uuid": uuid}


def _holds(device: dict, digest: str, kinds: Tuple[str, ...]) -> bool:
    """Whether `digest` is the hash of one of the device's tokens of `kinds`."""
    tokens = device.get("tokens") or {}
    matched = False
    for kind in kinds:  # every kind is compared, so timing does not tell which matched
        matched |= hmac.compare_digest(tokens.get(kind, ""), digest)
    return matched


# what rotates the tokens: the refresh token (mycroft-core) or the access token (OVOS)
ROTATING = ("access", "refresh")


def refresh(store: Store, token: str) -> Optional[dict]:
    """GET /auth/token: the refresh token (mycroft-core) or the access token (OVOS) rotates
    both, once: a replay, even concurrent with the first use, gets None."""
    uuid = authenticate(store, token, kinds=ROTATING)
    if uuid is None:
        return None
    try:
        return issue_tokens(store, uuid, replacing=token)
    except _Rotated:
        return None
