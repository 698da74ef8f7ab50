"""OpenWeatherMap for devices (api-contract §6.4), with the owner's key and a cache.

Devices send `lat`, `lon`, `units` and `lang`; whatever they leave out comes from the
device's own record (its location, system unit and language), so old devices that
send nothing still get their local weather.
"""
import re
from typing import Any, Dict

from ..errors import BadRequest, NotFound, UpstreamError
from ..quotas import HourlyBudget
from .fetch import SharedSession, Upstream, choose

# device path -> cache setting (microservices.cache_seconds) of that endpoint
ENDPOINTS = {"onecall": "onecall", "weather": "weather", "forecast": "forecast",
             "forecast/daily": "forecast_daily"}
UNITS = ("metric", "imperial", "standard")
# https://openweathermap.org/current#multi
LANGUAGES = ("af", "al", "ar", "az", "bg", "ca", "cz", "da", "de", "el", "en", "es", "eu", "fa",
             "fi", "fr", "gl", "he", "hi", "hr", "hu", "id", "it", "ja", "kr", "la", "lt", "mk",
             "nl", "no", "pl", "pt", "pt_br", "ro", "ru", "se", "sk", "sl", "sp", "sr", "sv",
             "th", "tr", "ua", "uk", "vi", "zh_cn", "zh_tw", "zu")
# ISO codes OWM spells its own way
LANGUAGE_ALIASES = {"cs": "cz", "ko": "kr", "lv": "la", "sq": "al"}
EXTRA = re.compile(r"^[A-Za-z0-9,]{1,64}$")  # `exclude=minutely,alerts`, `cnt=7`
# ~11 m: devices in one house share cached answers, nobody notices the difference
COORDINATE_DECIMALS = 4


class Weather:
    """The four OWM endpoints devices use; only `onecall` is camelCased (as legacy skills expect)."""

    def __init__(self, config: dict, session: SharedSession, misses: HourlyBudget):
        self.config = config
        self.misses = misses  # each device's calls that the cache cannot answer
        self.upstream = Upstream("OpenWeatherMap", session, config, "owm_url", "owm_key",
                                 "a key from openweathermap.org")

    def get(self, endpoint: str, params, device: dict) -> Any:
        """The upstream answer for `endpoint`, filled from the device where the query is silent."""
        if endpoint not in ENDPOINTS:
            raise NotFound(f"unknown weather endpoint: {endpoint[:64]} "
                           f"(known: {', '.join(ENDPOINTS)})")
        self.upstream.require_key()  # an unconfigured service says so before judging the query
        ttl = self.config["microservices"]["cache_seconds"][ENDPOINTS[endpoint]]
        response = self.upstream.get(endpoint, query(params, device), ttl,
                                     on_miss=lambda: self.misses.charge(device["uuid"]))
        try:
            data = response.json()
        except ValueError as e:
            raise UpstreamError("OpenWeatherMap answered with something that is not JSON") from e
        return camel_case(data) if endpoint == "onecall" else data


def query(params, device: dict) -> Dict[str, str]:
    """The upstream query: coordinates, units and language, checked, with device defaults."""
    coordinate = device["location"]["coordinate"]
    lat = _coordinate(params.get("lat"), coordinate["latitude"], "lat", 90)
    lon = _coordinate(params.get("lon"), coordinate["longitude"], "lon", 180)
    units = params.get("units") or device["system_unit"]
    if units not in UNITS:
        raise BadRequest(f"units must be one of {list(UNITS)}")
    extra = choose(params, ("exclude", "cnt"))
    for name, value in extra.items():
        if not EXTRA.match(value):
            raise BadRequest(f"{name} must be letters, digits and commas")
    return {"lat": lat, "lon": lon, "units": units,
            "lang": owm_language(params.get("lang") or device["lang"]), **extra}


def _coordinate(value, default: float, name: str, limit: float) -> str:
    try:
        number = float(value if value not in (None, "") else default)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be a number") from None
    if not -limit <= number <= limit:
        raise BadRequest(f"{name} must be between -{limit} and {limit}")
    return str(round(number, COORDINATE_DECIMALS))


def owm_language(lang: str) -> str:
    """A language tag (`pt-br`, `en-us`, `pt_br`, `cs`) as OWM names it; English if unknown.

    Devices running ovos-backend-client already convert; old devices and the device
    record send plain BCP-47 tags, which OWM would ignore (the old backend forwarded
    `en-us` as is)."""
    tag = str(lang).strip().lower().replace("-", "_")
    primary = tag.split("_")[0]
    for candidate in (tag, LANGUAGE_ALIASES.get(primary), primary):
        if candidate in LANGUAGES:
            return candidate
    return "en"


def camel_case(data: Any) -> Any:
    """`feels_like` -> `feelsLike`, recursively, dicts inside lists included (Selene's shape)."""
    if isinstance(data, dict):
        return {_camel(key): camel_case(value) for key, value in data.items()}
    if isinstance(data, list):
        return [camel_case(item) for item in data]
    return data


def _camel(key: str) -> str:
    first, *rest = str(key).split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)
