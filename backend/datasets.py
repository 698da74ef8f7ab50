"""Recordings devices contribute to their owner's datasets: utterances (the audio sent
for speech-to-text, with its transcript) and wake-word samples.

Only devices that opted in (`opt_in`) are recorded, and only while the backend's
`listener.record_utterances` / `listener.record_wakewords` switch is on: the owner
decides for the backend, each device for itself.

Each recording is two files: the audio, kept exactly as the device sent it (FLAC,
WAV or Ogg, so a dataset loses nothing to re-encoding), under `recordings/<kind>/`, and a
small JSON record in a per-kind `DirCollection` (one file per recording, so saving
costs the same however many exist). Ids are random hex: unique after deletions and
safe in URLs and file names, never derived from the transcript (old bug 23).

What a device contributes is bounded (the `quotas` block): audio is kept only when its
header reads as real audio of a sane rate, channel count and length, each device keeps at
most so many recordings and bytes of each kind (429 beyond), and recordings older than
quotas.recordings_days are deleted (checked at most hourly, when recordings arrive).
"""
import base64
import binascii
import io
import json
import os
import threading
import time
import uuid as uuidlib
import weakref
from os.path import join
from typing import Dict, Iterable, List, Optional, Tuple

from ovos_utils.log import LOG

from . import quotas
from .errors import BackendError, BadRequest, NotFound, ServiceUnavailable, StorageError
from .store import Collection, Store, write_atomic

UTTERANCES = "utterances"
WAKEWORDS = "wakewords"
# the backend switch for each kind
SWITCHES = {UTTERANCES: "record_utterances", WAKEWORDS: "record_wakewords"}
# the owner's switch taking wake words without a device token from the whole network
ANONYMOUS_SWITCH = "accept_anonymous_wakewords"
# what the owner may tag a wake-word sample with; free text, as the old manager UI sends
UNTAGGED = "untagged"
TEXT_LIMIT = 200
TAG_LIMIT = 64
META_LIMIT = 16 * 1024
# what a recording may be: the audio of a microphone, not hours of 8-channel 192 kHz
MIN_RATE, MAX_RATE = 8000, 96000
MAX_CHANNELS = 2
MAX_SECONDS = 120
# seconds between two retention passes (quotas.recordings_days) over a kind's recordings
PRUNE_INTERVAL = 3600
# magic bytes -> (file extension, MIME type); anything else is refused
FORMATS = ((b"fLaC", "flac", "audio/flac"), (b"OggS", "ogg", "audio/ogg"))
WAV = ("wav", "audio/wav")


def collection(store: Store, kind: str) -> Collection:
    return {UTTERANCES: store.utterances, WAKEWORDS: store.wakewords}[kind]


def audio_format(audio: bytes) -> Tuple[str, str]:
    """(extension, MIME type) of FLAC, WAV or Ogg bytes; BadRequest for anything else."""
    if audio[:4] == b"RIFF" and audio[8:12] == b"WAVE":
        return WAV
    for magic, extension, mime in FORMATS:
        if audio.startswith(magic):
            return extension, mime
    raise BadRequest("the audio must be WAV, FLAC or Ogg")


def check_audio(audio: bytes) -> Tuple[str, str]:
    """(extension, MIME type) of real FLAC, WAV or Ogg audio of a sane rate, channel count
    and length; BadRequest for anything else. Only the header is parsed (soundfile reads
    it from memory, nothing is decoded): the magic bytes alone let 4.4 GiB of anything
    into the datasets in 20 s."""
    kind = audio_format(audio)
    try:
        import soundfile
    except Exception as e:  # the wheel bundles libsndfile; a broken install is a server problem
        LOG.error(f"soundfile cannot be imported: {e!r}")
        raise ServiceUnavailable("recordings cannot be checked: the soundfile package is missing") from e
    try:
        info = soundfile.info(io.BytesIO(audio))
    except Exception:  # libsndfile's refusals (LibsndfileError, RuntimeError, ...)
        raise BadRequest(f"the {kind[0].upper()} audio cannot be read: its header is broken") from None
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise BadRequest(f"the audio's sample rate is {info.samplerate} Hz "
                         f"(kept: {MIN_RATE}-{MAX_RATE} Hz)")
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise BadRequest(f"the audio has {info.channels} channels (kept: 1-{MAX_CHANNELS})")
    if not 0 < info.frames <= MAX_SECONDS * info.samplerate:
        raise BadRequest(f"the audio lasts {info.frames / info.samplerate:.0f} s "
                         f"(kept: up to {MAX_SECONDS} s)")
    return kind


