"""Geocoding: a place name ("Lisbon", "Portland, Oregon") -> a location object.

The offline gazetteer (`places`) answers first. Names it does not know go to a
Nominatim server only when the owner allows it (config `geolocation.online_fallback`,
off by default, and `geolocation.nominatim_url`): a private backend does not send
what its users ask about to a third party unless told to.

Nominatim's usage policy asks for an identifying User-Agent and for repeated queries
to be cached; its answers (misses included) are kept in memory per URL and query.
"""
import copy
import functools
from typing import Optional

from ovos_utils.log import LOG

from .. import devices
from ..errors import BadRequest, NotFound, UpstreamError
from . import places

USER_AGENT = "ovos-personal-backend (self-hosted OpenVoiceOS backend)"
TIMEOUT = (3.05, 10)


def locate(config: dict, query: str) -> dict:
    """The best location for `query` with its time zone and offsets.

    NotFound when nothing matches; UpstreamError when only the online geocoder could
    have answered and it failed.
    """
    found = places.search(query, limit=1)
    if found:
        return found[0]
    settings = config["geolocation"]
    if settings["online_fallback"]:
        online = search(settings["nominatim_url"], query)
        if online is not None:
            return online
    raise NotFound(f"no place found for {query[:100]!r}")


def search(url: str, query: str) -> Optional[dict]:
    """The best location for `query` (mycroft.conf shape plus "address"), or None.

    UpstreamError when the server cannot be reached or answers nonsense.
    """
    found = _search(url, query)
    return copy.deepcopy(found) if found is not None else None


@functools.lru_cache(maxsize=512)
def _search(url: str, query: str) -> Optional[dict]:
    import requests  # on first use: most backends never look a place up online

    try:
        response = requests.get(url, timeout=TIMEOUT, headers={"User-Agent": USER_AGENT},
                                params={"q": query, "format": "jsonv2", "limit": 1,
                                        "addressdetails": 1, "extratags": 1})
        response.raise_for_status()
        results = response.json()
    except (requests.RequestException, ValueError) as e:
        LOG.warning(f"online place lookup failed: {type(e).__name__}")
        raise UpstreamError(f"the online geocoder could not be used: {type(e).__name__}") from e
    if not isinstance(results, list):
        raise UpstreamError("the online geocoder sent an unexpected answer")
    if not results:
        return None
    try:
        return to_location(results[0])
    except (KeyError, TypeError, ValueError) as e:
        raise UpstreamError(f"the online geocoder sent an unexpected place: {e}") from e


def to_location(place: dict) -> dict:
    """A Nominatim jsonv2 result (with addressdetails and extratags) -> location dict."""
    address = place.get("address") or {}
    city = next((address[k] for k in ("city", "town", "village", "municipality", "hamlet",
                                      "county") if address.get(k)), place.get("name", ""))
    country_code = str(address.get("country_code", "")).upper()
    region = address.get("ISO3166-2-lvl4") or address.get("ISO3166-2-lvl6") or ""
    location = {
        "address": place.get("display_name", ""),
        "city": {"code": city, "name": city,
                 "state": {"code": region.split("-", 1)[-1], "name": address.get("state", ""),
                           "country": {"code": country_code,
                                       "name": address.get("country", "")}}},
        "coordinate": {"latitude": float(place["lat"]), "longitude": float(place["lon"])},
    }
    code = (place.get("extratags") or {}).get("timezone") or _gazetteer_timezone(city, country_code)
    location["timezone"] = {"code": code, "name": code}
    try:  # validates the time zone and fills its offsets
        return {"address": location["address"], **devices.normalise_location(location)}
    except BadRequest as e:
        raise ValueError(e.message) from e


def _gazetteer_timezone(city: str, country_code: str) -> str:
    """Nominatim rarely tags a time zone: borrow the one of the same-named city in the
    same country from the offline gazetteer, else UTC (a valid zone, if a poor one)."""
    for candidate in places.search(f"{city}, {country_code}", limit=1) if city else []:
        if candidate["city"]["state"]["country"]["code"] == country_code:
            return candidate["timezone"]["code"]
    LOG.warning(f"no time zone known for {city!r} ({country_code}); using UTC")
    return "UTC"
