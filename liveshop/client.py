"""A minimal terminal viewer: `python -m liveshop.client --token T --room demo`.

Prints the room snapshot and live events; each line typed is sent as a chat message. It
speaks only the public protocol (docs/protocol.md) and doubles as an example client.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys

from websockets.asyncio.client import connect


async def run(url: str, token: str, room: str) -> None:
    ids = itertools.count(1)
    async with connect(url) as ws:
        await ws.send(json.dumps({"id": next(ids), "op": "connect", "token": token}))
        print(await ws.recv())
        await ws.send(json.dumps({"id": next(ids), "op": "subscribe", "room": room}))

        async def read_stdin() -> None:
            loop = asyncio.get_running_loop()
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    return
                if line.strip():
                    frame = {"id": next(ids), "op": "chat", "room": room, "text": line.strip()}
                    await ws.send(json.dumps(frame))

        reader = asyncio.ensure_future(read_stdin())
        try:
            async for frame in ws:
                print(frame, flush=True)
        finally:
            reader.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="ws://127.0.0.1:8765")
    parser.add_argument("--token", required=True)
    parser.add_argument("--room", default="demo")
    args = parser.parse_args()
    asyncio.run(run(args.url, args.token, args.room))


if __name__ == "__main__":
    main()
