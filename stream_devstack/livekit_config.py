"""What a loopback-only ``livekit-server`` is told: its ports, its YAML config (keys,
webhook, ICE restricted to ``127.0.0.1``) and the environment it runs in.

Apart from :mod:`stream_devstack.livekit_process` because this is pure data, decided
before the process exists: the process module starts, waits for and stops the server and
takes from here what to write into its config file and its environment. Every rule that
keeps the sandbox on loopback lives here.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["LOOPBACK", "ServerPorts", "pick_ports", "server_config", "to_yaml", "write_config",
           "child_env"]

#: The only address the server listens on and offers ICE candidates for.
LOOPBACK = "127.0.0.1"

# livekit-server (urfave/cli) maps *every* config option to an env var (LIVEKIT_PORT,
# LIVEKIT_KEYS, LIVEKIT_RTC_USE_EXTERNAL_IP, NODE_IP, UDP_PORT, ...). Env values override
# the config file, so an ambient LIVEKIT_KEYS or NODE_IP in a developer's shell would silently
# break our loopback sandbox. We strip them from the child's environment.
_STRIPPED_ENV_PREFIXES = ("LIVEKIT_",)
_STRIPPED_ENV_NAMES = frozenset(
    {"NODE_IP", "UDP_PORT", "REDIS_HOST", "REDIS_PASSWORD"}
)


class ServerPorts(NamedTuple):
    """The ports one server run uses: signalling/HTTP, ICE/TCP, the single ICE/UDP mux."""

    http: int
    rtc_tcp: int
    udp: int


def _free_port(kind: int, host: str) -> int:
    """Ask the kernel for a currently free port of the given socket kind on ``host``.

    There is an unavoidable race between closing the probe socket and the server binding
    it; :meth:`LiveKitServer.start` retries with fresh ports if the server reports
    "address already in use".
    """
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def pick_ports() -> ServerPorts:
    """Fresh free ports for one launch (see :func:`_free_port` for the race)."""
    http_port = _free_port(socket.SOCK_STREAM, LOOPBACK)
    # livekit binds the ICE/TCP listener on all interfaces, so probe the wildcard.
    rtc_tcp_port = _free_port(socket.SOCK_STREAM, "0.0.0.0")
    while rtc_tcp_port == http_port:
        rtc_tcp_port = _free_port(socket.SOCK_STREAM, "0.0.0.0")
    udp_port = _free_port(socket.SOCK_DGRAM, LOOPBACK)
    return ServerPorts(http_port, rtc_tcp_port, udp_port)


def server_config(ports: ServerPorts, *, api_key: str, api_secret: str,
                  webhook_urls: Sequence[str], log_level: str,
                  redis_address: str | None = None,
                  webhook_events: Collection[str] | None = None) -> dict[str, Any]:
    """The config mapping for one launch; a ``webhook`` section signed with ``api_key`` is
    added only when there are ``webhook_urls``, a ``redis`` section (LiveKit's multi-node
    mode: nodes sharing one Redis route rooms among themselves) only with ``redis_address``
    (``host:port``). ``webhook_events``: the only events sent (LiveKit's
    ``filter_params.include_events``); ``None`` sends all."""
    config: dict[str, Any] = {
        "port": ports.http,
        "bind_addresses": [LOOPBACK],
        "rtc": {
            "tcp_port": ports.rtc_tcp,
            "udp_port": ports.udp,
            "use_external_ip": False,
            "node_ip": LOOPBACK,
            "enable_loopback_candidate": True,
            "ips": {"includes": [f"{LOOPBACK}/32"]},
        },
        "keys": {api_key: api_secret},
        "logging": {"level": log_level},
    }
    if webhook_urls:
        config["webhook"] = {"api_key": api_key, "urls": list(webhook_urls)}
        if webhook_events is not None:
            config["webhook"]["filter_params"] = {"include_events": sorted(webhook_events)}
    if redis_address:
        config["redis"] = {"address": redis_address}
    return config


def write_config(path: Path, config: Mapping[str, Any]) -> None:
    """Write ``config`` as YAML to a new file readable by its owner only (it holds the
    secret); an existing file is an error, never overwritten."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(to_yaml(config) + "\n")


def child_env() -> dict[str, str]:
    """This process's environment without the variables livekit-server would read as
    config (they would override the file)."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_STRIPPED_ENV_PREFIXES) and key not in _STRIPPED_ENV_NAMES
    }


def to_yaml(value: Any, indent: int = 0) -> str:
    """Minimal YAML emitter for the nested dict/list/scalar config we generate.

    PyYAML is not a project dependency; JSON-quoted strings are valid YAML double-quoted
    scalars, so quoting is delegated to :func:`json.dumps` (no YAML injection via names).
    """
    pad = "  " * indent
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        lines: list[str] = []
        for key, item in value.items():
            rendered_key = json.dumps(str(key))
            if isinstance(item, (Mapping, list, tuple)) and item:
                lines.append(f"{pad}{rendered_key}:\n{to_yaml(item, indent + 1)}")
            else:
                lines.append(f"{pad}{rendered_key}: {to_yaml(item, indent + 1)}")
        return "\n".join(lines)
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        lines = []
        for item in value:
            if isinstance(item, (Mapping, list, tuple)) and item:
                raise ValueError("nested collections inside lists are not supported")
            lines.append(f"{pad}- {to_yaml(item, indent + 1)}")
        return "\n".join(lines)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise TypeError(f"unsupported config value type: {type(value).__name__}")
