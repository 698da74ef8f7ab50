"""Offline place lookup: free text ("Portland, Oregon") -> mycroft.conf location dicts.

Devices ask to "change my location to Lisbon"; the backend must answer without any
online geocoder, so it resolves names against a gazetteer shipped with the package
(``backend/data/gazetteer.tsv.gz``, built by ``scripts/build_gazetteer.py`` from
GeoNames data, CC-BY 4.0, https://www.geonames.org/).

Matching is exact on normalised names (case, accents and punctuation ignored), never
substring, so "New York" cannot drift to an unrelated city that merely contains
"york". Trailing words or comma-separated parts may qualify the city by state or
country ("Paris, Texas", "London Canada", "Portland OR"). Candidates are ranked by
population, so a bare "Paris" means the French capital.

Standard library only; the file is read lazily, once per process, under a lock.
"""
import gzip
import os
import threading
import unicodedata
from datetime import datetime
from functools import lru_cache
from typing import Dict, List, NamedTuple, Optional, Tuple

DATA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "data",
                         "gazetteer.tsv.gz")

# A city found only through one of its alternate names (some are transliterations
# or old names that collide with other places) must be this many times bigger to
# outrank a city whose own name matched: "Victoria" stays in Canada, not Hong Kong.
ALT_NAME_WEIGHT = 0.02
MAX_QUERY_CHARS = 200  # nobody's place name is longer; bounds the work per query
MAX_TOKENS = 12

# Letters NFKD does not decompose into "base + accent".
_FOLD = str.maketrans({"ø": "o", "đ": "d", "ð": "d", "ł": "l", "ħ": "h", "ı": "i",
                       "æ": "ae", "œ": "oe", "þ": "th", "ß": "ss"})
_APOSTROPHES = frozenset("'`´‘’ʻʼ")
# Spoken and written abbreviations, so "St. Louis" == "Saint Louis".
_ABBREVIATIONS = {"st": "saint", "ste": "sainte", "mt": "mount", "ft": "fort"}


class City(NamedTuple):
    name: str
    latitude: float
    longitude: float
    country: str  # ISO 3166-1 alpha-2
    admin1: str   # GeoNames admin1 code (US: postal state code)
    population: int
    timezone: str


class Gazetteer(NamedTuple):
    cities: List[City]
    names: Dict[str, List[int]]  # key -> city ids; id * 2 + 1 marks an alternate name
    countries: Dict[str, str]  # ISO code -> display name
    country_keys: Dict[str, str]  # normalised name / ISO2 / ISO3 / alias -> ISO code
    admin1: Dict[Tuple[str, str], str]  # (country, code) -> display name
    admin1_keys: Dict[str, List[Tuple[str, str]]]  # normalised name / code -> regions


_lock = threading.Lock()
_gazetteer: Optional[Gazetteer] = None


def normalize(text: str) -> str:
    """Fold text to a matching key: "São Paulo" / "sao-paulo" / "SAO PAULO" -> "sao paulo".

    The build script stores keys made by this very function, so both sides agree.
    """
    text = unicodedata.normalize("NFKD", text.casefold()).translate(_FOLD)
    chars = []
    for ch in text:
        if ch in _APOSTROPHES or unicodedata.combining(ch):
            continue  # "Xi'an" -> "xian", "é" -> "e"
        # Keep spacing marks too: an Indic vowel sign is part of its word.
        chars.append(ch if ch.isalnum() or unicodedata.category(ch)[0] == "M" else " ")
    tokens: List[str] = []
    previous_single = False
    for token in "".join(chars).split():
        single = len(token) == 1
        if single and previous_single:
            tokens[-1] += token  # spelled-out letters: "D.C." -> "dc", "U.S.A." -> "usa"
        else:
            tokens.append(token)
        previous_single = single
    return " ".join(_ABBREVIATIONS.get(t, t) for t in tokens)


def load(path: str = DATA_FILE) -> Gazetteer:
    """Parse the gazetteer once per process (thread-safe) and return the in-memory index."""
    global _gazetteer
    if _gazetteer is None:
        with _lock:
            if _gazetteer is None:
                _gazetteer = _parse(path)
    return _gazetteer


