"""Native tests of the dice logic: python3 -m unittest (run by cargo test)."""

import random
import unittest

import dice


class DiceTest(unittest.TestCase):
    def test_parse(self):
        cases = {
            "roll 2d6": (2, 6, 0),
            "please ROLL d20+3 now": (1, 20, 3),
            "roll 3d8 - 2": (3, 8, -2),
            "dice": (1, 6, 0),
            "Dice please": (1, 6, 0),
            "hello": None,
            "paradice": None,
            "roll 99d6": None,
            "roll 2d1": None,
        }
        for body, expected in cases.items():
            self.assertEqual(dice.parse(body), expected, body)
        self.assertIsNone(dice.parse("roll 5d6", max_dice=4))

    def test_roll_stays_in_range(self):
        rng = random.Random(7)
        rolls = dice.roll(1000, 6, rng)
        self.assertEqual(set(rolls), {1, 2, 3, 4, 5, 6})

    def test_describe(self):
        self.assertEqual(dice.describe(1, 20, 0, [17]), "\U0001f3b2 1d20: 17")
        self.assertEqual(dice.describe(2, 6, 1, [3, 5]), "\U0001f3b2 2d6+1: 3 + 5 + 1 = 9")
        self.assertEqual(dice.describe(2, 6, -1, [3, 5]), "\U0001f3b2 2d6-1: 3 + 5 - 1 = 7")


if __name__ == "__main__":
    unittest.main()
