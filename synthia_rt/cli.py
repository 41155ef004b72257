"""``synthia-rt serve | migrate | create-admin | asyncapi``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import os
import shutil
import sys
import tempfile

from synthia_rt.settings import Settings, SettingsError


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

    asyncio.run(migrate(settings.effective_database_url))
    return 0


def _create_admin(args: argparse.Namespace, settings: Settings) -> int:
    from synthia_rt.store.admin import create_admin

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
    user_id = asyncio.run(create_admin(settings, args.email, password))
    print(f"admin {args.email} ready (id {user_id})")
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
    parser = argparse.ArgumentParser(prog="synthia-rt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP + WebSocket server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    sub.add_parser("migrate", help="apply database migrations (safe to run concurrently)")
    admin = sub.add_parser("create-admin", help="create or promote an admin (password from prompt or stdin)")
    admin.add_argument("email")
    sub.add_parser("asyncapi", help="print the AsyncAPI 3 document of the socket protocol")
    args = parser.parse_args(argv)

    if args.command == "asyncapi":
        import orjson

        from synthia_rt.realtime.asyncapi import build

        sys.stdout.write(orjson.dumps(build(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")
        return 0
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"synthia-rt: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(args, settings)
    if args.command == "migrate":
        return _migrate(settings)
    if args.command == "create-admin":
        return _create_admin(args, settings)
    return 1


if __name__ == "__main__":
    sys.exit(main())