def switched_on(config: dict, kind: str) -> bool:
    """True while the owner's backend switch for `kind` is on."""
    return bool(config["listener"].get(SWITCHES[kind]))


def enabled(config: dict, device: dict, kind: str) -> bool:
    """True when both the backend switch and the device's opt-in allow recording."""
    return switched_on(config, kind) and device.get("opt_in") is True


# validation ---------------------------------------------------------------------------

def _text(value, name: str, limit: int = TEXT_LIMIT) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise BadRequest(f"{name} must be a string of at most {limit} characters")
    return " ".join(value.split())


def _meta(value) -> dict:
    """Metadata is a JSON object (or its JSON text, as old clients send it)."""
    if value is None:
        return {}
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError:
            raise BadRequest("metadata is not valid JSON") from None
    if not isinstance(value, dict):
        raise BadRequest("metadata must be a JSON object")
    if len(json.dumps(value)) > META_LIMIT:
        raise BadRequest(f"metadata is larger than {META_LIMIT // 1024} KiB")
    return value


def decode_b64(value) -> bytes:
    """`audio_b64` of the admin API: base64, line breaks allowed (the client's encodebytes)."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("audio_b64 is required: the audio as a base64 string")
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("audio_b64 is not valid base64") from None


def wake_word_name(meta: dict) -> str:
    """The spoken wake word from upload metadata: v1 sends `name` ("hey_mycroft"),
    v2 `wake_word` (old bug 22 stored an empty transcription for v2)."""
    name = meta.get("wake_word") or meta.get("name") or ""
    return _text(str(name).replace("_", " ").replace("-", " "), "wake word name")


# storage ------------------------------------------------------------------------------

def _audio_path(store: Store, kind: str, record: dict) -> str:
    return join(store.folder("recordings", kind), record["audio_file"])


class Usage:
    """What each device's recordings of one kind take ({uuid: [count, audio bytes]}),
    counted once from the records, then kept up to date by saves and deletes: checking a
    device's quota reads nothing."""

    def __init__(self, records: Iterable[dict]):
        self.per_device: Dict[str, List[int]] = {}
        self.pruned_at = float("-inf")  # time.monotonic() of the last retention pass
        for record in records:
            self.add(record, 1)

    def add(self, record: dict, sign: int) -> None:
        """Count `record` in (sign 1) or out (-1)."""
        used = self.per_device.setdefault(str(record.get("uuid", "")), [0, 0])
        used[0] += sign
        audio_bytes = record.get("audio_bytes")
        used[1] += sign * (audio_bytes if isinstance(audio_bytes, int) else 0)


# the usage of each store's collection of each kind, made on first use (weak: a dropped
# store takes it along); the lock covers the counting and the check-then-save of a quota
_usage: "weakref.WeakKeyDictionary[Collection, Usage]" = weakref.WeakKeyDictionary()
_usage_lock = threading.RLock()


def _usage_of(store: Store, kind: str) -> Usage:
    with _usage_lock:
        records = collection(store, kind)
        usage = _usage.get(records)
        if usage is None:
            usage = _usage[records] = Usage(records.all().values())
        return usage


