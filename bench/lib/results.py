"""Whether two engines gave the same answer: values normalised across
Stockyard's CSV and Spark's rows (None, numbers, UTC timestamps to the
millisecond, strings), rows compared as sorted multisets, floats to a
relative 1e-9. Used by bench/compare; tested by test_results.py.
"""

import datetime as dt
import math

TS_FORMATS = ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S.%f%z", "%Y-%m-%d %H:%M:%S%z")


def norm(v):
    """A value from either engine: None, int, float, a canonical UTC
    timestamp string, or a string."""
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)):
        return v
    s = str(v)
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        pass
    if len(s) >= 19 and s[4] == "-" and s[7] == "-" and s[10] in "T ":
        t = s.replace("Z", "+00:00")
        if t[-6] not in "+-":
            t += "+00:00"
        for f in TS_FORMATS:
            try:
                d = dt.datetime.strptime(t.replace("+00:00", "+0000"), f)
                d = d.astimezone(dt.UTC)
                return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"
            except ValueError:
                continue
    return s


def sort_key(row):
    key = []
    for v in row:
        if v is None:
            key.append((0, ""))
        elif isinstance(v, (int, float)):
            key.append((1, float(f"{v:.6g}")))
        else:
            key.append((2, v))
    return key


def same_value(a, b, rel=1e-9):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
    return a == b


def same_rows(cols_a, rows_a, cols_b, rows_b):
    """None when equal, else what differs."""
    if [c.lower() for c in cols_a] != [c.lower() for c in cols_b]:
        return f"columns differ: {cols_a} vs {cols_b}"
    if len(rows_a) != len(rows_b):
        return f"{len(rows_a)} rows vs {len(rows_b)}"
    a = sorted(([norm(v) for v in r] for r in rows_a), key=sort_key)
    b = sorted(([norm(v) for v in r] for r in rows_b), key=sort_key)
    for i, (x, y) in enumerate(zip(a, b)):
        for c, u, w in zip(cols_a, x, y):
            if not same_value(u, w):
                return f"row {i}, {c}: {u!r} vs {w!r}"
    return None


def diff_keys(cols_a, rows_a, rows_b, key_cols):
    """Keys (by `key_cols`) of rows that differ between two results with
    the same columns and the same keys; None when the keys themselves differ."""
    ix = [cols_a.index(c) for c in key_cols]
    a = {tuple(norm(r[i]) for i in ix): [norm(v) for v in r] for r in rows_a}
    b = {tuple(norm(r[i]) for i in ix): [norm(v) for v in r] for r in rows_b}
    if a.keys() != b.keys():
        return None
    return [k for k in a if not all(same_value(x, y) for x, y in zip(a[k], b[k]))]
