"""Two devices on a private network: one runs the backend (server mode), the other joins
it by voice (client mode). Each is a process of its own (own HOME/XDG tree, mycroft.conf,
bus: test/device_process.py), both inside a network namespace made for the test, with a
veth pair whose two ends carry the namespace's addresses, so DNS-SD discovery uses real
multicast and nothing leaves the namespace. Runs on both stacks."""
import os
import subprocess
import sys
import time

import pytest

from conftest import ADMIN_KEY, free_port, wait_until
from device_process import PROBE, DeviceProcess, private_network

NETNS = f"pb-join-{os.getpid()}"
CLIENT_CONFIG = {"server": {"url": "https://backend.example.invalid", "version": "v9"},
                 "lang": "en-us", "listener": {"wake_word_upload": {"disable": True}}}


@pytest.fixture(scope="module")
def netns():
    with private_network(NETNS) as launcher:
        if launcher is None:
            pytest.skip("needs root and iproute2 to make a private network namespace")
        yield launcher


@pytest.fixture(scope="module")
def server(netns):
    device = DeviceProcess({"mode": "server", "host": "0.0.0.0", "pairing": "confirm",
                            "admin_key": ADMIN_KEY, "backend_name": "Living room",
                            "port": free_port()}, launcher=netns)
    yield device
    device.stop()


@pytest.fixture(scope="module")
def client(netns, server):
    device = DeviceProcess({"mode": "client"}, user_config=CLIENT_CONFIG, launcher=netns)
    yield device
    device.stop()


# another backend on the network (only its announcement: nothing listens there)
DECOY = """
import sys
from ovos_skill_personal_backend.device.discovery import Advertiser
advertiser = Advertiser("10.77.0.2", 9, "v1", "confirm", "Garage").start()
advertiser._thread.join()
print("announced", flush=True)
sys.stdin.read()
advertiser.stop()
"""


