"""Integrations of avatarkit into voice-agent frameworks (optional extras).

``avatarkit.integrations.pipecat`` needs ``pip install 'avatarkit[pipecat]'``;
``avatarkit.integrations.livekit`` needs ``pip install 'avatarkit[livekit]'``.
Nothing here is imported by ``import avatarkit``.
"""
