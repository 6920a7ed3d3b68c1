"""avatarkit 0.1.7's module path for :func:`generate_log_id` (see :mod:`avatarkit.ids`)."""

from .ids import generate_log_id

__all__ = ["generate_log_id"]
