"""The push queue: one turn per target branch among this machine's envbot processes, never unsafe."""

from __future__ import annotations

import os
import tempfile

import pytest

from bot import pushqueue
from bot.pushqueue import PushTurn


@pytest.fixture()
def private_tmp(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv(pushqueue.QUEUE_VAR, raising=False)
    return tmp_path


def test_a_second_writer_waits_for_the_turn_and_gets_it_on_release(private_tmp):
    first, second = PushTurn("file:///r.git", "main"), PushTurn("file:///r.git", "main")
    assert first.acquire(5) and first.held
    # Waiting has a limit; past it the writer races through the remote without a turn.
    assert second.acquire(0.1) is False and not second.held
    first.release()
    assert second.acquire(5) and second.held
    second.release()


def test_other_branches_and_targets_have_their_own_turn(private_tmp):
    turns = [PushTurn("file:///r.git", "main"), PushTurn("file:///r.git", "release"), PushTurn("file:///s.git", "main")]
    assert all(turn.acquire(0) for turn in turns)
    for turn in turns:
        turn.release()


def test_the_lock_directory_is_private(private_tmp):
    directory = pushqueue.lock_dir()
    assert directory is not None and directory.is_relative_to(private_tmp)
    assert directory.stat().st_mode & 0o777 == 0o700 and directory.parent.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("plant", ["symlink", "world-writable"])
def test_a_planted_lock_directory_means_no_queue_not_a_hijack(private_tmp, plant):
    # Another user could create /tmp/envbot-<uid> first; envbot then pushes without a turn (the remote
    # still guarantees correctness) instead of using a directory it does not own.
    path = private_tmp / f"envbot-{os.getuid()}"
    if plant == "symlink":
        (private_tmp / "elsewhere").mkdir()
        path.symlink_to(private_tmp / "elsewhere")
    else:
        path.mkdir()
        path.chmod(0o777)
    assert pushqueue.lock_dir() is None
    assert PushTurn("file:///r.git", "main").acquire(0) is False


def test_the_queue_can_be_turned_off(private_tmp, monkeypatch):
    monkeypatch.setenv(pushqueue.QUEUE_VAR, "off")
    assert PushTurn("file:///r.git", "main").acquire(0) is False


def test_a_child_of_the_holders_push_does_not_wait_for_the_turn(private_tmp, monkeypatch):
    # A local remote's hook runs inside the holder's push; if it runs envbot on the same branch, waiting
    # would be waiting for its own parent.
    holder = PushTurn("file:///r.git", "main")
    assert holder.holder_env() == {} and holder.acquire(0)
    monkeypatch.setenv(*next(iter(holder.holder_env().items())))
    assert PushTurn("file:///r.git", "main").acquire(5) is False
    assert PushTurn("file:///r.git", "other").acquire(0) is True
    holder.release()
