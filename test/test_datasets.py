"""Datasets: utterance recordings (STT audio + transcript) and wake-word samples, stored
for opted-in devices while the backend's switches are on, and managed through the admin
API (api-contract §6.6, §7.2, §7.3 gaps 3 and 5, §7.4, old bugs 21-23).

Every upload goes through the real client: `stt_get`, `dataset_upload_wake_word` (v2,
with a speech_recognition AudioData), `device_upload_wake_word_v1` (v1, /precise/upload);
both wake-word calls send their multipart body labelled `application/json`, as the
real client always does. Admin reads and edits use the client's `db_*` calls.
"""
import base64
import io
import json
import os
import wave

import pytest
import requests
from speech_recognition import AudioData

from audio import missing_tools, speak
from conftest import make_config
from helpers import (admin_backend, admin_headers, bearer, pair, restore_identity,  # noqa: F401
                     serve)
from speech_model import pocketsphinx_block
from ovos_skill_personal_backend.backend.store import Store

pytestmark = [pytest.mark.usefixtures("restore_identity"),
              pytest.mark.skipif(bool(missing_tools()), reason="needs espeak-ng and sox")]

V1_PARAMS = {"name": "hey_mycroft", "engine": "0f4df281688583e010c26831abdc2222",
             "time": "1592192357852", "sessionId": "7d18e208", "accountId": "0",
             "model": "5223842df0cdee5bca3eff8eac1b67fc"}
V2_PARAMS = {"name": "hey mycroft", "engine_name": "precise", "time": "1700000000000",
             "model": "hey-mycroft.pb"}


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speech")
    return {"hello": speak("hello world", folder),
            "wake": speak("hey mycroft", folder, fmt="wav")}


def _audio_data(wav: bytes) -> AudioData:
    with wave.open(io.BytesIO(wav)) as w:
        return AudioData(w.readframes(w.getnframes()), w.getframerate(), w.getsampwidth())


@pytest.fixture
def recording(tmp_path):
    """A server with both dataset switches on, and a paired device that opted in."""
    config = make_config(tmp_path / "data")
    config["stt"] = pocketsphinx_block(tmp_path / "model")
    config["listener"] = {"record_utterances": True, "record_wakewords": True}
    with serve(config) as server:
        device = pair(server.url, tmp_path / "device.json")
        admin = admin_backend(server.url)
        assert admin.admin_set_device_info(device.uuid, {"opt_in": True}).status_code == 200
        server.device, server.admin, server.data = device, admin, tmp_path / "data"
        yield server


# utterances ---------------------------------------------------------------------------

def test_stt_audio_is_recorded_with_its_transcript(recording, speech):
    device, admin = recording.device, recording.admin
    assert device.stt_get(speech["hello"], "en-us") == ["hello world"]
    rows = admin.db_list_stt_recordings()
    assert len(rows) == 1
    row = rows[0]
    assert (row["uuid"], row["transcription"], row["lang"]) == (device.uuid, "hello world", "en-us")
    assert "audio_b64" not in row  # lists stay small
    assert os.path.isfile(row["path"]) and row["path"].startswith(str(recording.data))

    full = admin.db_get_stt_recording(row["recording_id"])
    # kept exactly as the device sent it: FLAC, not re-encoded
    assert base64.b64decode(full["audio_b64"]) == speech["hello"]
    audio = requests.get(f"{recording.url}/v1/admin/voice_recs/{row['recording_id']}/audio",
                         headers=admin_headers(), timeout=10)
    assert audio.status_code == 200 and audio.headers["Content-Type"] == "audio/flac"
    assert audio.content == speech["hello"]


def test_update_and_delete_an_utterance(recording, speech):
    recording.device.stt_get(speech["hello"])
    admin = recording.admin
    rec_id = admin.db_list_stt_recordings()[0]["recording_id"]
    path = admin.db_get_stt_recording(rec_id)["path"]

    row = admin.db_update_stt_recording(rec_id, transcription="hello world!",
                                        metadata={"checked": True})
    assert row["transcription"] == "hello world!" and row["meta"] == {"checked": True}
    assert json.loads(row["metadata_json"]) == {"checked": True}
    # None means "keep": the client always sends both keys
    row = admin.db_update_stt_recording(rec_id, metadata={"checked": False})
    assert row["transcription"] == "hello world!"

    assert admin.db_delete_stt_recording(rec_id) == {"success": True, "recording_id": rec_id}
    assert not os.path.exists(path)
    assert admin.db_list_stt_recordings() == []
    assert admin.db_get_stt_recording(rec_id) == {"error": f"unknown recording: {rec_id}"}


