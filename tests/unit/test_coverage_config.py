"""The two coverage configurations (main run, run with the integrations' extras) stay in step."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest's own dependency on 3.10
    import tomli as tomllib

from tests._helpers import ROOT


def test_the_extras_configuration_is_pyproject_without_the_integrations_omit() -> None:
    main = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["coverage"]
    extras = tomllib.loads((ROOT / "tests" / "coverage-all.toml").read_text())["tool"]["coverage"]
    assert main["run"].pop("omit") == ["*/avatarkit/integrations/_*"]
    assert extras == main
