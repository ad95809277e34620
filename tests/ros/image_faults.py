"""Test helper process: receive sensor_msgs/Image messages and print the page faults each one cost.

``python tests/ros/image_faults.py --topic T --count N --tuned 0|1``: subscribes to T (sensor-data QoS), with
vsgg_nodes.malloc_tuning.keep_freed_buffers() applied first when ``--tuned 1``; after the first ``--skip`` messages,
counts this process's minor page faults (getrusage) over the next ``--count``; prints one JSON line
{"received": n, "faults_per_msg": f} and exits (status 1 when fewer than --count arrived within --timeout s)."""
import argparse
import json
import resource
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, default=40)
    p.add_argument("--skip", type=int, default=5)
    p.add_argument("--tuned", type=int, choices=(0, 1), required=True)
    p.add_argument("--timeout", type=float, default=60.0)
    a = p.parse_args()
    if a.tuned:
        from vsgg_nodes.malloc_tuning import keep_freed_buffers
        if not keep_freed_buffers():
            print(json.dumps({"error": "keep_freed_buffers() had no effect"}), flush=True)
            return 1
    from vsgg_nodes import dds_env
    dds_env.check()
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    faults = []

    def on_image(msg):
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)

    with rclpy.init(args=[]):
        node = rclpy.create_node("vsgg_test_image_faults")
        node.create_subscription(Image, a.topic, on_image, qos_profile_sensor_data)
        t_end = time.monotonic() + a.timeout
        while len(faults) < a.skip + a.count + 1 and time.monotonic() < t_end:
            rclpy.spin_once(node, timeout_sec=0.1)
        node.destroy_node()
    n = len(faults) - a.skip - 1
    out = {"received": len(faults)}
    if n > 0:
        out["faults_per_msg"] = (faults[-1] - faults[a.skip]) / n
    print(json.dumps(out), flush=True)
    return 0 if n >= a.count else 1


if __name__ == "__main__":
    sys.exit(main())
