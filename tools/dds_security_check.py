#!/usr/bin/env python3
"""Whether DDS security (SROS2: authentication, access control, encryption) works with the installed rmw.

    python tools/dds_security_check.py

Creates an empty enclave in a temporary keystore and starts a node with ROS_SECURITY_ENABLE=true and the Enforce
strategy. With a Fast DDS built with its security plugins the node fails on the empty enclave's missing
certificates; with one built without them it fails saying so. Prints one line: the verdict and rmw's message.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = """
import rclpy
rclpy.init()
try:
    rclpy.create_node("sgft_security_probe")
    print("NODE_CREATED")
except Exception as err:
    print("NODE_REFUSED", str(err).replace(chr(10), " "))
"""


def main() -> int:
    with tempfile.TemporaryDirectory() as keystore:
        (Path(keystore) / "enclaves" / "probe").mkdir(parents=True)
        env = dict(os.environ, ROS_SECURITY_KEYSTORE=keystore, ROS_SECURITY_ENABLE="true",
                   ROS_SECURITY_STRATEGY="Enforce", ROS_SECURITY_ENCLAVE_OVERRIDE="/probe")
        result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    line = next((x for x in output.splitlines() if x.startswith(("NODE_CREATED", "NODE_REFUSED"))), output.strip())
    if "doesn't have the security libraries" in line:
        print(f"DDS security unavailable: the installed Fast DDS was built without its security plugins ({line})")
        return 1
    print(f"DDS security plugins present: an enclave without certificates gives: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
