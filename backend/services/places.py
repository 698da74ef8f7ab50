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

Standard library only; the file is read lazily, once per process, under a lock, into
flat arrays and blobs (`Rows`, `Names`) rather than Python objects: the skill shares
its process with every other skill on a small device, and the lookup must not grow it
by more than ~15 MB (bench/footprint.py).
"""
import gzip
import os
import threading
import unicodedata
import zlib
from array import array
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Dict, List, NamedTuple, Optional, Tuple, Union
from zoneinfo import ZoneInfo

DATA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "data",
                         "gazetteer.tsv.gz")

# A city found only through one of its alternate names (some are transliterations
# or old names that collide with other places) must be this many times bigger to
# outrank a city whose own name matched: "Sakata" stays in Japan instead of meaning
# Jakarta, while "Lisboa", "Bombay" or "Mexico" still find Lisbon, Mumbai, Mexico City.
ALT_NAME_WEIGHT = 0.01
# the shipped file has ~273,000 name keys: its table is made that big at once (a bigger
# file only costs growing it on the way)
EXPECTED_KEYS = 300_000
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


class Rows(Sequence):
    """The cities' rows ("name\tlat\tlon\tcountry\tadmin1\tpopulation\ttimezone"), kept
    in one UTF-8 blob: a row becomes a string only when read (69,000 strings cost ~9 MB
    more than their bytes). The time zone, the same few hundred names over and over, is
    kept apart as a number (0.8 MB less)."""

    def __init__(self):
        self._blob = bytearray()
        self._starts = array("I", [0])
        self._zone_of = array("H")
        self._zones: List[str] = []
        self._zone_numbers: Dict[str, int] = {}

    def append(self, row: str) -> None:
        head, _, zone = row.rpartition("\t")
        self._blob += head.encode("utf-8")
        self._starts.append(len(self._blob))
        number = self._zone_numbers.get(zone)
        if number is None:
            number = self._zone_numbers[zone] = len(self._zones)
            self._zones.append(zone)
        self._zone_of.append(number)

    def __len__(self) -> int:
        return len(self._starts) - 1

    def freeze(self) -> None:
        """Done appending: drop the room kept for growth."""
        self._blob, self._starts = bytes(self._blob), array("I", self._starts)
        self._zone_of, self._zone_numbers = array("H", self._zone_of), {}

    def __getitem__(self, index: int) -> str:
        if not 0 <= index < len(self):
            raise IndexError(index)
        head = self._blob[self._starts[index]:self._starts[index + 1]].decode("utf-8")
        return f"{head}\t{self._zones[self._zone_of[index]]}"


class Names:
    """Name key -> city entries (city id * 2, + 1 for a match on an alternate name), in
    flat arrays: an open-addressing hash table of the keys (kept in one blob), each with
    its one entry or, for the few keys several cities share (4 %), a chain of entries.
    A dict of 270,000 keys with their ints and lists held ~35 MB as Python objects; this
    holds the same in ~8 MB, and builds without sorting."""

    def __init__(self, expected_keys: int = 1024):
        self._keys = bytearray()
        self._key_starts = array("I", [0])
        # per key: its entry (>= 0), or -1 - the position of its latest entry in the chains
        self._values = array("i")
        self._entries = array("I")
        self._previous = array("i")  # per chained entry: the key's entry before it, or -1
        # key number, or -1; a power of two long, at most 70% full
        self._slots = array("i", [-1]) * (1 << (10 * expected_keys // 7).bit_length())

    def _slot(self, key: bytes) -> int:
        """Where `key` is in the table, or the empty slot where it would go."""
        mask = len(self._slots) - 1
        slot = zlib.crc32(key) & mask
        while True:
            number = self._slots[slot]
            if number < 0 or self._keys[self._key_starts[number]:self._key_starts[number + 1]] == key:
                return slot
            slot = (slot + 1) & mask

    def add(self, key: str, entry: int) -> None:
        encoded = key.encode("utf-8")
        slot = self._slot(encoded)
        number = self._slots[slot]
        if number < 0:
            self._slots[slot] = len(self._values)
            self._keys += encoded
            self._key_starts.append(len(self._keys))
            self._values.append(entry)
            if 10 * len(self._values) > 7 * len(self._slots):  # at most 70% full
                self._grow()
            return
        value = self._values[number]
        # a second entry: the first one starts the key's chain
        latest = -1 - value if value < 0 else self._chain(value, -1)
        self._values[number] = -1 - self._chain(entry, latest)

    def _chain(self, entry: int, previous: int) -> int:
        """Append `entry` after chain position `previous` (-1: none); its position."""
        self._entries.append(entry)
        self._previous.append(previous)
        return len(self._entries) - 1

    def freeze(self) -> None:
        """Done adding: drop the room kept for growth."""
        self._keys = bytes(self._keys)
        for name in ("_key_starts", "_values", "_entries", "_previous"):
            setattr(self, name, array(getattr(self, name).typecode, getattr(self, name)))

    def _grow(self) -> None:
        self._slots = array("i", [-1]) * (2 * len(self._slots))
        for number in range(len(self._values)):
            key = self._keys[self._key_starts[number]:self._key_starts[number + 1]]
            self._slots[self._slot(bytes(key))] = number

    def get(self, key: str, default=()) -> Union[int, List[int]]:
        """The entry of `key`, or the list of them when several cities have it."""
        number = self._slots[self._slot(key.encode("utf-8", "surrogatepass"))]
        if number < 0:
            return default
        value = self._values[number]
        if value >= 0:
            return value
        found, position = [], -1 - value
        while position >= 0:
            found.append(self._entries[position])
            position = self._previous[position]
        return found[::-1]


class Gazetteer(NamedTuple):
    cities: Rows
    names: Names
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
    """Parse the gazetteer once per process (thread-safe) and return the in-memory index.

    search() calls this itself; call it early (e.g. at startup) to keep the ~0.3 s parse
    off the first request. `path` only matters on the first call."""
    global _gazetteer
    if _gazetteer is None:
        with _lock:
            if _gazetteer is None:
                _gazetteer = _parse(path)
    return _gazetteer


def _parse(path: str) -> Gazetteer:
    """Read the build script's rows (format in the file's header) into lookup dicts."""
    cities, names = Rows(), Names(EXPECTED_KEYS)
    countries: Dict[str, str] = {}
    country_keys: Dict[str, str] = {}
    admin1: Dict[Tuple[str, str], str] = {}
    admin1_keys: Dict[str, List[Tuple[str, str]]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            kind, _, rest = line.rstrip("\n").partition("\t")
            if kind == "C":  # name lat lon country admin1 population timezone keys
                city, _, keys = rest.rpartition("\t")
                ident = len(cities) * 2
                cities.append(city)
                for n, key in enumerate(keys.split("|")):
                    names.add(key, ident + (n > 0))
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
    cities.freeze()
    names.freeze()
    return Gazetteer(cities, names, countries, country_keys, admin1, admin1_keys)


def search(query: str, limit: int = 5) -> List[dict]:
    """Candidate locations for free text, best first; [] when nothing matches."""
    if not isinstance(query, str) or not isinstance(limit, int) or limit <= 0:
        return []
    text = query.strip()[:MAX_QUERY_CHARS].replace(";", ",")
    parts = [p for p in map(normalize, text.split(",")) if p]
    if not parts:
        return []
    gaz = load()
    # A comma part naming no known country or region ("Zürich, Schweiz": only English
    # country names are known) is noise to skip, not a filter that rejects everything.
    qualifiers = [p for p in parts[1:] if _mentions_place(gaz, p)]
    tokens = parts[0].split()[:MAX_TOKENS]
    scores: Dict[int, float] = {}
    found: Dict[int, City] = {}
    # Read "portland oregon usa" as the city "portland oregon usa", or as the city
    # "portland oregon" in "usa", or as the city "portland" in "oregon usa".
    for cut in range(len(tokens), 0, -1):
        extra = [" ".join(tokens[cut:])] if cut < len(tokens) else []
        hits = gaz.names.get(" ".join(tokens[:cut]), ())
        for entry in (hits,) if isinstance(hits, int) else hits:
            ident, alternate = divmod(entry, 2)
            city = found.get(ident) or _city(gaz.cities[ident])
            if all(_qualifies(gaz, city, q) for q in extra + qualifiers):
                found[ident] = city
                score = (city.population + 1) * (ALT_NAME_WEIGHT if alternate else 1.0)
                scores[ident] = max(score, scores.get(ident, 0.0))
    best = sorted(scores, key=lambda i: (-scores[i], found[i].name))[:limit]
    return [_location(gaz, found[i]) for i in best]


def _city(row: str) -> City:
    name, lat, lon, cc, admin1, population, tz = row.split("\t")
    return City(name, float(lat), float(lon), cc, admin1, int(population), tz)


def _qualifies(gaz: Gazetteer, city: City, phrase: str, parts: int = 2) -> bool:
    """True if the phrase names the city's country or region, or (up to `parts`
    pieces) both: "oregon", "usa", "oregon usa"."""
    if gaz.country_keys.get(phrase) == city.country or \
            (city.country, city.admin1) in gaz.admin1_keys.get(phrase, ()):
        return True
    tokens = phrase.split()
    return parts > 1 and any(
        _qualifies(gaz, city, " ".join(tokens[:i]), 1) and
        _qualifies(gaz, city, " ".join(tokens[i:]), parts - 1) for i in range(1, len(tokens)))


def _mentions_place(gaz: Gazetteer, phrase: str) -> bool:
    """True if some run of words in the phrase is a known country or region name."""
    tokens = phrase.split()[:MAX_TOKENS]
    runs = (" ".join(tokens[i:j]) for i in range(len(tokens))
            for j in range(i + 1, len(tokens) + 1))
    return any(run in gaz.country_keys or run in gaz.admin1_keys for run in runs)


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
        zone = ZoneInfo(tz_name)
        year = datetime.now().year
        jan, jul = (datetime(year, month, 1, tzinfo=zone).utcoffset() for month in (1, 7))
    except Exception:  # no tz database on this system: better a location than none
        return 0, 0
    low, high = sorted((jan, jul))
    return int(low.total_seconds() * 1000), int((high - low).total_seconds() * 1000)
