"""Run one installer operation in a child process, for the crash-safety tests.

Usage: ``python -m tests.support.crash_op SPEC.json``, where the spec names the
home, the operation (``apply``, ``rollback``, ``gc`` or ``recover``), the
generations to keep, whether a live set takes part, and the plan items. The
installer reads ``PLUGMARKET_FAULT`` and SIGKILLs this process at that step;
if no fault fires, the steps passed are printed as JSON on stdout.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

from plugmarket.host import PlainHost
from plugmarket.installer import Installer
from plugmarket.live import LiveSet
from plugmarket.plan import Plan, PlanItem
from plugmarket.settings import Settings


def item_to_json(item: PlanItem) -> dict[str, object]:
    return dataclasses.asdict(item)


def _item(data: dict[str, object]) -> PlanItem:
    fields = {
        k: tuple(v) if isinstance(v, list) else v  # type: ignore[arg-type]
        for k, v in data.items()
    }
    return PlanItem(**fields)  # type: ignore[arg-type]


def _fetch(item: PlanItem) -> bytes:
    return Path(unquote(urlsplit(item.url).path)).read_bytes()


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    settings = Settings(home=Path(spec["home"]))
    inst = Installer(settings, keep=spec["keep"])  # recovers here: faults may fire
    steps = list(inst.steps)
    live = None
    if spec["live"]:
        live = LiveSet(settings, host=PlainHost())
        live.sync(inst.current(), inst.files)
    op = spec["op"]
    if op == "apply":
        plan = Plan("operation", tuple(_item(i) for i in spec["items"]))
        inst.apply(plan, _fetch, reason="crash test", live=live)
    elif op == "rollback":
        inst.rollback(live=live)
    elif op == "gc":
        inst.gc()
    if op != "recover":
        steps += inst.steps
    print(json.dumps(steps))


if __name__ == "__main__":
    main(sys.argv[1])
