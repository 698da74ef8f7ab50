"""Speech engines in worker processes of their own, out of the serving process.

An STT plugin holds the interpreter lock for most of an utterance (pocketsphinx: ~0.7 s
each), so run in the server's process it stalls every other request (device polls
fell from ~1,200/s to ~20/s) and, inside ovos-core, every other skill; its model also
stays in that process's memory for good. Here each engine (STT, TTS) runs in worker
processes started on first use: the serving thread sends the request down a pipe and
waits without the lock.

- A worker loads its engine once and keeps it; ``size`` workers per engine serve
  requests in parallel (the admission limits keep at most that many running).
- A worker that dies mid-request, or takes longer than ``timeout`` (then it is killed),
  fails that request with a 503 saying so; the next request starts a new one.
- Workers end with the server (``close``), and by themselves when the server's
  process goes away (their request pipe reaches end-of-file), so none is left behind.

The parent and a worker exchange pickled tuples over the worker's stdin/stdout:
``(operation, args)`` one way, ``("ok", value)`` or ``("error", status, message)`` the
other. The worker moves its stdout aside first, so a plugin that prints cannot corrupt
the answers.
"""
import os
import queue
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Callable, Dict, List, Optional, Tuple

from ovos_utils.log import LOG

from ..errors import BackendError, ServiceUnavailable

KILL_WAIT = 5.0  # seconds a worker asked to stop gets before it is killed
LOAD_TIMEOUT = 300.0  # seconds a new worker may take to start and load its engine
NICENESS = 10  # the workers' scheduling priority below the server's (see main)


def _engine_factories() -> Dict[str, Callable[..., object]]:
    """kind -> the engine's class, built in the worker from the pool's `args`."""
    from .stt import SpeechToText
    from .tts import TextToSpeech
    return {"stt": SpeechToText, "tts": TextToSpeech}


# what a caller may ask of each kind of engine: nothing else runs in a worker
OPERATIONS = {"stt": {"transcribe", "detect_language", "status", "load"},
              "tts": {"synthesize", "load"}}


class WorkerFailed(ServiceUnavailable):
    """The worker died or timed out during a request (503); the next request gets a new one."""


class _Worker:
    """One worker process and the two ends of its pipe."""

    def __init__(self, kind: str, args: tuple):
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            close_fds=True, env=_environment())
        # Connection takes over the file descriptors: keep Popen from closing them twice
        self._to = Connection(os.dup(self.process.stdin.fileno()), readable=False)
        self._from = Connection(os.dup(self.process.stdout.fileno()), writable=False)
        self.process.stdin.close()
        self.process.stdout.close()
        self._to.send((kind, args, LOG.level))
        self.stopped = False
        self.loaded = False  # its engine has been loaded (see EnginePool.call)

    def call(self, operation: str, args: tuple, timeout: float):
        """The worker's answer to one request; WorkerFailed when it dies or times out."""
        try:
            self._to.send((operation, args))
            if not self._from.poll(timeout):
                raise WorkerFailed(f"the speech engine took longer than {timeout:g} s and was "
                                   "stopped; it restarts with the next request")
            answer = self._from.recv()
        except (EOFError, OSError) as e:
            if self.stopped:  # the server is closing the pool under this request
                raise WorkerFailed("the speech engine was stopped: the server is shutting down") from None
            code = self.process.poll()
            LOG.error(f"speech worker {self.process.pid} failed: {e!r} (exit code {code})")
            raise WorkerFailed("the speech engine stopped unexpectedly"
                               f"{'' if code is None else f' (exit code {code})'}; "
                               "it restarts with the next request") from None
        if answer[0] == "ok":
            return answer[1]
        _, status, message = answer
        raise BackendError(message, status)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, wait: float = KILL_WAIT) -> None:
        """End the worker: closing its pipe ends it; kill it if it does not go."""
        self.stopped = True
        for end in (self._to, self._from):
            try:
                end.close()
            except OSError:
                pass
        try:
            self.process.wait(wait)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _environment() -> Dict[str, str]:
    """The server's environment, with this package importable from where it was imported
    (ovos-core may have loaded it from a folder that is not on the default path)."""
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return env


