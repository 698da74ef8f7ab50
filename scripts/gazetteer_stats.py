#!/usr/bin/env python3
"""Print the gazetteer's size, load time and lookup latency (kept out of the test suite,
where timings would be flaky). Usage: python scripts/gazetteer_stats.py [queries]"""
import importlib.util
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location(
    "places", os.path.join(ROOT, "backend", "services", "places.py"))
places = importlib.util.module_from_spec(spec)
spec.loader.exec_module(places)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    print(f"data file: {os.path.relpath(places.DATA_FILE, ROOT)}, "
          f"{os.path.getsize(places.DATA_FILE) / 1e6:.2f} MB")
    start = time.perf_counter()
    gaz = places.load()
    print(f"load: {(time.perf_counter() - start) * 1000:.0f} ms, {len(gaz.cities)} cities, "
          f"{len(gaz.names)} name keys")

    # Real names spread over the whole file, alone and qualified, plus misses.
    step = max(1, len(gaz.cities) // count)
    queries = []
    for n, row in enumerate(gaz.cities[::step][:count]):
        name, _, _, country, *_ = row.split("\t")
        queries.append([name, f"{name}, {gaz.countries.get(country, country)}",
                        f"{name} {country}", name.upper() + " nowhere land"][n % 4])
    queries += ["Paris", "San Jose", "Springfield", "Portland Oregon USA", "", "x" * 10000,
                "the quick brown fox jumps over the lazy dog again and again"]
    timings = []
    for query in queries:
        start = time.perf_counter()
        places.search(query)
        timings.append((time.perf_counter() - start) * 1000)
    print(f"lookups: {len(timings)}, median {statistics.median(timings):.3f} ms, "
          f"max {max(timings):.3f} ms")


if __name__ == "__main__":
    main()
