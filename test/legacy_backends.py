"""The REAL old community backend (ovos-local-backend 0.1.5 and 0.2.0a23), run on loopback in
the venvs scripts/legacy_venvs.sh makes, to make the data an import reads.

`make_household(version, home)` starts the old server with HOME and every XDG_* folder in
`home`, pairs two devices with the real ovos-backend-client (each keeps the identity2.json
the client writes), sets them up through the old admin API, stores skill settings, metrics,
a wake-word recording and an OAuth token through the old device API (the OAuth provider is
a loopback stand-in), and stops it. What each old server really kept is then on disk.
"""
import json
import os
import subprocess
import sys
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import requests
from ovos_backend_client.identity import IdentityManager

from audio import buzz_wav
from conftest import ADMIN_KEY, free_port
from helpers import pair, read_identity
from standins import StandIn, json_reply

REPO = Path(__file__).resolve().parent.parent
VENVS = {"0.1.5": REPO / ".venv-legacy-0.1.5", "0.2.0a23": REPO / ".venv-legacy-0.2.0a23"}
LISBON = {"city": {"code": "Lisbon", "name": "Lisbon",
                   "state": {"code": "11", "name": "Lisbon",
                             "country": {"code": "PT", "name": "Portugal"}}},
          "coordinate": {"latitude": 38.7167, "longitude": -9.1333},
          "timezone": {"code": "Europe/Lisbon", "name": "Western European Time"}}
WEATHER_META = {"sections": [{"name": "Options", "fields": [
    {"name": "units", "type": "select", "label": "Units",
     "options": "default|default;metric|metric;imperial|imperial", "value": "imperial"},
    {"name": "api_key", "type": "text", "label": "OWM API key", "value": "owm-key-dev1"},
    {"name": "show_details", "type": "checkbox", "label": "Show details", "value": "true"},
    {"name": "refresh_minutes", "type": "number", "label": "Refresh", "value": "10"}]}]}
OAUTH_TOKEN = {"access_token": "oauth-access-abc123", "token_type": "Bearer", "expires_in": 3600,
               "refresh_token": "oauth-refresh-def456", "scope": "user-read-private"}


def available(version: str) -> bool:
    return (VENVS[version] / "bin" / "ovos-local-backend").exists()


def environment(home: Path) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "OVOS", "MYCROFT"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local" / "share"), XDG_CACHE_HOME=str(home / ".cache"),
               XDG_STATE_HOME=str(home / ".local" / "state"),
               XDG_CONFIG_DIRS=str(home / ".config-dirs"), XDG_DATA_DIRS=str(home / ".data-dirs"))
    return env


# the old servers' configs: loopback only, no IP geolocation (network), new devices get the
# default location, recordings on, the test's admin key
CONFIGURE_015 = """
import sys
from ovos_local_backend.configuration import CONFIGURATION
CONFIGURATION.update(backend_port=int(sys.argv[1]), data_path=sys.argv[2], geolocate=False,
                     override_location=True, admin_key=sys.argv[3], record_wakewords=True,
                     record_utterances=True)
CONFIGURATION["selene"].update(enabled=False, proxy_pairing=False, opt_in=False, upload_metrics=False,
                             upload_wakewords=False, upload_utterances=False, upload_settings=False)
CONFIGURATION["microservices"].update(ovos_fallback=False, owm_key="owm-from-old-backend")
CONFIGURATION.store()
"""


def _configure(version: str, home: Path, port: int, data_path: Path) -> None:
    env = environment(home)
    (home / ".config" / "json_database").mkdir(parents=True, exist_ok=True)
    (home / ".local" / "share").mkdir(parents=True, exist_ok=True)
    if version == "0.1.5":
        subprocess.run([str(VENVS[version] / "bin" / "python"), "-c", CONFIGURE_015, str(port),
                        str(data_path), ADMIN_KEY], env=env, check=True, cwd=home,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        path = home / ".config" / "ovos_backend" / "ovos_backend.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "server": {"admin_key": ADMIN_KEY, "port": port, "geolocate": False,
                       "override_location": True, "skip_auth": False, "version": "v1"},
            "listener": {"record_wakewords": True, "record_utterances": True},
            "microservices": {"owm_key": "owm-from-old-backend"}}))


@dataclass
class Household:
    """What was made on the old server: its home, and each device's identity file."""

    version: str
    home: Path
    data_path: Path
    identities: List[Path] = field(default_factory=list)

    def uuids(self) -> List[str]:
        return [read_identity(path)["uuid"] for path in self.identities]

    def token(self, n: int) -> str:
        return read_identity(self.identities[n])["access"]


