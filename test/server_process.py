"""The standalone server in a child process, and pairing over plain HTTP: what the
tests of both stacks need without ovos-backend-client (the current-device stack has none)."""
import os
import signal
import subprocess
import sys
import threading
import time
import uuid as uuidlib
from typing import List, Optional, Sequence

import requests


def raw_pair(url: str, version: str = "v1") -> dict:
    """Pair over plain HTTP (auto mode); returns the login. For load tests without the client."""
    state = str(uuidlib.uuid4())
    code = requests.get(f"{url}/{version}/device/code", params={"state": state}, timeout=30)
    code.raise_for_status()
    answer = requests.post(f"{url}/{version}/device/activate",
                           json={"state": state, "token": code.json()["token"]}, timeout=30)
    answer.raise_for_status()
    return answer.json()


class ServerProcess:
    """`python -m ...backend.cli` in a child process, for CLI, signal and crash tests.

    Its output is drained by threads (a full pipe would block the server) into `output`.
    """

    def __init__(self, *args: str, env: Optional[dict] = None, launcher: Sequence[str] = ()):
        self.args = list(args)
        self.launcher = list(launcher)  # a command the server is run through (e.g. unshare)
        self.env = {**os.environ, **(env or {})}
        self.proc: Optional[subprocess.Popen] = None
        self.banner = ""
        self.output: List[str] = []
        self._drains: List[threading.Thread] = []

    def start(self, wait_for: Optional[str] = "ovos-personal-backend serving on",
              timeout: float = 60) -> "ServerProcess":
        """Start; wait for a line containing `wait_for` (None: do not wait)."""
        self.proc = subprocess.Popen(
            [*self.launcher, sys.executable, "-m", "ovos_skill_personal_backend.backend.cli",
             *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)
        for stream in (self.proc.stdout, self.proc.stderr):
            drain = threading.Thread(target=self._drain, args=(stream,), daemon=True)
            drain.start()
            self._drains.append(drain)
        if wait_for is None:
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.output if wait_for in line]
            if found:
                self.banner = found[0]
                return self
            if self.proc.poll() is not None:
                self.finish()
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.text}")
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"server did not start in time: {self.text}")

    def _drain(self, stream) -> None:
        for line in stream:
            self.output.append(line)

    @property
    def text(self) -> str:
        return "".join(self.output)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        code = self.proc.wait(timeout)
        self.finish()
        return code

    def finish(self) -> None:
        """Collect the rest of the output once the process has exited."""
        for drain in self._drains:
            drain.join(10)

    def kill(self) -> None:
        """SIGKILL: no cleanup runs, as in a power cut (minus the disk cache)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc:
            self.finish()
