"""A WHEP player built on aiortc: the second, independent WebRTC peer of the
viewer tests. It POSTs an offer, plays the H.264 stream, decodes the timecode
strip of each frame and prints one JSON line of statistics.

With --garbage-rtcp it is a hostile viewer: while it plays it sends, through
its SRTCP context (so the station cannot drop them at the SRTP layer), a
stream of malformed and absurd RTCP: random bodies under valid headers, wrong
lengths, PLI/FIR floods, NACKs for random sequence numbers and receiver
reports with nonsense values.

usage: whep_client.py WHEP_URL TOKEN FRAMES TIMEOUT_S [--garbage-rtcp]"""

import asyncio
import json
import random
import struct
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


def garbage_rtcp(rng, media_ssrc):
    """One malformed or hostile RTCP packet (header version 2, payload type 192..223)."""
    kind = rng.randrange(6)
    sender = rng.getrandbits(32)
    if kind == 0:  # random body, length field that may lie
        body = rng.randbytes(rng.randrange(0, 120))
        return struct.pack("!BBH", 0x80 | rng.randrange(32), rng.randrange(192, 224), rng.randrange(0, 65536)) + body
    if kind == 1:  # PLI
        return struct.pack("!BBHII", 0x81, 206, 2, sender, media_ssrc)
    if kind == 2:  # FIR with a random sequence number
        return struct.pack("!BBHIIIBBH", 0x84, 206, 4, sender, 0, media_ssrc, rng.randrange(256), 0, 0)
    if kind == 3:  # NACK for 16 random packets
        pairs = b"".join(struct.pack("!HH", rng.randrange(65536), rng.randrange(65536)) for _ in range(8))
        return struct.pack("!BBHII", 0x81, 205, 2 + 8, sender, media_ssrc) + pairs
    if kind == 4:  # receiver report with absurd values
        block = struct.pack("!IB3sIIII", media_ssrc, rng.randrange(256), rng.randbytes(3), rng.getrandbits(32),
                            rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(32))
        return struct.pack("!BBHI", 0x81, 201, 7, sender) + block
    return struct.pack("!BBH", 0x80, 200, 0)  # a sender report cut short


async def send_garbage(pc, station_ssrc, stop, counters):
    rng = random.Random(0x5C0E)
    receiver = pc.getReceivers()[0]
    while not stop.is_set():
        # Mostly about the station's real stream, sometimes about one that does not exist.
        media_ssrc = station_ssrc if rng.random() < 0.8 else rng.getrandbits(32)
        for _ in range(20):
            try:
                await receiver.transport._send_rtp(garbage_rtcp(rng, media_ssrc))
                counters["garbage_rtcp_sent"] += 1
            except Exception:  # noqa: BLE001 - a refused packet is part of the exercise
                counters["garbage_rtcp_refused"] += 1
        await asyncio.sleep(0.01)


async def main(url, token, wanted, timeout_s, garbage):
    stats = {"state": "new", "frames": 0, "decoded": 0, "latencies": [], "width": 0, "height": 0,
             "garbage_rtcp_sent": 0, "garbage_rtcp_refused": 0}
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
    stop = asyncio.Event()
    vandal = None
    try:
        track = await asyncio.wait_for(track_future, max(0.1, deadline - time.monotonic()))
        if garbage:
            ssrcs = [int(line.split(":")[1].split()[0]) for line in answer.splitlines() if line.startswith("a=ssrc:")]
            vandal = asyncio.ensure_future(send_garbage(pc, ssrcs[0] if ssrcs else 0, stop, stats))
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
        stop.set()
        if vandal:
            await vandal
        await loop.run_in_executor(None, http, "DELETE", location, token)
        await pc.close()
    print(json.dumps(stats))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), "--garbage-rtcp" in sys.argv[5:]))
