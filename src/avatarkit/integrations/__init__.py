"""Integrations of avatarkit into voice-agent frameworks (optional extras).

``avatarkit.integrations.pipecat`` needs ``pip install 'avatarkit[pipecat]'``.
Nothing here is imported by ``import avatarkit``.
"""