def _parse(path: str) -> Gazetteer:
    cities: List[City] = []
    names: Dict[str, List[int]] = {}
    countries: Dict[str, str] = {}
    country_keys: Dict[str, str] = {}
    admin1: Dict[Tuple[str, str], str] = {}
    admin1_keys: Dict[str, List[Tuple[str, str]]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            kind, _, rest = line.rstrip("\n").partition("\t")
            if kind == "C":  # name lat lon country admin1 population timezone keys
                name, lat, lon, cc, a1, pop, tz, keys = rest.split("\t")
                ident = len(cities) * 2
                cities.append(City(name, float(lat), float(lon), cc, a1, int(pop), tz))
                for n, key in enumerate(keys.split("|")):
                    names.setdefault(key, []).append(ident + (n > 0))
            elif kind == "A":  # country code name keys
                cc, code, name, keys = rest.split("\t")
                admin1[(cc, code)] = name
                for key in keys.split("|"):
                    admin1_keys.setdefault(key, []).append((cc, code))
            elif kind == "K":  # code name keys
                cc, name, keys = rest.split("\t")
                countries[cc] = name
                for key in keys.split("|"):
                    country_keys.setdefault(key, cc)
    return Gazetteer(cities, names, countries, country_keys, admin1, admin1_keys)


def search(query: str, limit: int = 5) -> List[dict]:
    """Candidate locations for free text, best first; [] when nothing matches."""
    if not isinstance(query, str) or not isinstance(limit, int) or limit <= 0:
        return []
    parts = [normalize(p) for p in query[:MAX_QUERY_CHARS].replace(";", ",").split(",")]
    parts = [p for p in parts if p]
    if not parts:
        return []
    gaz = load()
    scores: Dict[int, float] = {}
    for city_key, qualifiers in _readings(parts[0].split()[:MAX_TOKENS], parts[1:]):
        for entry in gaz.names.get(city_key, ()):
            ident, alternate = divmod(entry, 2)
            city = gaz.cities[ident]
            if all(_qualifies(gaz, city, q) for q in qualifiers):
                score = (city.population + 1) * (ALT_NAME_WEIGHT if alternate else 1.0)
                scores[ident] = max(score, scores.get(ident, 0.0))
    best = sorted(scores, key=lambda i: (-scores[i], gaz.cities[i].name))[:limit]
    return [_location(gaz, gaz.cities[i]) for i in best]


def _readings(tokens: List[str], qualifiers: List[str]):
    """Ways to read "portland oregon usa": the whole text as a city, or a city
    followed by one or two qualifier phrases (state and/or country)."""
    yield " ".join(tokens), qualifiers
    for i in range(len(tokens) - 1, 0, -1):
        city, rest = " ".join(tokens[:i]), tokens[i:]
        yield city, [" ".join(rest)] + qualifiers
        for j in range(1, len(rest)):
            yield city, [" ".join(rest[:j]), " ".join(rest[j:])] + qualifiers


def _qualifies(gaz: Gazetteer, city: City, qualifier: str) -> bool:
    """True if the qualifier names the city's country or first-level region."""
    return gaz.country_keys.get(qualifier) == city.country or \
        (city.country, city.admin1) in gaz.admin1_keys.get(qualifier, ())


def _location(gaz: Gazetteer, city: City) -> dict:
    """A fresh dict in the shape devices keep under "location" in mycroft.conf."""
    state = gaz.admin1.get((city.country, city.admin1), "")
    country = gaz.countries.get(city.country, city.country)
    offset, dst = _offsets(city.timezone)
    return {
        "address": ", ".join(p for p in (city.name, state, country) if p),
        "city": {"code": city.name, "name": city.name,
                 "state": {"code": city.admin1, "name": state,
                           "country": {"code": city.country, "name": country}}},
        "coordinate": {"latitude": city.latitude, "longitude": city.longitude},
        "timezone": {"code": city.timezone, "name": city.timezone,
                     "offset": offset, "dstOffset": dst},
    }


@lru_cache(maxsize=None)
def _offsets(tz_name: str) -> Tuple[int, int]:
    """(standard UTC offset, extra DST shift) in ms, from this year's Jan 1 and Jul 1:
    whichever is smaller is standard time, on either hemisphere."""
    try:
        from zoneinfo import ZoneInfo
        zone = ZoneInfo(tz_name)
        year = datetime.now().year
        jan, jul = (datetime(year, month, 1, tzinfo=zone).utcoffset() for month in (1, 7))
    except Exception:  # no tz database on this system: better a location than none
        return 0, 0
    low, high = sorted((jan, jul))
    return int(low.total_seconds() * 1000), int((high - low).total_seconds() * 1000)
