"""ZeroMQ graph service after the Clone pattern: GraphPublisher (engine side), GraphSubscriber (consumer side).

Protocol: msgs/zmq/WIRE.md; payload schema: msgs/zmq/graph_wire.schema.json; config: engine.config.TransportConfig.
"""
from engine.transport.events import GraphChanges, GraphEvent, graph_changes
from engine.transport.publisher import GraphPublisher, PublisherStats
from engine.transport.subscriber import GraphSubscriber, SubscriberStats
from engine.transport.subtree import MissingEntityError, entity_key, relation_key, view
from engine.transport.wire import WIRE_VERSION, WireError, new_epoch

__all__ = ["GraphChanges", "GraphEvent", "GraphPublisher", "GraphSubscriber", "MissingEntityError", "PublisherStats",
           "SubscriberStats", "WIRE_VERSION", "WireError", "entity_key", "graph_changes", "new_epoch",
           "relation_key", "view"]
