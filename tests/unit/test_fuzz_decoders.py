"""Property-based and mutation fuzz tests of every decoder of outside bytes (issue 14).

Each target of ``tests/_fuzz_targets.py`` (the client's and the service's
message decoders, Ogg pages, WAV headers, token answers, frames files,
animation payloads) gets arbitrary bytes and mutations of real encodings, and
may raise only the errors its docstring documents. Hypothesis runs
derandomized (a fixed seed, no example database) so CI is reproducible; the
long, random campaign is ``scripts/fuzz.py`` (docs/fuzzing.md).
"""

from __future__ import annotations

import contextlib
import json
import random
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avatarkit._encode import AnimationEnvelope, encode_audio_input
from avatarkit._frames_codec import BLENDSHAPE_NAMES, AnimationFrame, decode_animation, encode_frame
from avatarkit.audio.files import read_audio_file
from avatarkit.cli._frames_file import read_frames_file
from avatarkit.proto import avatarkit_wire_pb2 as pb
from avatarkit.protocol import ClientProtocol, parse_token_response
from avatarkit.session_config import SessionConfig
from tests._fuzz_targets import TARGETS, Target, mutate

FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _input(draw: st.DrawFn, target: Target) -> bytes:
    """Arbitrary bytes, a byte-mutated seed, or (where the target has one) a
    structure-aware mutation that keeps the outer format valid."""
    seeds = target.seeds()
    mode = draw(st.integers(0, 2))
    if mode == 0:
        return draw(st.binary(max_size=512))
    seed = seeds[draw(st.integers(0, len(seeds) - 1))]
    rng = random.Random(draw(st.integers(0, 2**32)))
    if mode == 2 and target.structured is not None:
        return target.structured(rng, seed)
    return mutate(rng, seed, draw(st.integers(1, 8)))


