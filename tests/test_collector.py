"""The cyclic garbage collector is paused while a study export is made (ipr.collector)."""

from __future__ import annotations

import gc
import threading

import pytest

from ipr import collector


@pytest.fixture(autouse=True)
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    gc.enable() if was else gc.disable()


def test_paused_inside_and_back_after() -> None:
    with collector.paused():
        assert not gc.isenabled()
        with collector.paused():  # nested
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_overlapping_pauses_in_two_threads_resume_after_the_last() -> None:
    entered, release = threading.Event(), threading.Event()

    def other() -> None:
        with collector.paused():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    assert entered.wait(10)
    with collector.paused():
        pass
    assert not gc.isenabled()  # the other thread's export is still being made
    release.set()
    thread.join(10)
    assert gc.isenabled()


def test_a_collector_turned_off_stays_off() -> None:
    gc.disable()
    with collector.paused():
        pass
    assert not gc.isenabled()


def test_each_item_of_a_stream_is_made_paused_but_not_handed_over_paused() -> None:
    seen = []

    def making():
        for i in range(3):
            seen.append(gc.isenabled())
            yield i

    for item in collector.paused_each(making()):
        assert gc.isenabled()  # the consumer (a download) holds no pause
        assert item in (0, 1, 2)
    assert seen == [False, False, False]
