"""Live camera -> scene graph: a camera driver plus the scene_graph_node lifecycle node, configured and activated.

    ros2 launch vsgg_nodes live_camera.launch.py                                  # usb_cam on /dev/video0
    ros2 launch vsgg_nodes live_camera.launch.py camera:=v4l2_camera video_device:=/dev/video2
    ros2 launch vsgg_nodes live_camera.launch.py camera:=video_source_node video:=/data/clip.mp4 loop:=true
    ros2 launch vsgg_nodes live_camera.launch.py params_file:=/robots/r1/scene_graph.yaml namespace:=r1
    ros2 launch vsgg_nodes live_camera.launch.py publish_overlay:=true          # also the 'overlay' image topic

Both nodes run in ``namespace`` with relative topics; the camera's ``image_raw`` and the scene graph node's input
are remapped to ``image_topic``. scene_graph_node reads its parameters from ``params_file`` (default
config/scene_graph.yaml), overridden by the launch arguments named after its parameters. The launch file moves it
to ``active``: a configure request once its process has started, an activate request when it reaches
``inactive``. Arguments, drivers and parameters: vsgg_nodes/launch_plan.py (shared with ``vsgg ros-launch``, which
starts the same nodes where no ``ros2`` command is installed).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessStart
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from vsgg_nodes.launch_plan import ARGUMENTS, plan


def _nodes(context):
    """The actions for the argument values of this launch: the two nodes and the lifecycle requests."""
    camera, graph = plan({a.name: LaunchConfiguration(a.name).perform(context) for a in ARGUMENTS})
    camera_node = Node(package=camera.package, executable=camera.executable, name=camera.name,
                       namespace=camera.namespace, parameters=[dict(camera.parameters)],
                       remappings=list(camera.remappings), output="screen")
    graph_node = LifecycleNode(package=graph.package, executable=graph.executable, name=graph.name,
                               namespace=graph.namespace, parameters=[graph.params_file, dict(graph.parameters)],
                               remappings=list(graph.remappings), output="screen")

    def request(transition_id):
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(graph_node),
                                           transition_id=transition_id))

    # configure on start (launch_ros waits for the node's change_state service); activate once inactive
    configure = RegisterEventHandler(OnProcessStart(target_action=graph_node,
                                                    on_start=[request(Transition.TRANSITION_CONFIGURE)]))
    activate = RegisterEventHandler(OnStateTransition(target_lifecycle_node=graph_node, start_state="configuring",
                                                      goal_state="inactive",
                                                      entities=[request(Transition.TRANSITION_ACTIVATE)]))
    return [configure, activate, graph_node, camera_node]


def generate_launch_description():
    args = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description,
                                  **({"choices": list(a.choices)} if a.choices else {})) for a in ARGUMENTS]
    return LaunchDescription([*args, OpaqueFunction(function=_nodes)])
