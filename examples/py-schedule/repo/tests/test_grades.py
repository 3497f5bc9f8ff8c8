import unittest

from bright_helpers import grades


class TestGrades(unittest.TestCase):

    def test_average_grade_0(self):
        self.assertAlmostEqual(grades.average_grade([80, 90, 100]), 90.0)

    def test_average_grade_1(self):
        self.assertAlmostEqual(grades.average_grade([]), 0.0)

    def test_average_grade_2(self):
        self.assertAlmostEqual(grades.average_grade([55]), 55.0)

    def test_average_grade_3(self):
        self.assertAlmostEqual(grades.average_grade([1, 2]), 1.5)

    def test_letter_for_grade_0(self):
        self.assertEqual(grades.letter_for_grade(95), 'A')

    def test_letter_for_grade_1(self):
        self.assertEqual(grades.letter_for_grade(90), 'A')

    def test_letter_for_grade_2(self):
        self.assertEqual(grades.letter_for_grade(85), 'B')

    def test_letter_for_grade_3(self):
        self.assertEqual(grades.letter_for_grade(70), 'C')

    def test_letter_for_grade_4(self):
        self.assertEqual(grades.letter_for_grade(12), 'F')


if __name__ == '__main__':
    unittest.main()
