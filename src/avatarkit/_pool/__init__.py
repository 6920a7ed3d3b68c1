"""Implementation of :mod:`avatarkit.pool` (private; import from ``avatarkit.pool``).

* :mod:`.lease`: :class:`SessionLease` and each pooled session's routing state;
* :mod:`.opener`: making and opening sessions from keywords or a factory;
* :mod:`.base`: shared state, replacing lost sessions, session callbacks;
* :mod:`.core`: :class:`SessionPool`, its public API and leasing.

The retry policy is :mod:`avatarkit._retry`.
"""
