"""Wolfram|Alpha for devices (api-contract §6.3), with the owner's key and a cache.

Four doors, two upstream APIs:

* `spoken` and `simple` (v1 APIs: a sentence as text, an image) take `i`;
* `full` (v2 query, JSON) and `xml` (the same as XML, old mycroft's `/wa`) take `input`.

Devices may use either name. Answers pass through as the bytes and content type
Wolfram sent, except that `full` is always JSON and `xml` always XML.
"""
import re
from typing import Dict, NamedTuple

from ..errors import BadRequest
from ..quotas import HourlyBudget
from .fetch import SharedSession, Upstream, choose, first

QUERY_LIMIT = 1000
VALUE_LIMIT = 256
# v1 answers "no spoken result available" / "did not understand your input" with a 501:
# that is an answer (skills look for those sentences), not a failure
NO_ANSWER = 501
# parameters a device may pass on (anything else, e.g. another appid, is dropped)
OPTIONAL = ("geolocation", "latlong", "location", "timeout", "format", "mode", "assumption",
            "podstate", "includepodid", "excludepodid", "podtitle", "scanner", "width",
            "maxwidth", "mag", "reinterpret", "translation", "layout", "background",
            "foreground", "fontsize")
COORDINATES = re.compile(r"^-?\d{1,3}(\.\d+)?,-?\d{1,3}(\.\d+)?\Z")  # \Z: "$" lets a final newline in


class Api(NamedTuple):
    path: str
    query_name: str
    non_metric: str  # what this API calls the non-metric unit system
    output: str  # forced `output` parameter ("" = leave alone)
    content_type: str  # forced content type of the answer ("" = Wolfram's)


APIS = {
    "spoken": Api("v1/spoken", "i", "imperial", "", ""),
    "simple": Api("v1/simple", "i", "imperial", "", ""),
    "full": Api("v2/query", "input", "nonmetric", "json", "application/json"),
    "xml": Api("v2/query", "input", "nonmetric", "xml", "text/xml; charset=utf-8"),
}


class Answer(NamedTuple):
    body: bytes
    status: int
    content_type: str


class Wolfram:
    """Ask Wolfram|Alpha on behalf of a device."""

    def __init__(self, config: dict, session: SharedSession, misses: HourlyBudget):
        self.config = config
        self.misses = misses  # each device's questions that the cache cannot answer
        self.upstream = Upstream("Wolfram|Alpha", session, config, "wolfram_url", "wolfram_key",
                                 "an AppID from developer.wolframalpha.com")

    def ask(self, kind: str, params, device: dict) -> Answer:
        self.upstream.require_key()  # an unconfigured service says so before judging the query
        api = APIS[kind]
        ttl = self.config["microservices"]["cache_seconds"]["wolfram"]
        passthrough = (NO_ANSWER,) if api.path.startswith("v1/") else ()
        response = self.upstream.get(api.path, query(api, params, device), ttl, passthrough,
                                     on_miss=lambda: self.misses.charge(device["uuid"]))
        content_type = api.content_type or response.headers.get("Content-Type", "text/plain")
        return Answer(response.content, response.status_code, content_type)


def query(api: Api, params, device: dict) -> Dict[str, str]:
    """The upstream query: the question, units, location, and the optional parameters."""
    question = first(params, "input", "i")
    if not question or not question.strip():
        raise BadRequest("the question is missing: pass it as `input` (or `i`)")
    if len(question) > QUERY_LIMIT:
        raise BadRequest(f"the question is longer than {QUERY_LIMIT} characters")
    optional = choose(params, OPTIONAL)
    for name, value in optional.items():
        if len(value) > VALUE_LIMIT:
            raise BadRequest(f"{name} is longer than {VALUE_LIMIT} characters")
    # ovos-backend-client sends "None,None" when the device has no location configured
    if not COORDINATES.match(optional.get("geolocation", "")):
        optional.pop("geolocation", None)
        if not ({"latlong", "location"} & set(optional)):
            coordinate = device["location"]["coordinate"]
            optional["geolocation"] = f"{coordinate['latitude']},{coordinate['longitude']}"
    # "Metric" is metric too: a case-sensitive compare gave such devices imperial answers
    units = (params.get("units") or "").strip().lower() or device["system_unit"]
    built = {api.query_name: question.strip(), **optional,
             "units": "metric" if units == "metric" else api.non_metric}
    if api.output:
        built["output"] = api.output
    return built
