"""Import path of avatarkit 0.1.7's generated protobuf code, kept for drop-in use.

``from avatarkit.proto.generated import message_pb2`` gives the wire
messages (``Message``, ``ServerResponseAnimation``, ...), so code that parses
``transport_frames`` bytes itself keeps working.
"""
