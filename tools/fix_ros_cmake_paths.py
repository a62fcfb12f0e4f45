"""Rewrite the Python/numpy include paths that the ros-kilted wheels hard-code in their CMake exports.

The wheels were built under /opt/python/cp311-cp311 (manylinux); their
share/*/cmake/export_*__rosidl_generator_pyExport.cmake files point INTERFACE_INCLUDE_DIRECTORIES there, so any
interface package built against them (sgft_msgs) fails to find Python.h. We point them at this interpreter's
include dir and numpy's. Idempotent: files already rewritten are left alone.
"""

from __future__ import annotations

import glob
import os
import re
import sys
import sysconfig

import numpy


def main(prefix: str) -> int:
    python_include = sysconfig.get_paths()["include"]
    numpy_include = numpy.get_include()
    pattern = re.compile(r'INTERFACE_INCLUDE_DIRECTORIES "[^"]*"')
    replacement = f'INTERFACE_INCLUDE_DIRECTORIES "{python_include};{numpy_include}"'
    changed = 0
    files = glob.glob(os.path.join(prefix, "share", "*", "cmake", "export_*__rosidl_generator_pyExport.cmake"))
    if not files:
        print(f"fix_ros_cmake_paths: no rosidl_generator_py exports under {prefix}/share", file=sys.stderr)
        return 1
    for path in files:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if "/opt/python/" not in text:
            continue
        with open(path, "w", encoding="utf-8") as f:
            f.write(pattern.sub(replacement, text))
        changed += 1
    print(f"fix_ros_cmake_paths: {changed} of {len(files)} export files rewritten "
          f"(python include {python_include}, numpy include {numpy_include})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else sys.prefix))