@pytest.fixture(scope="module")
def decoy(netns):
    process = subprocess.Popen([*netns, sys.executable, "-c", DECOY], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "announced"
    yield
    process.communicate(timeout=30)


@pytest.fixture(scope="module")
def joined(server, client, decoy):
    """The client joined by voice, choosing between two backends by name; the approval
    given by voice on the server device."""
    mark = server.call("mark")
    turn = client.call("say", text="connect to the personal backend")
    assert turn["dialogs"] == ["which.backend"], (turn, client.log)
    assert turn["data"][0]["names"] == "Garage or Living room"
    turn = client.call("say", text="the living room one")
    assert turn["dialogs"] == ["join.code"], (turn, client.log)
    code = turn["data"][0]["code"]
    announced = server.call("wait_dialog", dialog="pairing.requested", since=mark["index"])
    assert announced["found"] and announced["data"]["code"] == code
    approval = server.call("say", text="approve the new device")
    assert approval["dialogs"] == ["approved"], approval
    approved_at = time.time()
    assert client.call("wait_dialog", dialog="joined")["found"]
    assert wait_until(lambda: client.call("status")["last_sync"], timeout=30), client.log
    synced = client.call("status")
    print(f"\napproval to first completed sync: {synced['last_sync'] - approved_at:.3f} s")
    return synced


def test_the_client_found_the_server_and_paired_in_confirm_mode(server, joined):
    assert joined["identity"]["uuid"] == joined["uuid"] and joined["identity"]["access"]
    port = server.call("status")["server_port"]
    assert joined["link_url"] in (f"http://10.77.0.1:{port}", f"http://10.77.0.2:{port}")
    assert joined["user_config"]["server"]["url"] == joined["link_url"]
    assert joined["user_config"]["lang"] == "en-us"  # the rest of mycroft.conf is kept
    device = server.call("admin", method="GET", path=f"/devices/{joined['uuid']}")
    assert device["status"] == 200 and PROBE in device["body"]["skills_installed"]


def test_a_preference_and_a_skill_setting_reach_the_client(server, client, joined):
    uuid = joined["uuid"]
    assert server.call("admin", method="PUT", path=f"/{uuid}/prefs",
                       body={"date_format": "MDY", "system_unit": "imperial"})["status"] == 200
    current = server.call("admin", method="GET", path=f"/skill_settings/{PROBE}")["body"]
    assert server.call("admin", method="PUT", path=f"/skill_settings/{PROBE}",
                       body={"settings": {**current["settings"], "greeting": "hola"}}
                       )["status"] == 200

    def arrived():
        status = client.call("status")
        return (status["web_cache"] or {}).get("date_format") == "MDY" and \
            (status["probe"] or {}).get("greeting") == "hola"

    assert wait_until(arrived, timeout=40), client.log


def test_the_client_says_which_backend_it_uses(client, joined):
    turn = client.call("say", text="which backend am I using")
    assert turn["dialogs"] == ["joined.backend"]
    assert joined["link_url"] == f"http://{turn['data'][0]['host']}:{turn['data'][0]['port']}"


def test_the_client_follows_the_backend_to_another_port(server, client, joined):
    moved_at = time.time()
    new_port = free_port()
    assert server.call("settings", values={"port": new_port})["server_port"] == new_port

    def followed():
        status = client.call("status")
        return status["link_url"] and status["link_url"].endswith(f":{new_port}") and \
            status["reachable"] and status["last_sync"] > moved_at

    assert wait_until(followed, timeout=90), client.log
    status = client.call("status")
    print(f"\nbackend moved to another port, client synced with it again after "
          f"{status['last_sync'] - moved_at:.3f} s")
    assert wait_until(lambda: (client.call("status")["user_config"] or {}).get("server", {})
                      .get("url") == status["link_url"])


def test_a_client_keeps_its_settings_while_the_backend_is_off_and_syncs_when_it_is_back(
        server, client, joined):
    before = client.call("status")
    # the server device's owner switches it to client mode: its backend stops (no restart)
    assert server.call("settings", values={"mode": "client"})["server_port"] is None
    assert wait_until(lambda: not client.call("status")["reachable"], timeout=60)
    assert client.call("say", text="which backend am I using")["dialogs"] == ["backend.unreachable"]
    status = client.call("status")
    assert (status["web_cache"], status["identity"]) == (before["web_cache"], before["identity"])
    assert status["user_config"] in (before["user_config"], None)  # None: read mid-write
    back_at = time.time()
    assert server.call("settings", values={"mode": "server"})["server_port"]

    def back():
        status = client.call("status")
        return status["reachable"] and status["last_sync"] > back_at

    assert wait_until(back, timeout=60), client.log
    print(f"\nbackend back on: client synced with it again after "
          f"{client.call('status')['last_sync'] - back_at:.3f} s")


def test_a_forgotten_client_says_it_was_disconnected_then_restores_its_config(server, client,
                                                                             joined):
    uuid = joined["uuid"]
    assert server.call("admin", method="PUT", path=f"/{uuid}/device",
                       body={"name": "Kitchen"})["status"] == 200
    mark = client.call("mark")
    assert server.call("say", text="forget the kitchen device")["dialogs"] == ["confirm.forget"]
    assert server.call("say", text="yes")["dialogs"] == ["forgot.device"]
    assert client.call("wait_dialog", dialog="disconnected.by.backend", since=mark["index"],
                       timeout=60)["found"], client.log
    assert client.call("say", text="which backend am I using")["dialogs"] == ["not.joined"]
    turn = client.call("say", text="disconnect from the personal backend")
    assert turn["dialogs"] == ["left.backend"]
    status = client.call("status")
    assert status["user_config"] == CLIENT_CONFIG
    assert status["identity"] is None and status["web_cache"] is None


def test_a_client_joins_a_backend_named_by_its_address(server, client):
    port = server.call("status")["server_port"]
    mark = client.call("mark")
    turn = client.call("say", text=f"use the backend at 10 dot 77 dot 0 dot 1 port {port}")
    assert turn["dialogs"] == ["join.code"], (turn, client.log)
    assert server.call("say", text="approve the new device")["dialogs"] == ["approved"]
    assert client.call("wait_dialog", dialog="joined", since=mark["index"], timeout=60)["found"]
    status = client.call("status")
    assert status["link_url"] == f"http://10.77.0.1:{port}"
    assert status["user_config"]["server"]["url"] == status["link_url"]
    assert client.call("say", text="disconnect from the personal backend")["dialogs"] == \
        ["left.backend"]
    status = client.call("status")
    assert status["user_config"] == CLIENT_CONFIG and status["identity"] is None