def test_nothing_is_recorded_without_opt_in_or_switch(tmp_path, speech):
    config = make_config(tmp_path / "data")
    config["stt"] = pocketsphinx_block(tmp_path / "model")
    config["listener"] = {"record_utterances": False, "record_wakewords": False}
    with serve(config) as server:
        admin = admin_backend(server.url)
        opted_in = pair(server.url, tmp_path / "a.json")
        admin.admin_set_device_info(opted_in.uuid, {"opt_in": True})
        assert opted_in.stt_get(speech["hello"]) == ["hello world"]
        answer = opted_in.dataset_upload_wake_word(_audio_data(speech["wake"]), V2_PARAMS)
        assert answer.status_code == 200
        assert answer.json() == {"success": True, "saved": False, "sent_to_mycroft": False,
                                 "uuid": opted_in.uuid, "recording_id": None}
        assert admin.db_list_stt_recordings() == [] and admin.db_list_ww_recordings() == []


def test_per_device_opt_out(recording, speech, tmp_path):
    device, admin = recording.device, recording.admin
    other = pair(recording.url, tmp_path / "other.json")  # never opted in
    assert other.stt_get(speech["hello"]) == ["hello world"]
    assert other.device_upload_wake_word_v1(speech["wake"], V1_PARAMS).json()["saved"] is False

    device.stt_get(speech["hello"])
    admin.admin_set_device_info(device.uuid, {"opt_in": False})  # the owner opts it out
    device.stt_get(speech["hello"])
    answer = device.dataset_upload_wake_word(_audio_data(speech["wake"]), V2_PARAMS)
    assert answer.json()["saved"] is False
    assert [r["uuid"] for r in admin.db_list_stt_recordings()] == [device.uuid]
    assert admin.db_list_ww_recordings() == []


# wake words ---------------------------------------------------------------------------

def test_v2_wake_word_upload_is_stored(recording, speech):
    device, admin = recording.device, recording.admin
    answer = device.dataset_upload_wake_word(_audio_data(speech["wake"]), V2_PARAMS)
    # the client labels its multipart body application/json (the old server answered 400)
    assert answer.request.headers["Content-Type"] == "application/json"
    assert answer.status_code == 200
    reply = answer.json()
    assert (reply["success"], reply["saved"], reply["sent_to_mycroft"]) == (True, True, False)

    row = admin.db_get_ww_recording(reply["recording_id"])
    assert row["uuid"] == device.uuid
    assert row["transcription"] == "hey mycroft"  # from `wake_word` (old bug 22: empty)
    assert row["meta"] == {"wake_word": "hey mycroft", "engine": "precise",
                           "timestamp": "1700000000000", "model": "hey-mycroft.pb",
                           "name": "hey mycroft"}
    # the manager UI's names next to the client's
    assert (row["audio_tag"], row["speaker_tag"], row["tag"], row["speaker_type"]) == \
        ("untagged",) * 4
    sent = base64.b64decode(row["audio_b64"])
    assert sent == _audio_data(speech["wake"]).get_wav_data()
    with open(row["path"], "rb") as f:
        assert f.read() == sent


def test_v1_precise_upload_is_stored(recording, speech):
    device, admin = recording.device, recording.admin
    answer = device.device_upload_wake_word_v1(speech["wake"], V1_PARAMS)
    assert answer.request.url == f"{recording.url}/precise/upload"
    assert answer.request.headers["Content-Type"] == "application/json"
    assert answer.status_code == 200 and answer.json()["saved"] is True
    [row] = admin.db_list_ww_recordings()
    assert (row["uuid"], row["transcription"]) == (device.uuid, "hey mycroft")
    assert row["meta"] == V1_PARAMS and row["meta"]["name"] == "hey_mycroft"

    # also an explicit upload_url, and a correctly labelled multipart body
    device.dataset_upload_wake_word(speech["wake"], V1_PARAMS,
                                    upload_url=f"{recording.url}/precise/upload")
    labelled = requests.post(f"{recording.url}/precise/upload", headers=bearer(device.access_token),
                             files={"audio": ("sample.wav", speech["wake"]),
                                    "metadata": (None, json.dumps({"name": "hey_jarvis"}))},
                             timeout=10)
    assert labelled.status_code == 200 and labelled.json()["saved"] is True
    names = [r["transcription"] for r in admin.db_list_ww_recordings()]
    assert names == ["hey mycroft", "hey mycroft", "hey jarvis"]


def test_broken_wake_word_uploads(recording, speech):
    device = recording.device
    url = f"{recording.url}/v1/device/{device.uuid}/wake-word-file"
    cases = [
        ({"metadata": ("m", json.dumps(V1_PARAMS))}, "no audio"),
        ({"audio": ("a", b"this is not audio")}, "WAV"),
        ({"audio": ("a", speech["wake"]), "metadata": ("m", b"{not json")}, "metadata"),
        ({"audio": ("a", speech["wake"]), "metadata": ("m", b"[1, 2]")}, "metadata"),
    ]
    for files, word in cases:
        answer = requests.post(url, files=files, timeout=10, headers={
            **bearer(device.access_token), "Content-Type": "application/json"})
        assert answer.status_code == 400 and word in answer.json()["error"], files
    plain_json = requests.post(url, json={"audio": "x"}, headers=bearer(device.access_token),
                               timeout=10)
    assert plain_json.status_code == 400
    assert requests.post(url, files={"audio": speech["wake"]}, timeout=10).status_code == 401
    # (v1 without any token is mycroft-core 20.2's upload: test_parity_wakewords.py)
    assert requests.post(f"{recording.url}/precise/upload", files={"audio": speech["wake"]},
                         headers=bearer("not-a-token"), timeout=10).status_code == 401
    assert recording.admin.db_list_ww_recordings() == []


