"""The dice logic, plain Python: parse "roll 2d6+1", roll, describe."""

import random
import re
from typing import List, Optional, Tuple

# "roll 2d6", "roll d20+3", "dice" (one six-sided die)
_ROLL = re.compile(r"\broll\s+(\d*)d(\d+)\s*([+-]\s*\d+)?\b")


def parse(body: str, max_dice: int = 20) -> Optional[Tuple[int, int, int]]:
    """(count, sides, modifier) asked for in `body`, or None."""
    text = body.lower()
    match = _ROLL.search(text)
    if match:
        count = int(match.group(1) or 1)
        sides = int(match.group(2))
        modifier = int(match.group(3).replace(" ", "")) if match.group(3) else 0
        if 1 <= count <= max_dice and 2 <= sides <= 1000:
            return count, sides, modifier
        return None
    if re.search(r"\bdice\b", text):
        return 1, 6, 0
    return None


def roll(count: int, sides: int, rng: random.Random) -> List[int]:
    return [rng.randint(1, sides) for _ in range(count)]


def describe(count: int, sides: int, modifier: int, rolls: List[int]) -> str:
    total = sum(rolls) + modifier
    shown = " + ".join(str(r) for r in rolls)
    if modifier:
        shown += f" {'+' if modifier > 0 else '-'} {abs(modifier)}"
    name = f"{count}d{sides}" + (f"{modifier:+d}" if modifier else "")
    if len(rolls) == 1 and not modifier:
        return f"\U0001f3b2 {name}: {total}"
    return f"\U0001f3b2 {name}: {shown} = {total}"
