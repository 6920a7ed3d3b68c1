"""The ``avatarkit`` command: ``demo``, ``send``, ``inspect`` and ``serve``.

::

    avatarkit demo [--fast] [--open] [--out FRAMES.jsonl]
    avatarkit send AUDIO [--sample-rate N] [--format pcm|ogg_opus] [--chunk-ms 40]
                         [--realtime] [--bitrate BPS] [--out FRAMES.jsonl|FRAMES.bin]
                         [--force]
    avatarkit inspect FRAMES [--plot OUT.png] [--html OUT.html] [--audio FILE] [--json]
    avatarkit serve [...]          (the local avatar service, see ``avatarkit serve -h``)

``demo`` and ``send`` take the endpoint and credentials from ``--api-key``,
``--app-id``, ``--avatar-id``, ``--console-endpoint`` and ``--ingress-endpoint``
or from ``AVATARKIT_API_KEY``, ``AVATARKIT_APP_ID``, ``AVATARKIT_AVATAR_ID``,
``AVATARKIT_CONSOLE_ENDPOINT`` and ``AVATARKIT_INGRESS_ENDPOINT`` (a flag wins
over its variable). With none of them set, they start the embedded local
avatar service in this process and say so on stderr; with some but not all
set, they stop and name what is missing.

Every command reports a failure as one line on stderr,
``error: <code>: <message> — <what to do>``, and exits with status 1 (2 for
a command line argparse rejects, 130 on Ctrl-C); ``--debug`` adds the
traceback and the SDK's debug log.

The package's modules: :mod:`.parser` (argument parser, ``main``, error
lines), :mod:`.target` (which service to talk to), :mod:`.stream` (``demo``
and ``send``), :mod:`.frames_file` (the frames-file format, written by
``send``/``demo`` and read by ``inspect``), :mod:`.inspect_frames`
(``inspect``), :mod:`.replay_html` (``inspect --html``), :mod:`.viewer_open`
(``demo --open``) and :mod:`._common`.
"""

from __future__ import annotations

from ._common import FRAME_MS, CLIError
from ._frames_file import (
    JSONL_FORMAT,
    JSONL_VERSION,
    FrameRecord,
    FramesFile,
    FrameSink,
    NotAFramesFileError,
    read_frames_file,
)
from ._inspect_frames import PLOT_SHAPES, plot_frames, summarize
from ._parser import build_parser, error_line, main, main_async
from ._stream import Clip, Progress, StreamResult, load_clip, stream_clip
from ._summary import PACED_FRACTION, check_out_path, pacing_label, print_summary
from ._target import Target, connect_target

# The names avatarkit.cli had as one module, kept importable from here.
__all__ = [
    "FRAME_MS",
    "JSONL_FORMAT",
    "JSONL_VERSION",
    "PACED_FRACTION",
    "PLOT_SHAPES",
    "CLIError",
    "Clip",
    "FrameRecord",
    "FrameSink",
    "FramesFile",
    "NotAFramesFileError",
    "Progress",
    "StreamResult",
    "Target",
    "build_parser",
    "check_out_path",
    "connect_target",
    "error_line",
    "load_clip",
    "main",
    "main_async",
    "pacing_label",
    "plot_frames",
    "print_summary",
    "read_frames_file",
    "stream_clip",
    "summarize",
]
