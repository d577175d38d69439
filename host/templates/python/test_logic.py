import unittest

from logic import answer


class AnswerTest(unittest.TestCase):
    def test_answers_ping_only(self):
        self.assertEqual(answer(" PING ", "pong"), "pong")
        self.assertIsNone(answer("pingpong", "pong"))


if __name__ == "__main__":
    unittest.main()
