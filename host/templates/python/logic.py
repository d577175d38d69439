"""{{name}}'s decision logic: plain Python, tested natively
(`python3 -m unittest` in this folder); app.py is the component glue."""

from typing import Optional


def answer(body: str, reply: str) -> Optional[str]:
    """What to answer `body` with, if anything."""
    return reply if body.strip().lower() == "ping" else None
