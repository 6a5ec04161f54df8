"""bcrypt runs on threads of its own, a bounded number, with a bounded queue: a flood of
logins neither blocks the event loop nor takes the threads everything else borrows."""

from __future__ import annotations

import asyncio
import threading

import pytest

from api.exc import LoginsBusy
from api.services.auth import _Bcrypt


async def test_a_flood_waits_for_bcrypts_threads_and_the_rest_is_refused() -> None:
    pool = _Bcrypt()
    pool.configure(1)
    pool.MAX_WAITING = 2  # one running, two waiting: the fourth is refused
    release = threading.Event()
    running: list[str] = []

    def slow(name: str) -> str:
        running.append(name)
        release.wait(10)
        return name

    tasks = [asyncio.ensure_future(pool.run(slow, f"login {n}")) for n in range(3)]
    await asyncio.sleep(0.05)
    with pytest.raises(LoginsBusy):
        await pool.run(slow, "one too many")
    assert running == ["login 0"]  # one thread: the others wait their turn
    # Meanwhile the loop and its default executor serve everyone else at once.
    assert await asyncio.wait_for(asyncio.to_thread(lambda: "other work"), 1) == "other work"
    release.set()
    assert await asyncio.gather(*tasks) == ["login 0", "login 1", "login 2"]
    assert await pool.run(slow, "after") == "after"  # room again


async def test_the_threads_follow_the_setting() -> None:
    pool = _Bcrypt()
    pool.configure(3)
    barrier = threading.Barrier(3, timeout=5)  # passes only if three run at once
    names = await asyncio.gather(*(pool.run(barrier.wait) for _ in range(3)))
    assert sorted(names) == [0, 1, 2]
