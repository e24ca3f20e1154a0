"""Notebook Todo: ``%todo add TEXT | list | done N | undo N | remove N | clear``.

The list lives in ``ctx.storage/todo.json`` (the plugin's private folder,
which needs no capability). Invariants: every change is written to a
temporary file and renamed over the old one, so a crash never leaves half a
list; an unreadable file is set aside as ``todo.json.broken`` rather than
silently overwritten; the file is read again before every command, so two
kernels sharing a home see each other's changes; items are numbered from 1 in
the order they were added.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plugmarket.context import PluginContext

try:
    from IPython.core.error import UsageError
except ImportError:  # outside IPython
    UsageError = ValueError  # type: ignore[assignment,misc]

FILE = "todo.json"
MAX_TEXT = 500  # characters of one item
USAGE = "usage: %todo [list] | add TEXT | done N | undo N | remove N | clear"


@dataclass
class Item:
    text: str
    done: bool = False


class TodoList:
    """The items, loaded from and saved to one JSON file.

    Args:
        path: The JSON file (created on the first change).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: list[Item] = self._load()

    def _load(self) -> list[Item]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return [Item(str(i["text"]), bool(i["done"])) for i in data["items"]]
        except FileNotFoundError:
            return []
        except (ValueError, KeyError, TypeError):
            os.replace(self.path, self.path.with_name(FILE + ".broken"))
            print(f"todo: {self.path} could not be read; it was kept as {FILE}.broken")
            return []

    def save(self) -> None:
        tmp = self.path.with_name(FILE + ".tmp")
        data = {"items": [asdict(i) for i in self.items]}
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)

    def item(self, number: str) -> Item:
        """The item numbered ``number`` (from 1).

        Raises:
            UsageError: there is no such item.
        """
        if not number.isdigit() or not 1 <= int(number) <= len(self.items):
            raise UsageError(f"there is no item {number!r}; the list has {len(self.items)}")
        return self.items[int(number) - 1]

    def render(self) -> str:
        if not self.items:
            return "nothing to do"
        width = len(str(len(self.items)))
        lines = [
            f"{n:>{width}}. [{'x' if i.done else ' '}] {i.text}"
            for n, i in enumerate(self.items, start=1)
        ]
        left = sum(not i.done for i in self.items)
        lines.append(f"{left} of {len(self.items)} left")
        return "\n".join(lines)

    def command(self, line: str) -> str:
        """Run one ``%todo`` line; return what to print.

        Raises:
            UsageError: the line is not a ``%todo`` command.
        """
        # Read again: another kernel sharing the home may have changed the list.
        self.items = self._load()
        verb, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        if verb in ("", "list"):
            return self.render()
        if verb == "add":
            if not rest:
                raise UsageError("usage: %todo add TEXT")
            if len(rest) > MAX_TEXT:
                raise UsageError(f"an item is at most {MAX_TEXT} characters")
            self.items.append(Item(rest))
        elif verb in ("done", "undo"):
            self.item(rest).done = verb == "done"
        elif verb == "remove":
            self.item(rest)  # checks the number
            del self.items[int(rest) - 1]
        elif verb == "clear":
            self.items = [i for i in self.items if not i.done]
        else:
            raise UsageError(USAGE)
        self.save()
        return self.render()


def activate(ctx: PluginContext) -> None:
    """Register ``%todo``."""
    todos = TodoList(ctx.storage / FILE)

    def todo(line: str) -> None:
        print(todos.command(line))

    ctx.register_magic(todo, "todo")
