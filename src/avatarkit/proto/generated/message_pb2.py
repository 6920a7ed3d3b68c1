"""The wire messages under avatarkit 0.1.7's module name (see ``avatarkit_wire_pb2``)."""

from ..avatarkit_wire_pb2 import *  # noqa: F403
