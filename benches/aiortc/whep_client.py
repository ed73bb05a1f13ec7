"""A WHEP player built on aiortc: the second, independent WebRTC peer of the
viewer tests. It POSTs an offer, plays the H.264 stream, decodes the timecode
strip of each frame and prints one JSON line of statistics.

usage: whep_client.py WHEP_URL TOKEN FRAMES TIMEOUT_S"""

import asyncio
import json
import sys
import time
import urllib.error
import urllib.request

from aiortc import RTCPeerConnection, RTCSessionDescription

from timecode import decode_luma, full_ms


def http(method, url, token, body=None, content_type=None):
    headers = {"Authorization": f"Bearer {token}"}
    if content_type:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


async def main(url, token, wanted, timeout_s):
    stats = {"state": "new", "frames": 0, "decoded": 0, "latencies": [], "width": 0, "height": 0}
    deadline = time.monotonic() + timeout_s
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    track_future = asyncio.get_running_loop().create_future()

    @pc.on("track")
    def on_track(track):
        if not track_future.done():
            track_future.set_result(track)

    @pc.on("connectionstatechange")
    def on_state():
        stats["state"] = pc.connectionState

    await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers every candidate here
    loop = asyncio.get_running_loop()
    status, headers, answer = await loop.run_in_executor(
        None, http, "POST", url, token, pc.localDescription.sdp.encode(), "application/sdp")
    if status != 201:
        stats["state"] = f"error: WHEP answered {status}: {answer.strip()}"
        print(json.dumps(stats))
        return
    location = urllib.request.urljoin(url, headers.get("Location", ""))
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    try:
        track = await asyncio.wait_for(track_future, max(0.1, deadline - time.monotonic()))
        while stats["frames"] < wanted:
            frame = await asyncio.wait_for(track.recv(), max(0.1, deadline - time.monotonic()))
            stats["frames"] += 1
            stats["width"], stats["height"] = frame.width, frame.height
            luma = frame.to_ndarray(format="gray")
            low = decode_luma(luma)
            if low is not None:
                now_ms = int(time.time() * 1000)
                stats["decoded"] += 1
                stats["latencies"].append(now_ms - full_ms(low, now_ms))
    except asyncio.TimeoutError:
        pass
    finally:
        await loop.run_in_executor(None, http, "DELETE", location, token)
        await pc.close()
    print(json.dumps(stats))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
