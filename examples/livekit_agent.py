"""A LiveKit Agents voice agent with an avatarkit avatar.

    pip install -e '.[livekit]'
    python examples/livekit_agent.py dev

It needs a LiveKit server (``LIVEKIT_URL``, ``LIVEKIT_API_KEY``,
``LIVEKIT_API_SECRET``), the avatar service (``AVATARKIT_API_KEY``,
``AVATARKIT_APP_ID``, ``AVATARKIT_AVATAR_ID``, ``AVATARKIT_CONSOLE_ENDPOINT``,
``AVATARKIT_INGRESS_ENDPOINT``) and models for the agent: here LiveKit
Inference model strings (they run on LiveKit Cloud; swap in any plugin's
STT/LLM/TTS). The avatar service joins the room as ``avatarkit-avatar`` and
publishes the agent's voice and the avatar's video on the agent's behalf; the
agent publishes no audio of its own.
"""

from __future__ import annotations

from livekit.agents import Agent, AgentServer, AgentSession, JobContext, cli

from avatarkit.integrations.livekit import AvatarSession

server = AgentServer()


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    session: AgentSession[None] = AgentSession(
        stt="deepgram/nova-3",
        llm="openai/gpt-4.1-mini",
        tts="cartesia/sonic-2",
    )
    # Service settings from AVATARKIT_*; LiveKit credentials from LIVEKIT_*.
    avatar = AvatarSession(avatar_participant_identity="avatarkit-avatar")
    # Before session.start(): the agent's audio then goes to the avatar only.
    # start() registers aclose() as a job shutdown callback.
    await avatar.start(session, ctx.room)
    await session.start(
        agent=Agent(instructions="You are a friendly assistant. Keep answers short."),
        room=ctx.room,
    )
    session.generate_reply(instructions="Greet the user.")


if __name__ == "__main__":
    cli.run_app(server)
