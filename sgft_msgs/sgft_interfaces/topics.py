"""Topic and service names. Upstream names follow franka_ros2 and realsense2_camera 4.x."""


class Topics:
    # franka_ros2 robot state broadcaster (published BEST_EFFORT upstream)
    ROBOT_POSE = "/franka_robot_state_broadcaster/current_pose"
    MEASURED_JOINT_STATES = "/franka_robot_state_broadcaster/measured_joint_states"
    JOINT_STATES = "/joint_states"
    # controller inputs; the Cartesian one differs between controllers, so nodes take it as a parameter
    CARTESIAN_TARGET = "/cartesian_impedance_controller/target_pose"
    JOINT_TRAJECTORY = "/fr3_arm_controller/joint_trajectory"
    # realsense2_camera with pointcloud.enable:=true, camera_name camera1 / camera2
    CAMERA_CLOUDS = ("/camera1/camera1/depth/color/points", "/camera2/camera2/depth/color/points")
    # sim time from the simulated robot, and its ground truth of the object (for grading perception)
    CLOCK = "/clock"
    SIM_OBJECT_TRUTH = "/sgft/sim/object_truth"
    # our own graph
    OBJECT_DETECTION = "/sgft/object_detection"
    OBJECT_POINTS = "/sgft/object_points"
    TRANSITIONS = "/sgft/transitions"
    POLICY_UPDATE = "/sgft/policy_update"
    EPISODE_EVENTS = "/sgft/episode_events"
    LEARNER_STATUS = "/sgft/learner_status"
    VALUE_HEATMAP = "/sgft/value_heatmap"
    ESTOP = "/sgft/estop"
    # sgft_msgs/Intervention: an operator's teleoperation action, replacing the policy's while active
    INTERVENTION = "/sgft/intervention"


class Services:
    START_EPISODE = "/sgft/start_episode"
    # how StartEpisode's refusal begins while the policy's inputs would make its first tick hold ("not ready: <why>"):
    # a caller may ask again; other refusals (e-stop, an episode running) need something else to change first
    START_NOT_READY = "not ready"
    STOP_EPISODE = "/sgft/stop_episode"
    # resets the scene: the simulated robot serves it; on the real robot, a homing node does
    RESET_EPISODE = "/sgft/reset_episode"
    # how ResetEpisode's refusal begins while an episode runs: the server has asked the policy to abort it, and a
    # caller may ask again once the episode has ended
    RESET_EPISODE_RUNNING = "episode running"
    # std_srvs/SetBool: true engages the e-stop, false clears it
    SET_ESTOP = "/sgft/set_estop"
    # std_srvs/SetBool: true pauses the running episode (the robot holds its measured pose), false resumes it
    PAUSE_EPISODE = "/sgft/pause_episode"
    # std_srvs/Trigger: the operator confirms the scene is set up after a reset (the real robot's reset server waits)
    CONFIRM_RESET = "/sgft/confirm_reset"
    # sgft_msgs/LabelEpisode: the operator's success label of a finished episode (the learner serves it)
    LABEL_EPISODE = "/sgft/label_episode"
