"""A WHEP server built on aiortc, the WebRTC stack of NVIDIA HoloHub's
streaming applications: the reference the glass-to-glass harness measures
scopecast against. It sends frames of the given size and rate, each with the
scopecast timecode strip of the moment it was made (and a moving block, so the
encoder has motion to code), encoded by aiortc's own H.264 encoder (PyAV's
libx264, as aiortc configures it). It serves scopecast's viewer page at / so
the same page measures both.

usage: whep_server.py VIEWER_HTML WIDTH HEIGHT FPS
prints: viewer: http://127.0.0.1:PORT/#token=aiortc"""

import asyncio
import fractions
import sys
import time

import numpy as np
from av import VideoFrame
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription, VideoStreamTrack

from timecode import stamp_luma
from tiny_http import serve_one

TOKEN = "aiortc"


class TimecodeTrack(VideoStreamTrack):
    """Frames paced at `fps`, each stamped with its creation time."""

    def __init__(self, width, height, fps):
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.index = 0
        self.start = None
        self.y = np.full((height, width), 96, np.uint8)
        self.uv = np.full((height // 2, width), 128, np.uint8)

    async def recv(self):
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.index / self.fps
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        y = self.y.copy()
        block = (self.index * 8) % max(1, self.width - 160)
        y[self.height // 3:self.height // 3 + 160, block:block + 160] = 200
        stamp_luma(y, int(time.time() * 1000))
        frame = VideoFrame.from_ndarray(np.vstack([y, self.uv]), format="yuv420p")
        frame.pts = self.index * (90000 // self.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        self.index += 1
        return frame


async def main(viewer_html, width, height, fps):
    page = open(viewer_html, "rb").read()
    sessions = {}
    track = TimecodeTrack(width, height, fps)

    async def answer(offer_sdp):
        pc = RTCPeerConnection()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        pc.addTrack(track)
        h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
        for transceiver in pc.getTransceivers():
            transceiver.setCodecPreferences(h264)
        await pc.setLocalDescription(await pc.createAnswer())
        session = str(len(sessions) + 1)
        sessions[session] = pc
        return session, pc.localDescription.sdp

    async def route(method, path, headers, body):
        status, extra, payload = "404 Not Found", [], b""
        if method == "GET" and path == "/":
            status, extra, payload = "200 OK", ["Content-Type: text/html"], page
        elif method == "POST" and path == "/whep":
            session, sdp = await answer(body.decode())
            status, payload = "201 Created", sdp.encode()
            extra = ["Content-Type: application/sdp", f"Location: /whep/{session}"]
        elif method == "PATCH":
            status = "204 No Content"
        elif method == "DELETE" and path.startswith("/whep/"):
            pc = sessions.pop(path.rsplit("/", 1)[1], None)
            if pc:
                await pc.close()
            status = "200 OK"
        return status, extra, payload

    server = await asyncio.start_server(lambda r, w: serve_one(r, w, route), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"viewer: http://127.0.0.1:{port}/#token={TOKEN}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
