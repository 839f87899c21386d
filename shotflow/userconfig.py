"""The user's own settings: ``config.toml`` in the platform's config folder.

    ~/.config/shotflow/config.toml         (Linux; platformdirs' user_config_dir elsewhere,
                                             or the file named by $SHOTFLOW_CONFIG)
    remote = "s3://team-bucket/shotflow"   # the team cache (see shotflow.remote)
    trusted_remotes = ["s3://team-bucket"] # cloud remotes a storyboard's remote: may name (your credentials)
    allow_paths = ["~/studio/shared-refs"] # folders storyboards may read outside their project
    allow_private_urls = false             # reference URLs on loopback and private networks
    max_file_mb = 16                       # the largest YAML file or template read

The one reader of the file: ``trust`` reads its settings through it. An unknown setting
is an error (a typo would otherwise loosen or change nothing, silently).

It belongs to the user, not to a project: a storyboard can never set what this file
sets, and values here apply to every project the user works on. A missing file is
an empty config; a damaged one is an error naming the file and line.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from .errors import ConfigError


def config_path() -> Path:
    env = os.environ.get("SHOTFLOW_CONFIG")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("shotflow", appauthor=False)) / "config.toml"


SETTINGS = ("allow_paths", "allow_private_urls", "max_file_mb", "remote", "trusted_remotes")


@cache
def load_from(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read your shotflow config {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", hint="fix the file, or move it away") from None
    unknown = sorted(set(data) - set(SETTINGS))
    if unknown:
        from .errors import did_you_mean

        raise ConfigError(
            f"{path}: unknown setting '{unknown[0]}'",
            hint=did_you_mean(unknown[0], SETTINGS) or "settings: " + ", ".join(SETTINGS),
        )
    return data


def load() -> dict[str, Any]:
    """The user's config as a dict (empty when there is none)."""
    return load_from(config_path())


def get(name: str, kind: type) -> Any:
    """One setting, checked to be of ``kind``; None when unset."""
    value = load().get(name)
    if value is not None and not isinstance(value, kind):
        raise ConfigError(f"{config_path()}: '{name}' must be a {kind.__name__}, not {type(value).__name__}")
    return value
