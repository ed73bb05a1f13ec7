"""An independent WHIP endpoint (RFC 9725) built on aiortc: it accepts a
publisher's SDP offer on POST /whip with the right bearer token (401
otherwise), answers it, decodes every received video frame (aiortc's H.264
decoder, PyAV/FFmpeg), and ends the session on DELETE of the resource. Once a
second it prints one JSON line: sessions accepted and deleted, frames
decoded, the last frame's size, and the unauthorised attempts.

usage: whip_receiver.py PORT TOKEN"""

import asyncio
import json
import sys

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from tiny_http import serve_one


async def main(port, token):
    stats = {"sessions": 0, "deleted": 0, "frames": 0, "width": 0, "height": 0, "unauthorised": 0}
    sessions = {}

    async def consume(track):
        try:
            while True:
                frame = await track.recv()
                stats["frames"] += 1
                stats["width"], stats["height"] = frame.width, frame.height
        except MediaStreamError:
            pass

    async def answer(offer_sdp):
        pc = RTCPeerConnection()

        @pc.on("track")
        def on_track(track):
            if track.kind == "video":
                asyncio.ensure_future(consume(track))

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        stats["sessions"] += 1
        session = str(stats["sessions"])
        sessions[session] = pc
        return session, pc.localDescription.sdp

    async def route(method, path, headers, body):
        status, extra, payload = "404 Not Found", [], b""
        if headers.get("authorization") != f"Bearer {token}":
            stats["unauthorised"] += 1
            status, extra = "401 Unauthorized", ["WWW-Authenticate: Bearer"]
        elif method == "POST" and path == "/whip":
            if headers.get("content-type", "").split(";")[0].strip() != "application/sdp":
                status = "415 Unsupported Media Type"
            else:
                session, sdp = await answer(body.decode())
                status, payload = "201 Created", sdp.encode()
                extra = ["Content-Type: application/sdp", f"Location: /whip/resource/{session}"]
        elif method == "DELETE" and path.startswith("/whip/resource/"):
            pc = sessions.pop(path.rsplit("/", 1)[1], None)
            if pc:
                await pc.close()
                stats["deleted"] += 1
            status = "200 OK"
        return status, extra, payload

    server = await asyncio.start_server(lambda r, w: serve_one(r, w, route), "127.0.0.1", port)
    print(json.dumps({"listening": server.sockets[0].getsockname()[1]}), flush=True)
    async with server:
        while True:
            await asyncio.sleep(1)
            print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
