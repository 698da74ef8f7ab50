"""Client mode's small pieces: addresses as the owner says them, and device files set
aside while connected and put back exactly. Runs on both stacks."""
import os

import pytest

from ovos_skill_personal_backend.device import client


@pytest.mark.parametrize("said, url", [
    ("192.168.1.20", "http://192.168.1.20:6712"),
    ("192 dot 168 dot 1 dot 20", "http://192.168.1.20:6712"),
    ("192.168.1.20 port 8080", "http://192.168.1.20:8080"),
    ("http://kitchen.local:7000/", "http://kitchen.local:7000"),
    ("https://backend.example.org", "https://backend.example.org:6712"),
    ("", ""), ("port 80", ""),
])
def test_backend_addresses_as_said(said, url):
    assert client.backend_url(said) == url


def test_files_set_aside_come_back_exactly(tmp_path):
    kept, absent = tmp_path / "identity2.json", tmp_path / "web_cache.json"
    kept.write_text('{"uuid": "before"}')
    client.set_aside([str(kept), str(absent)])
    assert not kept.exists() and not absent.exists()
    kept.write_text('{"uuid": "joined"}')
    absent.write_text("{}")
    client.put_back([str(kept), str(absent)])
    assert kept.read_text() == '{"uuid": "before"}'
    assert not absent.exists() and os.listdir(tmp_path) == ["identity2.json"]