def _prune(store: Store, kind: str, limits: Dict[str, int]) -> None:
    """Delete the recordings older than quotas.recordings_days, at most once per
    PRUNE_INTERVAL (a pass looks at every record of the kind, which the quotas bound)."""
    usage = _usage_of(store, kind)
    if time.monotonic() - usage.pruned_at < PRUNE_INTERVAL:
        return
    usage.pruned_at = time.monotonic()
    oldest = time.time() - limits["recordings_days"] * quotas.DAY
    expired = [rec_id for rec_id, record in collection(store, kind).all().items()
               if isinstance(record.get("timestamp"), (int, float)) and record["timestamp"] < oldest]
    for rec_id in expired:
        delete(store, kind, rec_id)
    if expired:
        LOG.info(f"deleted {len(expired)} {kind} recordings older than "
                 f"{limits['recordings_days']} days (quotas.recordings_days)")


def _check_quota(store: Store, kind: str, uuid: str, size: int, limits: Dict[str, int]) -> None:
    """429 when one more recording of `size` bytes would pass the device's quotas."""
    _prune(store, kind, limits)
    count, used = _usage_of(store, kind).per_device.get(uuid, (0, 0))
    if count >= limits["recordings_per_device"]:
        raise quotas.full(f"{kind} recordings", "recordings_per_device",
                          limits["recordings_per_device"])
    if used + size > limits["recordings_mb_per_device"] * 1024 * 1024:
        raise quotas.full(f"{kind} recordings", "recordings_mb_per_device",
                          limits["recordings_mb_per_device"], " MB")


def save(store: Store, kind: str, uuid: str, audio: bytes, transcription: str,
         meta: Optional[dict] = None, limits: Optional[Dict[str, int]] = None, **extra) -> dict:
    """Store one recording and return its record.

    A device's recordings are bounded by its `limits` (quotas.recordings_*: count, bytes,
    age); the owner's own uploads (None) are not."""
    record = new_record(kind, uuidlib.uuid4().hex, uuid, audio, transcription, meta,
                        time.time(), **extra)
    with _usage_lock:
        if limits is not None:
            _check_quota(store, kind, uuid, len(audio), limits)
        return _keep(store, kind, record, audio)


def new_record(kind: str, rec_id: str, uuid: str, audio: bytes, transcription: str,
               meta: Optional[dict], timestamp: float, **extra) -> dict:
    """The record of a recording, its audio and fields checked (BadRequest)."""
    if not audio:
        raise BadRequest("the audio is empty")
    extension, _ = check_audio(audio)
    record = {"recording_id": rec_id, "uuid": uuid, "timestamp": timestamp,
              "transcription": _text(transcription or "", "transcription"),
              "meta": _meta(meta), "audio_file": f"{rec_id}.{extension}",
              "audio_bytes": len(audio), **extra}
    if kind == WAKEWORDS:
        record.setdefault("audio_tag", UNTAGGED)
        record.setdefault("speaker_tag", UNTAGGED)
    return record


def _keep(store: Store, kind: str, record: dict, audio: bytes) -> dict:
    """Write the audio, then its record (a crash in between leaves an orphan audio file,
    never a record without audio); the caller holds `_usage_lock`."""
    write_atomic(_audio_path(store, kind, record), audio)
    saved = collection(store, kind).put(record["recording_id"], record)
    _usage_of(store, kind).add(saved, 1)
    return saved


def restore(store: Store, kind: str, record: dict, audio: bytes) -> dict:
    """Keep a recording made elsewhere (the import of an old backend), as it is: the
    owner brings it, so no device quota applies."""
    with _usage_lock:
        return _keep(store, kind, record, audio)


def record_utterance(store: Store, config: dict, device: dict, audio: bytes,
                     transcription: str, lang: str) -> Optional[dict]:
    """Keep STT audio with its transcript when allowed; None when not recorded.
    Best effort: a full disk must not cost the device its transcript."""
    if not enabled(config, device, UTTERANCES):
        return None
    try:
        return save(store, UTTERANCES, device["uuid"], audio, transcription,
                    limits=config["quotas"], lang=lang)
    except StorageError as e:  # the device still gets its transcript
        LOG.error(f"utterance of {device['uuid']} not recorded: {e.message}")
    except BackendError as e:  # over its quota, or audio not fit to keep: the same
        LOG.warning(f"utterance of {device['uuid']} not recorded: {e.message}")
    return None


