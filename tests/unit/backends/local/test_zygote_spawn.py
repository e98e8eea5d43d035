"""Many spawns at once (an apply sending eight deployments, a restore): the zygote's socket fills
up, and every request waits for room instead of failing (which cost a fresh interpreter each)."""

from __future__ import annotations

import asyncio
import os
import socket

import orjson

from modelfleet.backends.local.zygote_client import Zygote

from tests.fakes import settle


def test_spawn_requests_wait_for_room_when_the_zygote_socket_is_full(tmp_path):
    async def scenario():
        zygote = Zygote(tmp_path / "zygote.log")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        ours.setblocking(False)
        zygote.sock = ours

        async def running():   # the warm parent itself is not under test here
            return None
        zygote.ensure = running
        spare = os.open(os.devnull, os.O_RDONLY)
        spawns = [asyncio.ensure_future(zygote.spawn({"padding": "x" * 2000}, spare)) for _ in range(50)]
        await settle()                              # every spawn has tried: the socket is full, nobody reads it
        assert not any(s.done() for s in spawns)
        loop = asyncio.get_running_loop()
        theirs.settimeout(10)
        for pid in range(1001, 1051):   # the zygote's side: read each request, answer with a pid
            msg, fds, _, _ = await loop.run_in_executor(None, socket.recv_fds, theirs, 1 << 16, 1)
            for fd in fds:
                os.close(fd)
            zygote._pending.pop(orjson.loads(msg)["id"]).set_result(pid)
        os.close(spare)
        assert sorted(await asyncio.gather(*spawns)) == list(range(1001, 1051))
        ours.close()
        theirs.close()
    asyncio.run(scenario())
