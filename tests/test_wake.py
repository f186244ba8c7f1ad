"""Local wake-ups (app.wake): the embedded mode's way to say "look now" without Redis."""

import os
import threading
import time

from app import wake


def test_a_listener_gets_what_is_sent_to_its_folder(tmp_path):
    listener = wake.Listener(tmp_path)
    try:
        assert wake.wake(tmp_path, b"7") == 1
        assert listener.wait(5) == [b"7"]
        assert listener.wait(0.01) == []  # nothing more waiting
        wake.wake(tmp_path, b"1")
        wake.wake(tmp_path, b"2")
        assert listener.wait(5) == [b"1", b"2"]  # one wait takes everything queued
    finally:
        listener.close()
    assert os.listdir(tmp_path) == []  # closing withdraws its marker


def test_every_listener_of_a_folder_is_woken(tmp_path):
    first, second = wake.Listener(tmp_path), wake.Listener(tmp_path)
    try:
        assert wake.wake(tmp_path, b"x") == 2
        assert first.wait(5) == [b"x"] and second.wait(5) == [b"x"]
    finally:
        first.close()
        second.close()


def test_a_marker_whose_process_is_gone_is_removed_by_the_next_sender(tmp_path):
    stale = tmp_path / f"{wake.PREFIX}0123456789abcdef"  # announced, but no socket has that name
    stale.touch()
    (tmp_path / "unrelated.txt").touch()
    assert wake.wake(tmp_path, b"x") == 0
    assert sorted(os.listdir(tmp_path)) == ["unrelated.txt"]


def test_interrupt_ends_another_threads_wait(tmp_path):
    listener = wake.Listener(tmp_path)
    try:
        started = time.monotonic()
        threading.Timer(0.2, listener.interrupt).start()
        listener.wait(30)
        assert time.monotonic() - started < 5
    finally:
        listener.close()


def test_no_folder_means_no_listener_and_no_error(tmp_path):
    assert wake.wake(tmp_path / "missing", b"x") == 0
    inert = wake.Listener(None)
    assert inert.wait(0.01) == []
    inert.close()
