"""Unit tests of the result comparison bench/compare relies on: a wrong
"same" would let a benchmark report a faster engine with wrong answers.
Run: python -m unittest discover -s bench/lib (scripts/test does).
"""

import unittest

from results import diff_keys, norm, same_rows


class Norm(unittest.TestCase):
    def test_both_engines_spellings_of_a_value_agree(self):
        self.assertIsNone(norm(""))
        self.assertIsNone(norm(None))
        self.assertEqual(norm(True), 1)
        self.assertEqual(norm("42"), 42)
        self.assertEqual(norm("2.5"), 2.5)
        # Stockyard's CSV and Spark's rows write the same instant three ways.
        want = "2026-01-05T11:45:00.000Z"
        self.assertEqual(norm("2026-01-05T11:45:00Z"), want)
        self.assertEqual(norm("2026-01-05 11:45:00"), want)
        self.assertEqual(norm("2026-01-05T12:45:00.000+01:00"), want)
        self.assertEqual(norm("DC-7"), "DC-7")


class SameRows(unittest.TestCase):
    cols = ["dc_id", "units", "ts"]

    def test_order_and_spelling_do_not_matter(self):
        a = [["DC-1", "3", "2026-01-05T11:45:00Z"], ["DC-2", "1.0000000000001", ""]]
        b = [["DC-2", 1.0, None], ["DC-1", 3, "2026-01-05 11:45:00"]]
        self.assertIsNone(same_rows(self.cols, a, ["DC_ID", "UNITS", "TS"], b))

    def test_differences_are_named(self):
        a = [["DC-1", "3", None]]
        self.assertEqual(same_rows(self.cols, a, self.cols, [["DC-1", "4", None]]), "row 0, units: 3 vs 4")
        self.assertEqual(same_rows(self.cols, a, self.cols, a + a), "1 rows vs 2")
        self.assertEqual(
            same_rows(self.cols, a, ["dc_id", "qty", "ts"], a),
            "columns differ: ['dc_id', 'units', 'ts'] vs ['dc_id', 'qty', 'ts']",
        )
        # Floats agree to a relative 1e-9, not beyond.
        self.assertIsNotNone(same_rows(["x"], [["1.0"]], ["x"], [["1.00001"]]))
        # Whole numbers compare exactly.
        self.assertIsNotNone(same_rows(["x"], [["9007199254740993"]], ["x"], [[9007199254740992]]))

    def test_nan_equals_only_nan(self):
        self.assertIsNone(same_rows(["x"], [[float("nan")]], ["x"], [["nan"]]))
        self.assertIsNotNone(same_rows(["x"], [[float("nan")]], ["x"], [["0"]]))


class DiffKeys(unittest.TestCase):
    def test_keys_of_rows_that_differ(self):
        cols = ["sku", "dc", "qty"]
        a = [["S1", "D1", 5], ["S2", "D1", 7]]
        b = [["S1", "D1", 5], ["S2", "D1", 8]]
        self.assertEqual(diff_keys(cols, a, b, ["sku", "dc"]), [("S2", "D1")])
        self.assertIsNone(diff_keys(cols, a, [["S3", "D1", 5], ["S2", "D1", 7]], ["sku", "dc"]))


if __name__ == "__main__":
    unittest.main()
