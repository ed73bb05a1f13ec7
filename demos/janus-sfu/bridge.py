"""WHIP in front of a Janus VideoRoom (what Meetecho's simple-whip-server does
for Janus 1.1, which has no WHIP of its own), plus the subscriber page.

- POST /whip (Authorization: Bearer TOKEN, application/sdp): creates a Janus
  session, attaches the VideoRoom plugin, joins ROOM as the publisher with the
  offer, waits for Janus's answer and returns it: 201 Created, Location
  /whip/resource/SESSION. The session is kept alive until DELETE.
- DELETE /whip/resource/SESSION: destroys the Janus session.
- GET / : the subscriber page (viewer.html next to this file).
- /janus/... : passed through to Janus's HTTP API, so the page talks to Janus
  from its own origin.

Standard library only. usage: bridge.py PORT JANUS_URL ROOM TOKEN"""

import asyncio
import concurrent.futures
import json
import os
import secrets
import sys
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def janus_call(url, body=None, timeout=35):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def tx():
    return secrets.token_hex(6)


def publish(janus, room, offer_sdp):
    """Returns (session id, answer SDP)."""
    session = janus_call(janus, {"janus": "create", "transaction": tx()})["data"]["id"]
    handle = janus_call(f"{janus}/{session}", {"janus": "attach", "plugin": "janus.plugin.videoroom",
                                                "transaction": tx()})["data"]["id"]
    body = {"request": "joinandconfigure", "room": room, "ptype": "publisher", "display": "scopecast",
            "audio": False, "video": True}
    janus_call(f"{janus}/{session}/{handle}", {"janus": "message", "transaction": tx(), "body": body,
                                                "jsep": {"type": "offer", "sdp": offer_sdp, "trickle": False}})
    for _ in range(20):
        event = janus_call(f"{janus}/{session}?maxev=1")
        if event.get("jsep", {}).get("type") == "answer":
            return session, event["jsep"]["sdp"]
        data = event.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise RuntimeError(data["error"])
    raise RuntimeError("Janus sent no answer")


async def main(port, janus, room, token):
    # Every subscriber page holds a long poll open: give them threads.
    asyncio.get_running_loop().set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=64))
    page = open(os.path.join(HERE, "viewer.html"), "rb").read()
    keepalives = {}

    async def keepalive(session):
        while True:
            await asyncio.sleep(20)
            try:
                await asyncio.to_thread(janus_call, f"{janus}/{session}", {"janus": "keepalive", "transaction": tx()})
            except Exception:  # noqa: BLE001 - the session is gone
                return

    # The request loop of benches/aiortc/tiny_http.py, written out: the demo stays one file that runs on
    # the system Python.
    async def handle(reader, writer):
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            lines = head.split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status, extra, payload = "404 Not Found", [], b""
            if method == "GET" and path.split("#")[0] in ("/", "/index.html"):
                status, extra, payload = "200 OK", ["Content-Type: text/html"], page
            elif path.startswith("/janus"):
                target = janus + path[len("/janus"):]
                try:
                    result = await asyncio.to_thread(janus_call, target, json.loads(body) if body else None)
                    status, payload = "200 OK", json.dumps(result).encode()
                    extra = ["Content-Type: application/json"]
                except (urllib.error.URLError, ValueError) as e:
                    status, payload = "502 Bad Gateway", str(e).encode()
            elif not path.startswith("/whip"):
                pass  # 404
            elif headers.get("authorization") != f"Bearer {token}":
                status, extra = "401 Unauthorized", ["WWW-Authenticate: Bearer"]
            elif method == "POST" and path == "/whip":
                try:
                    session, answer = await asyncio.to_thread(publish, janus, room, body.decode())
                    keepalives[str(session)] = asyncio.ensure_future(keepalive(session))
                    status, payload = "201 Created", answer.encode()
                    extra = ["Content-Type: application/sdp", f"Location: /whip/resource/{session}"]
                except Exception as e:  # noqa: BLE001 - Janus refused: tell the publisher
                    status, payload = "502 Bad Gateway", f"Janus: {e}".encode()
            elif method == "DELETE" and path.startswith("/whip/resource/"):
                session = path.rsplit("/", 1)[1]
                task = keepalives.pop(session, None)
                if task:
                    task.cancel()
                    await asyncio.to_thread(janus_call, f"{janus}/{session}", {"janus": "destroy", "transaction": tx()})
                    status = "200 OK"
            writer.write((f"HTTP/1.1 {status}\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n"
                          + "".join(f"{h}\r\n" for h in extra) + "\r\n").encode() + payload)
            await writer.drain()
        except Exception as e:  # noqa: BLE001 - one bad request must not stop the bridge
            print(f"request failed: {e}", file=sys.stderr)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print(f"bridge: http://127.0.0.1:{server.sockets[0].getsockname()[1]}/", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2].rstrip("/"), int(sys.argv[3]), sys.argv[4]))