def upload_wake_word(store: Store, config: dict, device: dict, audio: Optional[bytes],
                     metadata) -> dict:
    """A wake-word upload (v1 /precise/upload or v2 /wake-word-file).

    Refused (400) only when the upload itself is broken; when recording is off or the
    device did not opt in it is accepted and dropped, answered with `saved: false`,
    because devices treat any error as a failure they cannot handle.
    """
    audio, meta = _checked_upload(audio, metadata)
    return _keep_wake_word(store, device["uuid"], audio, meta,
                           enabled(config, device, WAKEWORDS), config["quotas"])


def anonymous_refusal(config: dict, from_this_machine: bool) -> Optional[str]:
    """Why a wake-word upload without a device token is refused; None when it is taken.

    mycroft-core 20.2 posts its samples to `listener.wake_word_upload.url` with no
    credentials at all. Such uploads are taken only while the owner records wake words,
    and only from this machine (the device the backend runs on), unless the owner opens
    them to the network with `listener.accept_anonymous_wakewords`: anyone on the LAN
    could otherwise fill the dataset.
    """
    if not switched_on(config, WAKEWORDS):
        return ("wake-word uploads need a device token while this backend records no wake "
                "words (listener.record_wakewords is off)")
    if not from_this_machine and not config["listener"].get(ANONYMOUS_SWITCH):
        return ("wake-word uploads without a device token are only taken from this machine; "
                "the owner may allow them from the network with "
                "listener.accept_anonymous_wakewords")
    return None


def upload_anonymous_wake_word(store: Store, config: dict, audio: Optional[bytes],
                               metadata) -> dict:
    """A wake-word upload without a token (after `anonymous_refusal` let it in).

    It is attributed to the paired device its metadata names (mycroft-core's
    `accountId` is the `user.uuid` of GET /device, the device's uuid here), and then kept
    only if that device opted in, as any of its uploads; a sample naming no paired device
    is kept as nobody's, as the owner's own uploads are.
    """
    audio, meta = _checked_upload(audio, metadata)
    device = _named_device(store, meta)
    if device is None:
        return _keep_wake_word(store, "", audio, meta, switched_on(config, WAKEWORDS),
                               config["quotas"])
    return _keep_wake_word(store, device["uuid"], audio, meta,
                           enabled(config, device, WAKEWORDS), config["quotas"])


def _named_device(store: Store, meta: dict) -> Optional[dict]:
    """The paired device whose uuid upload metadata carries (`accountId` or `uuid`)."""
    for name in ("accountId", "uuid"):
        uuid = meta.get(name)
        device = store.devices.get(uuid) if isinstance(uuid, str) and uuid else None
        if device is not None and device.get("tokens"):
            return device
    return None


def _checked_upload(audio: Optional[bytes], metadata) -> Tuple[bytes, dict]:
    """(audio, metadata object) of a wake-word upload; BadRequest when it is broken."""
    if not audio:
        raise BadRequest("no audio part in the upload (multipart field 'audio')")
    check_audio(audio)
    return audio, _meta(metadata)


def _keep_wake_word(store: Store, uuid: str, audio: bytes, meta: dict, allowed: bool,
                    limits: Dict[str, int]) -> dict:
    """Store the sample as `uuid`'s (nobody's: "") when `allowed`, within `limits`; the
    answer devices get either way."""
    saved = save(store, WAKEWORDS, uuid, audio, wake_word_name(meta), meta,
                 limits) if allowed else None
    return {"success": True, "saved": saved is not None, "sent_to_mycroft": False,
            "uuid": uuid, "recording_id": saved["recording_id"] if saved else None}


def get(store: Store, kind: str, rec_id: str) -> dict:
    record = collection(store, kind).get(rec_id)
    if record is None:
        raise NotFound(f"unknown recording: {rec_id[:64]}")
    return record


