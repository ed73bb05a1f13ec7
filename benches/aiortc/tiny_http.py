"""One HTTP/1.1 request per connection, for the small test servers on
loopback (the aiortc WHEP server and WHIP receiver): read the request, let
`route(method, path, headers, body)` answer `(status, extra_headers,
payload)`, write the answer and close. A bad request is logged and harms
nobody else."""

import sys


async def serve_one(reader, writer, route):
    try:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        lines = head.split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        status, extra, payload = await route(method, path, headers, body)
        writer.write((f"HTTP/1.1 {status}\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n"
                      + "".join(f"{h}\r\n" for h in extra) + "\r\n").encode() + payload)
        await writer.drain()
    except Exception as e:  # noqa: BLE001 - one bad request must not stop the server
        print(f"request failed: {e}", file=sys.stderr)
    finally:
        writer.close()
