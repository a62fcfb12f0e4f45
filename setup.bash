# Source this file (bash) to get a shell with the SGFT environment:
#   source setup.bash   ->  python -c "import rclpy, sgft_msgs.msg" works (after `make build`).
_sgft_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ ! -x "$_sgft_repo/.venv/bin/python" ]; then
  echo "setup.bash: no .venv yet; run tools/bootstrap.sh (or make build) first" >&2
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
source "$_sgft_repo/.venv/bin/activate"
# The venv is a ROS prefix (share/, lib/): colcon and CMake find the Kilted packages there.
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export MUJOCO_GL="${MUJOCO_GL:-osmesa}"
# Fast DDS transports from a profile: shared memory with a segment big enough for a 2-8 MB point cloud, UDP for
# discovery (why not DEFAULT or LARGE_DATA: the file's comment). An XML profile overrides FASTDDS_BUILTIN_TRANSPORTS.
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$_sgft_repo/sgft_bringup/config/fastdds.xml}"
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-osmesa}"
if [ -f "$_sgft_repo/install/setup.bash" ]; then
  # shellcheck disable=SC1091
  source "$_sgft_repo/install/setup.bash"
fi
unset _sgft_repo
