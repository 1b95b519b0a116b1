"""A private PostgreSQL cluster (``initdb`` + ``pg_ctl``) on a free loopback port.

Shared by the engine's database tests and :class:`stream_devstack.cluster.ClusterStack`:
both need a throw-away server that installs nothing and leaves nothing behind. The
binaries come from the system (``make system`` installs Debian's ``postgresql``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from stream_devstack.stack import free_port

__all__ = ["PostgresCluster"]


class PostgresCluster:
    """A private PostgreSQL cluster (initdb + pg_ctl) on a free loopback port.

    PostgreSQL refuses to run as root, so as root the cluster is created and run as the
    unprivileged ``nobody`` (via ``setpriv``); nothing is installed or added to the system.
    """

    def __repr__(self) -> str:
        return f"PostgresCluster(port={self.port}, root={str(self.root)!r})"

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="utd-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self.user = "utd"
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                raise RuntimeError("running as root and setpriv is missing")
            os.chown(self.root, 65534, 65534)
            self._prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]

    def _run(self, *args: str, timeout: float = 60.0) -> None:
        env = {**os.environ, "LC_ALL": "C", "HOME": str(self.root)}
        done = subprocess.run([*self._prefix, *args], env=env, capture_output=True,
                              timeout=timeout, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): "
                               f"{done.stdout.decode(errors='replace')[-500:]}"
                               f"{done.stderr.decode(errors='replace')[-1500:]}")

    @staticmethod
    def tool(name: str) -> str | None:
        """``name`` on $PATH, else in a Debian-style versioned directory."""
        found = shutil.which(name)
        if found is None:
            candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
            found = str(candidates[-1]) if candidates else None
        return found

    def start(self) -> PostgresCluster:
        initdb, pg_ctl = self.tool("initdb"), self.tool("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise RuntimeError("initdb/pg_ctl not found (on $PATH or /usr/lib/postgresql)")
        self._run(initdb, "-D", str(self.data), "-U", self.user, "--auth=trust",
                  "--no-locale", "-E", "UTF8", "--no-sync")
        last: Exception | None = None
        for _attempt in range(3):  # a probed port can be taken before the server binds it
            self.port = free_port()
            options = (f"-h 127.0.0.1 -p {self.port} -k {self.root} -F "
                       "-c full_page_writes=off -c max_connections=100")
            try:
                self._run(pg_ctl, "-D", str(self.data), "-o", options,
                          "-l", str(self.root / "postgres.log"), "-w", "-t", "30", "start")
                return self
            except RuntimeError as exc:
                last = exc
        raise RuntimeError(f"postgres did not start: {last}")

    def create_database(self) -> str:
        """A fresh database; its SQLAlchemy URL for the engine."""
        import psycopg

        name = "utd_" + secrets.token_hex(4)
        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user,
                             dbname="postgres", autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        pg_ctl = self.tool("pg_ctl")
        if pg_ctl and (self.data / "postmaster.pid").exists():
            try:
                self._run(pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "-t", "30",
                          "stop")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.root, ignore_errors=True)
