"""ROS 2 adapters of the vsgg engine; the only package of vsgg that imports rclpy (in its node modules)."""
