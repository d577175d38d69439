"""Native tests of the to-do logic: python3 -m unittest (run by cargo test)."""

import unittest
from typing import Dict, List, Optional

import todo


class DictStore:
    """The host's rules in a dict (no expiry: todo sets none)."""

    def __init__(self, fail: bool = False, max_keys: int = 1000):
        self.data: Dict[str, bytes] = {}
        self.fail = fail
        self.max_keys = max_keys

    def _check(self):
        if self.fail:
            raise todo.Unavailable("redis: connection refused")

    def get(self, key: str) -> Optional[bytes]:
        self._check()
        return self.data.get(key)

    def set(self, key: str, value: bytes) -> None:
        self._check()
        if key not in self.data and len(self.data) >= self.max_keys:
            raise todo.Full("the plugin holds 2 keys")
        self.data[key] = value

    def delete(self, key: str) -> bool:
        self._check()
        return self.data.pop(key, None) is not None

    def increment(self, key: str, delta: int) -> int:
        self._check()
        if key not in self.data and len(self.data) >= self.max_keys:
            raise todo.Full("the plugin holds 2 keys")
        n = int(self.data.get(key, b"0")) + delta
        self.data[key] = str(n).encode()
        return n

    def keys(self, prefix: str) -> List[str]:
        self._check()
        return sorted(k for k in self.data if k.startswith(prefix))


ADA, BOB = "whatsapp:+15550001111", "whatsapp:+15550002222"


class TodoTest(unittest.TestCase):
    def test_a_list_is_kept_per_sender(self):
        s = DictStore()
        self.assertIn("empty", todo.answer("todo", ADA, s))
        self.assertEqual(todo.answer("todo add milk", ADA, s), "Added #1: milk")
        self.assertEqual(todo.answer("TODO add  two   eggs ", ADA, s), "Added #2: two eggs")
        self.assertEqual(
            todo.answer("todo", ADA, s), "Your to-do list:\n1. milk\n2. two eggs"
        )
        self.assertIn("empty", todo.answer("todo list", BOB, s))

    def test_done_ticks_off_by_position(self):
        s = DictStore()
        for thing in ["a", "b", "c"]:
            todo.answer(f"todo add {thing}", ADA, s)
        self.assertEqual(todo.answer("todo done 2", ADA, s), "Done: b \u2705 (1 finished so far)")
        self.assertEqual(todo.answer("todo", ADA, s), "Your to-do list:\n1. a\n2. c")
        self.assertIn("no item 5", todo.answer("todo done 5", ADA, s))
        self.assertIn("Which one", todo.answer("todo done x", ADA, s))
        self.assertIn("2 finished", todo.answer("todo done #1", ADA, s))
        # Numbers keep their order past 9 (keys sort as text).
        for i in range(12):
            todo.answer(f"todo add item{i}", ADA, s)
        listing = todo.answer("todo", ADA, s).splitlines()
        self.assertEqual(listing[1], "1. c")
        self.assertEqual(listing[-1], "13. item11")

    def test_clear_and_help_and_others(self):
        s = DictStore()
        todo.answer("todo add a", ADA, s)
        todo.answer("todo add b", BOB, s)
        self.assertEqual(todo.answer("todo clear", ADA, s), "Cleared 1 item.")
        self.assertIn("1. b", todo.answer("todo", BOB, s))
        self.assertEqual(todo.answer("todo what", ADA, s), todo.HELP)
        self.assertIsNone(todo.answer("hello", ADA, s))
        self.assertIsNone(todo.answer("todos are fun", ADA, s))

    def test_limits_and_failures_get_a_clear_answer(self):
        s = DictStore()
        long = "x" * 500
        self.assertEqual(len(todo.answer(f"todo add {long}", ADA, s)), len("Added #1: ") + 200)
        for i in range(todo.MAX_ITEMS - 1):
            todo.answer(f"todo add {i}", ADA, s)
        self.assertIn("50 items already", todo.answer("todo add more", ADA, s))
        self.assertIn("can't reach", todo.answer("todo", ADA, DictStore(fail=True)))
        class Refusing(DictStore):
            def keys(self, prefix):
                raise todo.StoreError("invalid: a key is 1 to 256 bytes, not 300")

        self.assertIn("could not do that", todo.answer("todo", ADA, Refusing()))
        full = DictStore(max_keys=2)
        todo.answer("todo add a", ADA, full)
        self.assertIn("full", todo.answer("todo add b", ADA, full))


if __name__ == "__main__":
    unittest.main()
