"""The to-do logic, plain Python: commands in, replies out, over a store.

Each sender has their own list. An item is one key, `item:<sender>:<n>`,
where n comes from a counter (`next:<sender>`) that only grows: adding
is one atomic `increment` and one `set`, so two messages at once never
lose an item, on one replica or many. Listing is one `keys` call (keys
come back in byte order; n is zero-padded so that is the order items
were added). `done:<sender>` counts finished items.

`store` is anything with the host's five operations (see app.py for the
real one, test_todo.py for a dict). They raise `StoreError` subclasses.
"""

from typing import List, Optional, Protocol

MAX_ITEMS = 50
MAX_TEXT = 200
HELP = (
    "To-do list commands:\n"
    "todo add <thing>  - add an item\n"
    "todo              - show your list\n"
    "todo done <n>     - tick item n off\n"
    "todo clear        - empty your list"
)


class StoreError(Exception):
    """The store refused or failed; `args[0]` says why."""


class Unavailable(StoreError):
    """The store could not be reached: nothing was changed."""


class Full(StoreError):
    """The plugin's quota is used up."""


class Store(Protocol):
    def get(self, key: str) -> Optional[bytes]: ...
    def set(self, key: str, value: bytes) -> None: ...
    def delete(self, key: str) -> bool: ...
    def increment(self, key: str, delta: int) -> int: ...
    def keys(self, prefix: str) -> List[str]: ...


def _items(store: Store, sender: str) -> List[str]:
    return store.keys(f"item:{sender}:")


def answer(body: str, sender: str, store: Store) -> Optional[str]:
    """The reply to `body` from `sender`, or None if it is not for us."""
    words = body.strip().split(None, 2)
    if not words or words[0].lower() != "todo":
        return None
    command = words[1].lower() if len(words) > 1 else "list"
    rest = words[2].strip() if len(words) > 2 else ""
    try:
        if command == "add" and rest:
            return _add(store, sender, rest)
        if command in ("list", "show"):
            return _list(store, sender)
        if command == "done" and rest:
            return _done(store, sender, rest)
        if command == "clear":
            return _clear(store, sender)
        return HELP
    except Unavailable:
        return "Sorry, I can't reach your list right now. Please try again in a minute."
    except Full:
        return "Sorry, the to-do lists are full. Tick some items off first."
    except StoreError:
        return "Sorry, I could not do that with your list."


def _add(store: Store, sender: str, text: str) -> str:
    text = " ".join(text.split())[:MAX_TEXT]
    items = _items(store, sender)
    if len(items) >= MAX_ITEMS:
        return f"Your list has {MAX_ITEMS} items already. Tick some off first."
    n = store.increment(f"next:{sender}", 1)
    store.set(f"item:{sender}:{n:010d}", text.encode())
    return f"Added #{len(items) + 1}: {text}"


def _list(store: Store, sender: str) -> str:
    lines = []
    for i, key in enumerate(_items(store, sender), 1):
        text = store.get(key)
        if text is not None:
            lines.append(f"{i}. {text.decode(errors='replace')}")
    if not lines:
        return "Your to-do list is empty. Add something: todo add <thing>"
    return "Your to-do list:\n" + "\n".join(lines)


def _done(store: Store, sender: str, which: str) -> str:
    items = _items(store, sender)
    try:
        n = int(which.lstrip("#"))
    except ValueError:
        return "Which one? Say todo done <number>, e.g. todo done 1"
    if not 1 <= n <= len(items):
        return f"There is no item {n}: your list has {len(items)}."
    key = items[n - 1]
    text = store.get(key)
    if not store.delete(key):
        return f"Item {n} was already done."
    finished = store.increment(f"done:{sender}", 1)
    shown = text.decode(errors="replace") if text else f"item {n}"
    return f"Done: {shown} \u2705 ({finished} finished so far)"


def _clear(store: Store, sender: str) -> str:
    removed = sum(1 for key in _items(store, sender) if store.delete(key))
    return f"Cleared {removed} item{'s' if removed != 1 else ''}."