class OldServer:
    def __init__(self, version: str, home: Path, port: int):
        self.version, self.home, self.port = version, home, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc = None

    def __enter__(self) -> "OldServer":
        self.log = open(self.home.parent / f"old-{self.version}.log", "wb")
        self.proc = subprocess.Popen(
            [str(VENVS[self.version] / "bin" / "ovos-local-backend"), "--flask-port",
             str(self.port), "--flask-host", "127.0.0.1"],
            env=environment(self.home), cwd=self.home, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"old backend {self.version} exited: {self.text()}")
            try:
                requests.get(f"{self.url}/v1/device/code?state=probe-{uuidlib.uuid4()}", timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError(f"old backend {self.version} did not start: {self.text()}")

    def text(self) -> str:
        self.log.flush()
        return (self.home.parent / f"old-{self.version}.log").read_text(errors="replace")[-3000:]

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _admin(server: OldServer, method: str, path: str, body) -> requests.Response:
    # 0.2's admin /device and /location store, then answer 500 (formats doc §4): not checked
    return requests.request(method, f"{server.url}/v1/admin/{path}", json=body, timeout=10,
                            headers={"Authorization": f"Bearer {ADMIN_KEY}"})


def _device_call(server: OldServer, token: str, method: str, path: str, **kwargs) -> requests.Response:
    response = requests.request(method, f"{server.url}{path}", timeout=10,
                                headers={"Authorization": f"Bearer {token}"}, **kwargs)
    assert response.status_code == 200, (path, response.status_code, response.text[:300],
                                         server.text())
    return response


def make_household(version: str, home: Path, data_path: Path = None) -> Household:
    """Run the real old server `version` in `home` and fill it (see the module docstring).
    The client's process-wide identity is pointed back where it was afterwards."""
    previous = IdentityManager.IDENTITY_FILE
    try:
        return _make_household(version, home, data_path)
    finally:
        IdentityManager.set_identity_file(previous)


def _make_household(version: str, home: Path, data_path: Path = None) -> Household:
    assert available(version), (f"{VENVS[version]} is missing: run scripts/legacy_venvs.sh "
                                "(scripts/test.sh does)")
    home.mkdir(parents=True, exist_ok=True)
    data_path = data_path or home
    port = free_port()
    _configure(version, home, port, data_path)
    household = Household(version, home, data_path)
    with StandIn(lambda request: json_reply(OAUTH_TOKEN)) as provider, \
            OldServer(version, home, port) as server:
        for n in range(2):
            path = home.parent / f"{version}-device{n}" / "identity2.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            pair(server.url, path, state=str(uuidlib.uuid4()))  # the real client writes it
            household.identities.append(path)
        first, second = household.uuids()
        _admin(server, "PUT", f"{first}/device", {"name": "Legacy device 1", "opt_in": True,
                                                  "device_location": "kitchen",
                                                  "email": "owner1@example.com"})
        _admin(server, "PUT", f"{second}/device", {"name": "Legacy device 2", "opt_in": True,
                                                   "isolated_skills": True})
        _admin(server, "PUT", f"{first}/location", LISBON)
        _admin(server, "PUT", f"{first}/prefs", {"system_unit": "imperial", "lang": "en-us",
                                                 "time_format": "half", "date_format": "MDY"})
        token = household.token(0)
        if version == "0.1.5":  # 0.2 answers 500 to every skill-settings upload (doc §4)
            for n, uuid in enumerate((first, second)):
                skill = {"skillMetadata": WEATHER_META, "display_name": "Weather",
                         "skill_gid": f"@{uuid if n else ''}|skill-weather.openvoiceos"}
                _device_call(server, household.token(n), "PUT", f"/v1/device/{uuid}/skill",
                             json=skill)
        for n in range(3):
            _device_call(server, token, "POST", f"/v1/device/{first}/metric/timing",
                         json={"id": f"stt-{n}", "system": "speech", "start_time": 1733500000.5 + n,
                               "time": 0.42})
        meta = {"name": "hey_jarvis", "engine": "0f4d", "time": "1733500000123",
                "sessionId": "7d18", "accountId": "0", "model": "5223"}
        _device_call(server, token, "POST", "/precise/upload", files={
            "audio": ("audio", buzz_wav(0.5), "audio/wav"),
            "metadata": ("metadata", json.dumps(meta), "application/json")})
        _device_call(server, token, "GET", "/v1/auth/spotify/auth_url", params={
            "client_id": "spotify-client", "client_secret": "spotify-secret",
            "auth_endpoint": "https://accounts.example.com/authorize",
            "token_endpoint": provider.url + "/token", "refresh_endpoint": provider.url + "/token",
            "scope": "user-read-private"})
        callback_id = "spotify" if version == "0.1.5" else f"{first}|spotify"
        requests.get(f"{server.url}/v1/auth/callback/{callback_id}", params={"code": "granted"},
                     timeout=10).raise_for_status()
    return household


if __name__ == "__main__":  # make one by hand: python legacy_backends.py 0.1.5 /tmp/old-home
    print(make_household(sys.argv[1], Path(sys.argv[2])))
