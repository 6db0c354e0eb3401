"""Prints a Stockyard value from Redis, read as JSON on stdin: a KPI key
(its window and first rows) or a stream's sink key (its newest window).

Usage: redis-cli GET KEY | show-key.py KEY ROWS
"""

import json
import sys


def main() -> None:
    key, limit = sys.argv[1], int(sys.argv[2])
    text = sys.stdin.read().strip()
    if not text:
        print(f"{key}: not in Redis yet")
        return
    value = json.loads(text)
    if "windows" in value:
        windows = value["windows"]
        if not windows:
            print(f"{key}: no window yet (watermark {value.get('watermark')})")
            return
        window = windows[0]
        state = "final" if window["final"] else "open"
        rows = window["rows"]
        print(f"{key}  window {window['window_start']} .. {window['window_end']} ({state}, {len(rows)} rows)")
    else:
        rows = value["rows"]
        print(f"{key}  window {value['window_start']} .. {value['window_end']}  ({len(rows)} rows)")
    for row in rows[:limit]:
        print("   ", ", ".join(f"{c}={v}" for c, v in row.items() if not c.startswith("window_")))


if __name__ == "__main__":
    main()
