"""One device of a multi-device test, in a process of its own: its own HOME/XDG tree,
mycroft.conf, bus and ovoscope MiniCroft running the skill (and the probe skill).

The test drives it with JSON commands, one per line on stdin; each is answered by one
JSON line on a pipe of its own (the device's logs go to stdout and stderr). `DeviceProcess`
is the test's side; run it through `ip netns exec` to put the device on a private network.
"""
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from typing import Iterator, List, Optional, Sequence

PROBE = "skill-sync-probe.test"


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True)


@contextlib.contextmanager
def private_network(name: str) -> Iterator[Optional[List[str]]]:
    """A network namespace with lo and a veth pair (10.77.0.1, 10.77.0.2), all up, so
    that multicast works between processes in it and nothing leaves it. Yields the
    launcher that runs a command inside (`ip netns exec NAME`), or None where no
    namespace can be made (not root, no iproute2)."""
    if shutil.which("ip") is None or os.geteuid() != 0 or _ip("netns", "add", name).returncode:
        yield None
        return
    try:
        for command in (["link", "set", "lo", "up"],
                        ["link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b"],
                        ["addr", "add", "10.77.0.1/24", "dev", "veth-a"],
                        ["addr", "add", "10.77.0.2/24", "dev", "veth-b"],
                        ["link", "set", "veth-a", "up"], ["link", "set", "veth-b", "up"]):
            done = _ip("-n", name, *command)
            if done.returncode:
                raise RuntimeError(f"ip {' '.join(command)}: {done.stderr}")
        yield ["ip", "netns", "exec", name]
    finally:
        _ip("netns", "del", name)


class DeviceProcess:
    """The test's handle on a device process."""

    def __init__(self, settings: dict, user_config: Optional[dict] = None,
                 launcher: Sequence[str] = (), timeout: float = 120):
        replies, self._reply_end = os.pipe()
        self.proc = subprocess.Popen(
            [*launcher, sys.executable, __file__, json.dumps(settings),
             json.dumps(user_config), str(self._reply_end)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            bufsize=1, pass_fds=(self._reply_end,))
        os.close(self._reply_end)
        self.output: List[str] = []
        self._replies: List[dict] = []
        self._arrived = threading.Condition()
        threading.Thread(target=self._drain, daemon=True).start()
        threading.Thread(target=self._read_replies, args=(os.fdopen(replies),),
                         daemon=True).start()
        self.boot = self._reply(timeout)

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)

    def _read_replies(self, stream) -> None:
        for line in stream:
            with self._arrived:
                self._replies.append(json.loads(line))
                self._arrived.notify_all()
        with self._arrived:  # the process ended
            self._arrived.notify_all()

    def _reply(self, timeout: float) -> dict:
        with self._arrived:
            if not self._arrived.wait_for(lambda: self._replies or self.proc.poll() is not None,
                                          timeout):
                raise AssertionError(f"device process silent for {timeout} s:\n{self.log}")
            if not self._replies:
                raise AssertionError(f"device process exited:\n{self.log}")
            return self._replies.pop(0)

    @property
    def log(self) -> str:
        return "".join(self.output[-200:])

    def call(self, command: str, timeout: float = 120, **args) -> dict:
        self.proc.stdin.write(json.dumps({"command": command, **args}) + "\n")
        self.proc.stdin.flush()
        reply = self._reply(timeout)
        if "error" in reply:
            raise AssertionError(f"{command}: {reply['error']}\n{self.log}")
        return reply

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call("stop", timeout=60)
            except (AssertionError, BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# the device's side ---------------------------------------------------------------------

def _read(path: str):
    """A JSON file's content; None when absent, or being rewritten in place this instant."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class Commands:
    """What a device process does for the test."""

    def __init__(self, device):
        self.device = device
        self.conversation = device.conversation()

    def say(self, text: str) -> dict:
        turn = self.conversation.say(text)
        said = [m for m in turn if m.msg_type == "speak"]
        return {"dialogs": [(m.data.get("meta") or {}).get("dialog") for m in said],
                "data": [(m.data.get("meta") or {}).get("data") or {} for m in said]}

    def wait_dialog(self, dialog: str, since: int = 0, timeout: float = 60) -> dict:
        """Wait for the skill to speak `dialog` (in log order from `since`)."""
        found = self.device.wait_for_message(
            lambda m: m.msg_type == "speak" and (m.data.get("meta") or {}).get("dialog") == dialog,
            since, timeout)
        return {"found": found is not None, "at": time.time(),
                "data": ((found.data.get("meta") or {}).get("data") or {}) if found else {}}

    def mark(self) -> dict:
        return {"index": len(self.device.log), "at": time.time()}

    def status(self) -> dict:
        from ovos_config.locations import find_user_config
        from skill_harness import identity_path, skill_settings_path
        from ovos_skill_personal_backend.device import remote_config
        skill = self.device.skill
        agent, link = skill.agent, skill.link
        return {"server_port": skill.server.port if skill.server else None,
                "link_url": link.url if link else None,
                "reachable": link.reachable if link else False,
                "last_sync": agent.last_sync if agent else 0,
                "failures": agent.failures if agent else 0,
                "uuid": agent.uuid if agent else None,
                "identity": _read(identity_path()), "user_config": _read(find_user_config()),
                "web_cache": _read(remote_config.web_cache_path()),
                "probe": _read(skill_settings_path(PROBE)),
                "state": _read(skill.state.path)}

    def settings(self, values: dict) -> dict:
        """Change skill settings as a settings UI does: the file, then the skill applies it."""
        skill = self.device.skill
        skill.settings.update(values)
        skill.settings.store()
        skill.on_settings_changed()
        return self.status()

    def admin(self, method: str, path: str, body=None) -> dict:
        """The admin API of the backend this device runs (from inside its network)."""
        import requests
        skill = self.device.skill
        answer = requests.request(method, f"{skill.local_url}/v1/admin{path}", json=body,
                                  headers={"Authorization": f"Bearer {skill.settings['admin_key']}"},
                                  timeout=30)
        return {"status": answer.status_code, "body": answer.json() if answer.content else None}


def main() -> None:
    import conftest  # noqa: F401  (sandboxes HOME and XDG for this process)
    from skill_harness import SKILL_ID, Device, write_settings, write_user_config
    settings, user_config = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    replies = os.fdopen(int(sys.argv[3]), "w")

    def reply(answer: dict) -> None:
        replies.write(json.dumps(answer, default=str) + "\n")
        replies.flush()

    try:
        write_user_config(user_config)
        write_settings(**settings)
        device = Device(skills=(SKILL_ID, PROBE))
        commands = Commands(device)
        reply({"ready": True})
        for line in sys.stdin:
            request = json.loads(line)
            name = request.pop("command")
            if name == "stop":
                device.stop()
                reply({"stopped": True})
                break
            try:
                answer = getattr(commands, name)(**request)
            except Exception as e:  # the test sees it as a failure, with the device's log
                answer = {"error": f"{e.__class__.__name__}: {e}"}
            reply(answer)
    finally:
        shutil.rmtree(conftest.SANDBOX, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
