"""pyigtl (PyPI) as an independent OpenIGTLink peer for transport/tests/igtl_pyigtl.rs.

As a server on PORT it waits for the test's client, sends a TRANSFORM in
header version 1, one in version 2 with PLUS's TransformStatus metadata, a
STRING (a type the station skips) and pyigtl's own POSITION, then waits for the test's
TRANSFORM and prints it (matrix, timestamp, metadata) as one JSON line.

usage: pyigtl_peer.py PORT"""
import json, sys, time
import numpy as np
import pyigtl

port = int(sys.argv[1])
server = pyigtl.OpenIGTLinkServer(port=port, local_server=True)
deadline = time.time() + 20
while not server.is_connected():
    if time.time() > deadline:
        sys.exit("no client connected")
    time.sleep(0.02)
matrix = np.array([[0.0, -1.0, 0.0, 12.5], [1.0, 0.0, 0.0, -3.25], [0.0, 0.0, 1.0, 140.0], [0, 0, 0, 1]])
v1 = pyigtl.TransformMessage(matrix, timestamp=1700000000.25, device_name="StylusToTracker")
server.send_message(v1, wait=True)
v2 = pyigtl.TransformMessage(matrix, timestamp=1700000000.5, device_name="ProbeToReference")
v2.header_version = 2
v2.metadata = {"TransformStatus": "INVALID"}
server.send_message(v2, wait=True)
server.send_message(pyigtl.StringMessage("tracker ready", device_name="Status"), wait=True)
# pyigtl's POSITION is a list form (152 bytes here), not the specification's 28 bytes.
position = pyigtl.PositionMessage(positions=[[1.0, 2.0, 3.0]], quaternions=[[0, 0, 0, 1]], names=["Needle"], device_name="Needle")
server.send_message(position, wait=True)
got = server.wait_for_message("ScopeToCamera", timeout=10)
if got is None:
    sys.exit("no ScopeToCamera from the test")
print(json.dumps({
    "matrix": np.asarray(got.matrix, dtype=float).tolist(),
    "timestamp": got.timestamp,
    "header_version": got.header_version,
    "metadata": got.metadata,
}), flush=True)
time.sleep(0.2)
server.stop()
