"""Loading an OPM speech plugin by its entry point name, with errors a device can read.

STT and TTS engines are looked up and built the same way; whatever goes wrong (not
installed, its import fails, its constructor fails) becomes a ServiceUnavailable (503)
that names the plugin and says what to do, with the traceback in the log.
"""
import importlib

from ovos_utils.log import LOG

from ..errors import ServiceUnavailable


def build(kind: str, module: str, plugin_config: dict):
    """An instance of the OPM `kind` ("stt" or "tts") plugin `module`, built with
    `plugin_config`."""
    name = kind.upper()
    try:
        loader = getattr(importlib.import_module(f"ovos_plugin_manager.{kind}"), f"load_{kind}_plugin")
        plugin_class = loader(module)
    except Exception as e:
        LOG.exception(f"looking up {name} plugin '{module}' failed")
        raise ServiceUnavailable(f"{name} plugin '{module}' could not be looked up: {e}") from e
    if plugin_class is None:
        LOG.error(f"{name} plugin '{module}' is not installed")
        raise ServiceUnavailable(f"{name} plugin '{module}' is not installed "
                                 f"(pip install {module}, or configure {kind}.module)")
    try:
        return plugin_class(plugin_config)
    except Exception as e:
        LOG.exception(f"{name} plugin '{module}' failed to load")
        raise ServiceUnavailable(f"{name} plugin '{module}' failed to load: {e}") from e