def list_all(store: Store, kind: str, uuid: Optional[str] = None) -> List[dict]:
    """Recordings, oldest first, optionally of one device."""
    records = collection(store, kind).all().values()
    return sorted((r for r in records if not uuid or r.get("uuid") == uuid),
                  key=lambda r: r.get("timestamp", 0))


def read_audio(store: Store, kind: str, rec_id: str) -> Tuple[bytes, str]:
    """(audio bytes, MIME type) of a recording."""
    record = get(store, kind, rec_id)
    try:
        with open(_audio_path(store, kind, record), "rb") as f:
            audio = f.read()
    except FileNotFoundError as e:
        raise NotFound(f"the audio of recording {rec_id} is missing from the data folder") from e
    return audio, audio_format(audio)[1]


# the fields the admin may set, with the aliases the clients send (first name stored)
TAG_FIELDS = (("audio_tag", "tag"), ("speaker_tag", "speaker_type"))


def _admin_fields(kind: str, body) -> dict:
    """Transcription, metadata and (wake words) tags from an admin body; absent or
    None values are left out, meaning "keep"."""
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    clean: Dict[str, object] = {}
    if body.get("transcription") is not None:
        clean["transcription"] = _text(body["transcription"], "transcription")
    meta = body.get("metadata", body.get("meta"))
    if meta is not None:
        clean["meta"] = _meta(meta)
    if kind == WAKEWORDS:
        for names in TAG_FIELDS:
            value = next((body[n] for n in names if body.get(n) is not None), None)
            if value is not None:
                clean[names[0]] = _text(value, names[0], TAG_LIMIT) or UNTAGGED
    return clean


def create(store: Store, kind: str, body, uuid: str = "") -> dict:
    """Admin upload: `{transcription, metadata, audio_b64}` (+ tags for wake words)."""
    fields = _admin_fields(kind, body)
    audio = decode_b64(body.get("audio_b64"))
    return save(store, kind, uuid, audio, fields.pop("transcription", ""),
                fields.pop("meta", None), **fields)


def update(store: Store, kind: str, rec_id: str, body) -> dict:
    """Change transcription, metadata and (wake words) tags of a recording."""
    clean = _admin_fields(kind, body)

    def apply(record: Optional[dict]) -> dict:
        if record is None:
            raise NotFound(f"unknown recording: {rec_id[:64]}")
        record.update(clean)
        return record

    return collection(store, kind).update(rec_id, apply)


def delete(store: Store, kind: str, rec_id: str) -> None:
    """Forget a recording: its record first (so it is never listed without audio)."""
    record = get(store, kind, rec_id)
    with _usage_lock:
        if collection(store, kind).delete(rec_id):
            usage = _usage.get(collection(store, kind))
            if usage is not None:  # else counted, without it, when first needed
                usage.add(record, -1)
    try:
        os.unlink(_audio_path(store, kind, record))
    except FileNotFoundError:
        pass
    except OSError as e:
        raise StorageError(f"cannot delete the audio of {rec_id}: {e.strerror or e}") from e


def admin_view(store: Store, kind: str, record: dict, with_audio: bool = False) -> dict:
    """The row the admin client and the old manager UI read.

    Aliases: `metadata_json` (the client's name, as JSON text), `meta`, and for wake
    words `tag`/`speaker_type` (the manager's names for `audio_tag`/`speaker_tag`);
    `path` is the audio file on the server, which a manager on the same machine opens.
    The audio itself (`audio_b64`) is only in single-recording answers: lists stay
    small whatever the dataset size.
    """
    meta = dict(record.get("meta") or {})
    view = {**record, "meta": meta, "metadata_json": json.dumps(meta),
            "path": _audio_path(store, kind, record)}
    if kind == WAKEWORDS:
        meta.setdefault("name", record.get("transcription", ""))  # the manager shows meta.name
        view["tag"] = record.get("audio_tag", UNTAGGED)
        view["speaker_type"] = record.get("speaker_tag", UNTAGGED)
    if with_audio:
        audio, _ = read_audio(store, kind, record["recording_id"])
        view["audio_b64"] = base64.b64encode(audio).decode("ascii")
    return view
