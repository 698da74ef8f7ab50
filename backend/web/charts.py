"""Activity over time as bar-chart geometry, drawn by the template as inline SVG
(no script, no library: works with the strict Content-Security-Policy)."""
import math
from datetime import datetime
from typing import List, Optional

WIDTH, HEIGHT = 600, 180      # SVG user units
TOP, BOTTOM = 10, 30          # room above the bars and for the labels below
LEFT, RIGHT = 34, 16          # room for the count labels, and for the last date label
MAX_BARS = 60
HOUR, DAY, WEEK = 3600, 86400, 7 * 86400


def _bucket_size(span: float) -> int:
    for size in (HOUR, DAY, WEEK):
        if span / size <= MAX_BARS:
            return size
    return WEEK * math.ceil(span / WEEK / MAX_BARS)


def _label(start: float, size: int) -> str:
    moment = datetime.fromtimestamp(start)
    return moment.strftime("%H:00" if size < DAY else "%d %b")


def activity(timestamps: List[float], since: Optional[float] = None,
             until: Optional[float] = None) -> Optional[dict]:
    """Counts per hour, day or week (whichever gives at most MAX_BARS bars) between
    `since` and `until` (default: the first and last timestamp); None without data."""
    if not timestamps:
        return None
    first = since if since is not None else min(timestamps)
    last = until if until is not None else max(timestamps)
    size = _bucket_size(max(last - first, 1))
    start = first - first % HOUR if size == HOUR else \
        datetime.fromtimestamp(first).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    count = max(1, math.ceil((last - start + 1) / size))
    counts = [0] * count
    for ts in timestamps:
        index = int((ts - start) // size)
        if 0 <= index < count:
            counts[index] += 1
    peak = max(counts) or 1
    slot = (WIDTH - LEFT - RIGHT) / count
    usable = HEIGHT - TOP - BOTTOM
    bars = []
    for index, value in enumerate(counts):
        height = usable * value / peak
        bars.append({"x": round(LEFT + index * slot + slot * 0.1, 2), "w": round(slot * 0.8, 2),
                     "y": round(TOP + usable - height, 2), "h": round(height, 2),
                     "count": value, "label": _label(start + index * size, size)})
    every = max(1, count // 6)
    ticks = [{"x": round(b["x"] + b["w"] / 2, 2), "label": b["label"]} for b in bars[::every]]
    unit = {HOUR: "hour", DAY: "day", WEEK: "week"}.get(size, f"{size // WEEK} weeks")
    return {"bars": bars, "ticks": ticks, "peak": peak, "unit": unit, "total": sum(counts),
            "width": WIDTH, "height": HEIGHT, "left": LEFT, "top": TOP,
            "baseline": HEIGHT - BOTTOM, "label_y": HEIGHT - 10}
