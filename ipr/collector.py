"""Python's cyclic garbage collector paused while a large export is made.

A study export holds about a million container objects until its files are written (60,000
moments, their table rows, each file's parts), and while they pile up CPython runs full
collections that walk every one of them: a quarter of a 100-recording study bundle's CPU
(docs/benchmarks.md, "Study scale"). Reference counting still frees whatever the export drops;
only reference cycles wait, for the collection that runs once the last pause has ended.

Process-wide (the collector is), so overlapping pauses from several request threads are counted
and the collector comes back only after the last; a collector someone had turned off stays off.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_holders = 0
_resume = False


@contextmanager
def paused() -> Iterator[None]:
    """No automatic collection inside the block (nor in other threads meanwhile)."""
    global _holders, _resume
    with _lock:
        if _holders == 0:
            _resume = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _resume:
                gc.enable()


def paused_each(items: Iterable[T]) -> Iterator[T]:
    """The items of a lazily made stream, each made with the collector paused, but never
    paused while the consumer holds one (a slow download must not keep it off)."""
    it = iter(items)
    while True:
        with paused():
            try:
                item = next(it)
            except StopIteration:
                return
        yield item
