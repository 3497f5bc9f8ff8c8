import unittest

from bright_helpers import schedule


class TestSchedule(unittest.TestCase):

    def test_free_meeting_count_0(self):
        self.assertEqual(schedule.free_meeting_count({9, 10}, 9, 17), 6)

    def test_free_meeting_count_1(self):
        self.assertEqual(schedule.free_meeting_count(set(), 8, 12), 4)

    def test_free_meeting_count_2(self):
        self.assertEqual(schedule.free_meeting_count({1, 2, 3}, 1, 4), 0)

    def test_merge_meetings_0(self):
        self.assertEqual(schedule.merge_meetings([(1, 3), (2, 6), (8, 10)]), [(1, 6), (8, 10)])

    def test_merge_meetings_1(self):
        self.assertEqual(schedule.merge_meetings([(1, 4), (4, 5)]), [(1, 5)])

    def test_merge_meetings_2(self):
        self.assertEqual(schedule.merge_meetings([(5, 6)]), [(5, 6)])

    def test_merge_meetings_3(self):
        self.assertEqual(schedule.merge_meetings([(1, 10), (2, 3)]), [(1, 10)])


if __name__ == '__main__':
    unittest.main()
