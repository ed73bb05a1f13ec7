"""pyigtl as a tracker for engine/tests/tracker_link.rs.

server PORT: serves StylusToTracker at 50 Hz moving 1 mm per message along x
  (header version 2, TransformStatus OK), 40 messages, then 10 marked INVALID,
  then waits 5 s and exits.
client PORT: connects to the station's tracker server and sends the same
  (header version 1).

pose PORT X Y Z: serves FiducialToCamera at (X, Y, Z) mm, no rotation, at
  50 Hz for 20 s (header version 2, TransformStatus OK).

usage: pyigtl_tracker.py server|client|pose PORT [X Y Z]"""
import sys, time
import numpy as np
import pyigtl

mode, port = sys.argv[1], int(sys.argv[2])
if mode in ("server", "pose"):
    peer = pyigtl.OpenIGTLinkServer(port=port, local_server=True)
else:
    peer = pyigtl.OpenIGTLinkClient(host="127.0.0.1", port=port)
deadline = time.time() + 20
while not peer.is_connected():
    if time.time() > deadline:
        sys.exit("no connection")
    time.sleep(0.02)
if mode == "pose":
    matrix = np.eye(4)
    matrix[0:3, 3] = [float(v) for v in sys.argv[3:6]]
    for _ in range(1000):
        message = pyigtl.TransformMessage(matrix, device_name="FiducialToCamera")
        message.header_version = 2
        message.metadata = {"TransformStatus": "OK"}
        peer.send_message(message, wait=True)
        time.sleep(0.02)
    peer.stop()
    sys.exit(0)
for i in range(50):
    matrix = np.eye(4)
    matrix[0, 3] = float(i)
    message = pyigtl.TransformMessage(matrix, device_name="StylusToTracker")
    if mode == "server":
        message.header_version = 2
        message.metadata = {"TransformStatus": "OK" if i < 40 else "INVALID"}
    peer.send_message(message, wait=True)
    time.sleep(0.02)
print("sent 50", flush=True)
time.sleep(5)
peer.stop()
