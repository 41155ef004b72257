"""synthia-rt: run the service (serve), prepare its database (migrate), create an admin.

Exit codes: 0 done, 1 failed, 2 configuration error, 3 a backing service is unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import os
import shutil
import sys
import tempfile
from urllib.parse import urlparse

from synthia_rt.settings import Settings, SettingsError

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3
CONNECT_TIMEOUT = 5.0  # seconds the start-up check waits for PostgreSQL or Redis

DESCRIPTION = "Real-time backend of Synthia Style: authenticated WebSockets, streaming analyses."
EPILOG = (
    "Settings come from the environment (every variable is listed in .env.example). "
    "Exit codes: 0 done, 1 failed, 2 configuration error, 3 PostgreSQL or Redis unreachable."
)


class Unreachable(Exception):
    """A backing service did not answer; ``str()`` is the one line an operator reads."""


def _where(url: str, default_port: int) -> str:
    parsed = urlparse(url)
    if parsed.scheme == "unix":
        return parsed.path or "?"
    try:
        port = parsed.port or default_port
    except ValueError:
        port = default_port
    return f"{parsed.hostname or 'localhost'}:{port}"


def _reason(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while cause is not None:  # client libraries wrap the socket error that says it best
        if isinstance(cause, TimeoutError):
            return f"no answer within {CONNECT_TIMEOUT:g} s"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


async def _check_postgres(url: str) -> None:
    import asyncpg

    try:
        conn = await asyncpg.connect(dsn=url, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise Unreachable(
            f"cannot reach PostgreSQL at {_where(url, 5432)} (DATABASE_URL): {_reason(exc)}"
        ) from exc
    await conn.close()


async def _check_redis(url: str) -> None:
    from redis import asyncio as aioredis
    from redis.exceptions import RedisError

    if not url.startswith(("redis://", "rediss://", "unix://")):
        return  # memory:// needs nothing; other schemes are checked by their own client
    client = aioredis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=CONNECT_TIMEOUT
    )
    try:
        await client.ping()
    except (OSError, TimeoutError, RedisError) as exc:
        raise Unreachable(
            f"cannot reach Redis at {_where(url, 6379)} (REDIS_URL): {_reason(exc)}"
        ) from exc
    finally:
        await client.aclose()


def _preflight(settings: Settings, *, redis: bool) -> None:
    """Fail fast, with one line, when a backing service of ``settings`` does not answer."""

    async def check() -> None:
        db_url = settings.effective_database_url
        if db_url.startswith(("postgres://", "postgresql://")):
            await _check_postgres(db_url)
        if redis:
            await _check_redis(settings.effective_redis_url)

    asyncio.run(check())


def _raise_fd_limit() -> None:
    """One file descriptor per socket: lift the soft limit to the hard one (10k sockets need it)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    if args.workers > 1 and settings.embedded:
        print(
            "synthia-rt: --workers > 1 needs shared backends. The embedded default keeps state in\n"
            "this process (SQLite file, in-process broker), so a second worker would not see it.\n"
            "Set DATABASE_URL=postgresql://… and REDIS_URL=redis://… (see .env.example), or use\n"
            "--workers 1.",
            file=sys.stderr,
        )
        return 2
    _preflight(settings, redis=True)
    _raise_fd_limit()
    # Thousands of long-lived sockets keep ~200 tracked objects each; CPython's default GC
    # thresholds then run full collections that stall the loop 0.3–0.5 s (measured in bench/).
    gc.set_threshold(50_000, 20, 100)
    header_room = 24  # chunk header: 16-byte id + 8-byte offset
    config = uvicorn.Config(
        "synthia_rt.app:app_factory",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        ws_max_size=max(settings.max_chunk_bytes + header_room, settings.max_message_bytes),
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        ws_per_message_deflate=settings.ws_per_message_deflate,
        log_level=settings.log_level.lower(),
        access_log=False,  # our middleware logs requests as JSON, without query strings
        # The app resolves client addresses itself (clientaddr.py, FORWARDED_ALLOW_IPS). uvicorn's
        # own X-Forwarded-For handling trusts 127.0.0.1 by default (and reads the same variable
        # name): it would rewrite the peer before the app sees it, so it stays off.
        proxy_headers=False,
        forwarded_allow_ips="",
        timeout_graceful_shutdown=10,
        lifespan="on",
    )
    if args.workers > 1:
        from uvicorn.supervisors import Multiprocess

        # prometheus-client aggregates workers through files; the directory must exist, be
        # empty at start, and be in the environment before any worker imports the client.
        prom_dir = settings.prometheus_multiproc_dir or tempfile.mkdtemp(prefix="synthia-prom-")
        shutil.rmtree(prom_dir, ignore_errors=True)
        os.makedirs(prom_dir, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = prom_dir

        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        uvicorn.Server(config).run()
    return 0


def _migrate(settings: Settings) -> int:
    from synthia_rt.store.engine import migrate

    _preflight(settings, redis=False)
    asyncio.run(migrate(settings.effective_database_url))
    return 0


def _create_admin(args: argparse.Namespace, settings: Settings) -> int:
    from pydantic import TypeAdapter, ValidationError

    from synthia_rt.rest.schemas import Email
    from synthia_rt.store.admin import create_admin

    try:  # the same rule as POST /auth/register
        email: str = TypeAdapter(Email).validate_python(args.email)
    except ValidationError:
        print(f"synthia-rt: {args.email!r} is not a valid email address", file=sys.stderr)
        return EXIT_CONFIG
    _preflight(settings, redis=False)
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Repeat: "):
            print("passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        print("password must have at least 8 characters", file=sys.stderr)
        return 1
    user_id = asyncio.run(create_admin(settings, email, password))
    print(f"admin {email} ready (id {user_id})")
    return 0


BENCH_MOVED = (
    "synthia-rt: the load bench is not part of the installed package; run it from a source "
    "checkout with `python -m bench` (see docs/performance.md)"
)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # the bench is not part of the installed package
        print(BENCH_MOVED, file=sys.stderr)
        return 2
    from synthia_rt import __version__

    formatter = argparse.ArgumentDefaultsHelpFormatter
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback of a failure",
    )
    parser = argparse.ArgumentParser(
        prog="synthia-rt",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=formatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"synthia-rt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=text,
            description=text,
            epilog=EPILOG,
            formatter_class=formatter,
            parents=[common],
        )

    serve = command("serve", "run the HTTP and WebSocket server")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes sharing the port (more than 1 needs DATABASE_URL and REDIS_URL)",
    )
    command("migrate", "apply pending database migrations (safe to run concurrently)")
    admin = command(
        "create-admin", "create an admin or promote a user (password from a prompt or stdin)"
    )
    admin.add_argument("email", help="the admin's email address")
    command("asyncapi", "print the AsyncAPI 3 document of the socket protocol")
    command("vapid-keys", "print a new VAPID key pair for Web Push (VAPID_PRIVATE_KEY=…)")
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    try:
        return _run(args)
    except Unreachable as exc:
        if debug:
            raise
        print(f"synthia-rt: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - an operator gets one line; --debug the traceback
        if debug:
            raise
        print(
            f"synthia-rt: {args.command} failed: {type(exc).__name__}: {_reason(exc)} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED


def _run(args: argparse.Namespace) -> int:
    if args.command == "asyncapi":
        import orjson

        from synthia_rt.realtime.asyncapi import build

        sys.stdout.write(
            orjson.dumps(build(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
        )
        return 0
    if args.command == "vapid-keys":
        from synthia_rt.push.vapid import generate

        private, public = generate()
        sys.stdout.write(
            f"VAPID_PRIVATE_KEY={private}\n# public key (GET /api/v1/push/vapid-public-key): {public}\n"
        )
        return 0
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"synthia-rt: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "serve":
        return _serve(args, settings)
    if args.command == "migrate":
        return _migrate(settings)
    if args.command == "create-admin":
        return _create_admin(args, settings)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