def test_tags_update_and_delete(recording, speech):
    device, admin = recording.device, recording.admin
    answer = device.dataset_upload_wake_word(_audio_data(speech["wake"]), V2_PARAMS)
    rec_id = answer.json()["recording_id"]
    row = admin.db_update_ww_recording(rec_id, transcription="hey my croft",
                                       metadata={"name": "hey mycroft", "checked": True})
    assert row["transcription"] == "hey my croft" and row["meta"]["checked"] is True

    # the manager's tagging calls (gap 5): its names and the client's
    url = f"{recording.url}/v1/admin/ww_recs/{rec_id}"
    tagged = requests.put(url, json={"tag": "wake_word", "speaker_type": "female"},
                          headers=admin_headers(), timeout=10).json()
    assert (tagged["audio_tag"], tagged["speaker_tag"]) == ("wake_word", "female")
    tagged = requests.put(url, json={"audio_tag": "noise"}, headers=admin_headers(),
                          timeout=10).json()
    assert (tagged["tag"], tagged["speaker_type"]) == ("noise", "female")
    assert admin.db_get_ww_recording(rec_id)["transcription"] == "hey my croft"

    audio = requests.get(url + "/audio", headers=admin_headers(), timeout=10)
    assert audio.headers["Content-Type"] == "audio/wav" and audio.content[:4] == b"RIFF"
    assert admin.db_delete_ww_recording(rec_id)["success"] is True
    assert admin.db_list_ww_recordings() == []
    for method in (requests.get, requests.delete):
        gone = method(url, headers=admin_headers(), timeout=10)
        assert gone.status_code == 404 and gone.json()["error"]


def test_admin_uploads(recording, speech):
    """PUT|POST without uuid (what the client sends, gap 3) and POST /{uuid} (the old server)."""
    admin, device = recording.admin, recording.device
    # the client itself cannot send: it puts raw bytes into its JSON body
    with pytest.raises(TypeError):
        admin.db_post_stt_recording(speech["hello"], "hello world")
    b64 = base64.encodebytes(speech["hello"]).decode()  # with line breaks, as the client means it
    base = f"{recording.url}/v1/admin"
    made = requests.put(f"{base}/voice_recs", headers=admin_headers(), timeout=10,
                        json={"transcription": "hello world", "metadata": {"src": "upload"},
                              "audio_b64": b64}).json()
    assert (made["uuid"], made["transcription"]) == ("", "hello world")
    assert made["meta"] == {"src": "upload"}
    made = requests.post(f"{base}/ww_recs/{device.uuid}", headers=admin_headers(), timeout=10,
                         json={"transcription": "hey mycroft", "meta": {"name": "hey_mycroft"},
                               "audio_b64": base64.b64encode(speech["wake"]).decode(),
                               "tag": "wake_word"}).json()
    assert (made["uuid"], made["tag"], made["speaker_type"]) == \
        (device.uuid, "wake_word", "untagged")
    stored = admin.db_get_ww_recording(made["recording_id"])
    assert base64.b64decode(stored["audio_b64"]) == speech["wake"]

    for url, body, status in (
            (f"{base}/voice_recs", {"transcription": "x"}, 400),
            (f"{base}/voice_recs", {"transcription": "x", "audio_b64": "%%%"}, 400),
            (f"{base}/voice_recs", {"audio_b64": base64.b64encode(b"not audio").decode()}, 400),
            (f"{base}/voice_recs", {"audio_b64": b64, "transcription": 5}, 400),
            (f"{base}/ww_recs/no-such-device", {"audio_b64": b64}, 404)):
        answer = requests.post(url, json=body, headers=admin_headers(), timeout=10)
        assert answer.status_code == status and answer.json()["error"], body
    assert requests.get(f"{base}/voice_recs/list", timeout=10).status_code in (401, 403)


def _upload_v1(device, speech) -> str:
    return device.device_upload_wake_word_v1(speech["wake"], V1_PARAMS).json()["recording_id"]


def test_ids_are_unique_url_safe_and_survive_a_restart(recording, speech):
    """Old bug 23: ids from count()+1 collided after deletions and embedded the transcript."""
    admin, device = recording.admin, recording.device
    ids = []
    for _ in range(3):
        ids.append(_upload_v1(device, speech))
    admin.db_delete_ww_recording(ids[1])
    admin.db_update_ww_recording(ids[0], transcription="a/b c?d#e")
    ids.append(_upload_v1(device, speech))
    assert len(set(ids)) == 4
    assert all(len(i) == 32 and i.isalnum() for i in ids)
    assert admin.db_get_ww_recording(ids[0])["transcription"] == "a/b c?d#e"

    reopened = Store(str(recording.data))
    assert sorted(reopened.wakewords.keys()) == sorted([ids[0], ids[2], ids[3]])
