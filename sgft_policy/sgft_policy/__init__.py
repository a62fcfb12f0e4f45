"""The 5 Hz SGFT control loop (policy_node)."""