def _run(target: Target, data: bytes, workdir: Path) -> None:
    """Run ``target``; only its documented errors may come out. Warnings count
    as errors (numpy's overflow warning means a value was silently garbage)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with contextlib.suppress(target.allowed):
            target.run(data, workdir)


@pytest.mark.parametrize("name", sorted(TARGETS))
@FUZZ
@given(data=st.data())
def test_decoder_raises_only_its_documented_errors(
    name: str, data: st.DataObject, tmp_path: Path
) -> None:
    target = TARGETS[name]
    _run(target, data.draw(st.composite(lambda draw: _input(draw, target))()), tmp_path)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seed_corpus_is_real_input_the_decoder_reads(name: str, tmp_path: Path) -> None:
    """Mutations start from valid encodings: the client, service, Ogg, WAV,
    token, frames-file and payload seeds decode without error (the service
    seeds after the first are rejected only by the fresh, unconfigured side)."""
    target = TARGETS[name]
    seeds = target.seeds()
    if name == "server_message":
        return  # checked below: the configured side accepts each
    if name == "token_answer":
        assert [parse_token_response(200, seed) for seed in seeds[:2]] == [
            "st-0123456789abcdef"
        ] * 2
        return  # the others are error answers, each a SessionTokenError
    for seed in seeds:
        target.run(seed, tmp_path)


def test_service_seeds_are_accepted_after_configure() -> None:
    from avatarkit.protocol import ServerProtocol

    seeds = TARGETS["server_message"].seeds()
    server = ServerProtocol()
    assert isinstance(server.receive(seeds[0]), pb.ClientConfigureSession)
    for seed in seeds[3:]:
        assert server.receive(seed) is not None


# -- the hand-written encoders equal protobuf's, and decode back ------------------

_text = st.text(max_size=40)


@FUZZ
@given(conn=_text, req=_text, avatar=_text, end=st.booleans(), payload=st.binary(max_size=300))
def test_animation_envelope_equals_protobuf_and_the_client_reads_it(
    conn: str, req: str, avatar: str, end: bool, payload: bytes
) -> None:
    data = AnimationEnvelope(conn, req, avatar).encode(end, payload)
    reference = pb.Message(
        type=pb.MESSAGE_SERVER_RESPONSE_ANIMATION,
        server_response_animation=pb.ServerResponseAnimation(
            connection_id=conn, req_id=req, end=end, animation=payload, avatar_id=avatar
        ),
    ).SerializeToString()
    assert data == reference
    client = ClientProtocol()
    client.configure(SessionConfig())
    client.receive(TARGETS["client_message"].seeds()[0])  # confirm
    anim = client.receive(data)
    assert isinstance(anim, pb.ServerResponseAnimation)
    assert (anim.connection_id, anim.req_id, anim.end, anim.animation, anim.avatar_id) == (
        conn,
        req,
        end,
        payload,
        avatar,
    )


@FUZZ
@given(req=st.text(min_size=1, max_size=40), audio=st.binary(max_size=20000), end=st.booleans())
def test_audio_input_equals_protobuf(req: str, audio: bytes, end: bool) -> None:
    """Every request id is non-empty (generated ids): for those the bytes are equal."""
    reference = pb.Message(
        type=pb.MESSAGE_CLIENT_AUDIO_INPUT,
        client_audio_input=pb.ClientAudioInput(req_id=req, end=end, audio=audio),
    ).SerializeToString()
    assert encode_audio_input(req, audio, end) == reference


@FUZZ
@given(
    index=st.integers(0, 2**31 // 40),
    viseme=st.sampled_from(("sil", "aa", "PP", "ou")),
    weights=st.lists(
        st.integers(0, 1000), min_size=len(BLENDSHAPE_NAMES), max_size=len(BLENDSHAPE_NAMES)
    ),
)
def test_animation_payload_round_trips(index: int, viseme: str, weights: list[int]) -> None:
    shapes = {n: w / 1000 for n, w in zip(BLENDSHAPE_NAMES, weights, strict=True)}
    decoded = decode_animation(encode_frame(AnimationFrame(index, index * 40, viseme, shapes)))
    assert decoded["frame_index"] == index
    assert decoded["viseme"] == viseme
    assert decoded["blendshapes"] == pytest.approx(shapes, abs=1e-6)


@FUZZ
@given(
    token=st.text(min_size=1, max_size=60), key=st.sampled_from(("sessionToken", "session_token"))
)
def test_token_answer_is_the_token_or_a_session_token_error(token: str, key: str) -> None:
    import json

    from avatarkit import SessionTokenError

    body = json.dumps({key: token}).encode()
    try:
        assert parse_token_response(200, body) == token
    except SessionTokenError as exc:
        assert token not in str(exc)  # refused tokens are not echoed
        assert not (token.isascii() and token.isprintable() and " " not in token)


# -- findings of the fuzzers, kept as plain regression tests ---------------------


def _float_wav(samples: bytes) -> bytes:
    import struct

    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32)
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(samples))
    return b"RIFF" + struct.pack("<I", len(body) + len(samples)) + body + samples


def test_float_wav_with_huge_nan_and_infinite_samples_reads_as_clipped_pcm(
    tmp_path: Path,
) -> None:
    """Found by the wav_file target: float samples far outside [-1, 1] (or NaN,
    infinite) overflowed numpy's multiply (a RuntimeWarning, an error here) and
    came out as garbage; they clip to full scale and NaN reads as silence."""
    import struct

    path = tmp_path / "float.wav"
    values = (3.0e38, -3.0e38, float("inf"), float("-inf"), float("nan"), 0.5, -2.0)
    path.write_bytes(_float_wav(struct.pack(f"<{len(values)}f", *values)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pcm, rate = read_audio_file(path)
    assert rate == 16000
    assert pcm.tolist() == [32767, -32768, 32767, -32768, 0, 16384, -32768]


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ('{"type": "frame", "payload": 5}', "payload"),
        ('{"type": "frame", "payload": ["AAAA"]}', "payload"),
        ('{"type": "frame", "payload": "", "received_at": 1' + "0" * 400 + "}", "received_at"),
    ],
)
def test_frames_file_with_wrong_json_types_is_a_damaged_file_error(
    line: str, what: str, tmp_path: Path
) -> None:
    """Found by the frames_file target: a payload that is not a string raised
    base64's TypeError and a huge integer time float()'s OverflowError; both
    are a damaged file (ValueError naming the line and field)."""
    path = tmp_path / "frames.jsonl"
    header = '{"type": "header", "format": "avatarkit-frames"}\n'
    path.write_text(header + line + "\n")
    with pytest.raises(ValueError, match=rf"frames\.jsonl:2: .*{what}"):
        read_frames_file(path)


@pytest.mark.parametrize("status", ["\u00b2", "1\u00b2", "\u2460", " \u00b3 "])
@pytest.mark.parametrize("http_status", [200, 401])
def test_token_answer_with_a_superscript_status_is_a_session_token_error(
    status: str, http_status: int
) -> None:
    """Found by scripts/fuzz.py (token_answer): a ``status`` of digits ``int()``
    cannot read (superscripts, circled digits: ``str.isdigit()`` is true for
    them) raised ``ValueError`` out of ``parse_error_body``, which never raises;
    such a status is no status."""
    from avatarkit import SessionTokenError
    from avatarkit.errors import parse_error_body

    body = json.dumps({"errors": [{"status": status, "title": "denied"}]}).encode()
    assert parse_error_body(body).status is None
    with pytest.raises(SessionTokenError) as info:
        parse_token_response(http_status, body)
    assert info.value.http_status == http_status