class EnginePool:
    """`size` worker processes running one engine, built from `args`, each started when
    first needed.

    Callers bound their own concurrency (services/stt.py Admission): a call waits for a
    free worker, which with at most `size` callers at once is never long.
    """

    def __init__(self, kind: str, args: tuple, size: int = 1, timeout: float = 60.0):
        if kind not in OPERATIONS:
            raise ValueError(f"unknown engine kind {kind!r}")
        self.kind, self._args, self.timeout = kind, args, timeout
        self._idle: "queue.LifoQueue[Optional[_Worker]]" = queue.LifoQueue()
        for _ in range(max(1, size)):
            self._idle.put(None)  # a slot whose worker is started when first used
        self._lock = threading.Lock()
        self._workers: List[_Worker] = []
        self.started = 0  # worker processes started, in all: restarts show here

    def call(self, operation: str, *args, timeout: Optional[float] = None):
        """`engine.<operation>(*args)` in a worker; its BackendErrors are raised here as
        they were there (same status and message), and a worker that dies or times out
        raises WorkerFailed (503)."""
        if operation not in OPERATIONS[self.kind]:
            raise ValueError(f"{self.kind} engines do not offer {operation!r}")
        worker = self._idle.get()
        try:
            try:
                if worker is None or not worker.alive():
                    worker = self._start()
                if not worker.loaded and operation != "status":
                    # a worker loads its engine first, under a limit of its own: the
                    # request's timeout is for the request (a status loads nothing)
                    worker.call("load", (), LOAD_TIMEOUT)
                    worker.loaded = True
                return worker.call(operation, args, self.timeout if timeout is None else timeout)
            except WorkerFailed:
                self._forget(worker)
                worker.stop(wait=0)
                worker = None
                raise
        finally:
            self._idle.put(worker)

    def pids(self) -> List[int]:
        """The process ids of the running workers (for status pages and tests)."""
        with self._lock:
            return [w.process.pid for w in self._workers if w.alive()]

    def close(self) -> None:
        """Stop every worker; later calls start new ones."""
        with self._lock:
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.stop()

    def _start(self) -> _Worker:
        worker = _Worker(self.kind, self._args)
        with self._lock:
            self._workers.append(worker)
            self.started += 1
        LOG.info(f"{self.kind} worker started (pid {worker.process.pid})")
        return worker

    def _forget(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._workers:
                self._workers.remove(worker)


# ---------------------------------------------------------------- the worker's side

def serve(requests: Connection, answers: Connection) -> None:
    """The worker's loop: build the engine named by the first message, then answer each
    request until the parent closes the pipe."""
    kind, args, log_level = requests.recv()
    LOG.set_level(log_level)
    engine = _engine_factories()[kind](*args)
    while True:
        try:
            operation, args = requests.recv()
        except (EOFError, OSError):
            return
        answer = _answer(engine, kind, operation, args)
        try:
            answers.send(answer)  # pickled whole before a byte is written
        except Exception as e:
            LOG.error(f"{kind} worker: the answer to {operation} cannot be sent: {e!r}")
            answers.send(("error", 503, f"the {kind.upper()} engine gave an answer that cannot be sent"))


def _answer(engine, kind: str, operation: str, args: tuple) -> Tuple:
    if operation not in OPERATIONS[kind]:
        return ("error", 400, f"unknown operation {operation!r}")
    started = time.monotonic()
    try:
        value = getattr(engine, operation)(*args)
        if operation == "load":
            value = None  # the engine object itself stays here
    except BackendError as e:
        return ("error", e.status, e.message)
    except Exception as e:  # a plugin's own failure: the worker stays up for the next request
        LOG.exception(f"{kind} worker: {operation} failed")
        return ("error", 503, f"the {kind.upper()} engine failed: {type(e).__name__}: {e}")
    LOG.debug(f"{kind} worker: {operation} took {time.monotonic() - started:.3f} s")
    return ("ok", value)


def main() -> None:
    # a transcription takes seconds of every core; a device poll, a millisecond: the
    # worker yields the CPU to the serving process (on 2 cores, polls' p99 otherwise
    # doubled during speech), and has it all when nothing else runs
    os.nice(NICENESS)
    requests = Connection(os.dup(0), writable=False)
    answers = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # from now on, what plugins print goes to stderr, never into the answers
    serve(requests, answers)


if __name__ == "__main__":
    main()
