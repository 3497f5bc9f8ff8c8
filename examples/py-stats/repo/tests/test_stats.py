import unittest

from stats import mean, median, value_range


class TestMean(unittest.TestCase):
    def test_basic(self):
        self.assertEqual(mean([1, 2, 3, 4]), 2.5)

    def test_empty(self):
        with self.assertRaises(ValueError):
            mean([])


class TestMedian(unittest.TestCase):
    def test_odd(self):
        self.assertEqual(median([3, 1, 2]), 2)

    def test_even(self):
        self.assertEqual(median([1, 2, 3, 4]), 2.5)


class TestRange(unittest.TestCase):
    def test_basic(self):
        self.assertEqual(value_range([5, 1, 9]), 8)


if __name__ == "__main__":
    unittest.main()
