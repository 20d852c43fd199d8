"""`divita serve`: genre predictions over HTTP (optional extra: pip install 'divita[serve]')."""

from __future__ import annotations

from divita.cli._extraction_options import add_extraction_options
from divita.cli._limits import add_limit_options

INSTALL_HINT = "the service needs the serve extra: pip install 'divita[serve]'"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="serve genre predictions over HTTP (an API, a page to try it, jobs that survive a crash)",
        description="Start an HTTP service on a trained checkpoint: POST /v1/predictions takes a trailer (multipart "
        "field `file`) and queues a job; GET /v1/predictions/ID gives its state and result (the object "
        "`divita predict --json` prints); GET / is a page to drop a file on; /docs is the OpenAPI page. Jobs and "
        "uploads live in --data-dir and survive a crash: start again on the same directory and they finish. "
        f"Optional extra: {INSTALL_HINT.split(': ', 1)[1]}.",
    )
    p.add_argument("--checkpoint", required=True, help="best.ckpt of a `divita train` run on `divita extract` stores")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--data-dir", default="divita-serve", help="job table, uploads and results (default ./divita-serve)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="jobs run at a time, each in its own worker process (default 1: on a CPU one job uses every core; "
        "with --ray: one per GPU of the cluster, else one per --cpus-per-worker CPUs)",
    )
    p.add_argument("--max-upload-mb", type=float, default=1024, help="largest upload accepted, MiB (default 1024)")
    p.add_argument(
        "--max-queue", type=int, default=100, help="jobs waiting before uploads are refused with 503 (default 100)"
    )
    p.add_argument(
        "--token",
        default=None,
        help="require `Authorization: Bearer TOKEN` on the API (default: $DIVITA_TOKEN, else none)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    add_extraction_options(p, ("runtime",))
    p.add_argument(
        "--weights",
        action="append",
        default=[],
        metavar="BACKBONE=PATH",
        help="weights file for a backbone whose recorded weights cannot be fetched here",
    )
    p.add_argument(
        "--no-timeline", action="store_true", help="serve no timeline pictures (otherwise drawn on their first request)"
    )
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add_limit_options(p, max_duration="15m", max_pixels="3840x2160")
    p.add_argument(
        "--max-job-seconds",
        type=float,
        default=None,
        metavar="S",
        help="stop a job (failed) after S seconds (default: 10x the time its video's duration takes, measured at "
        "start-up on a short generated clip)",
    )
    p.add_argument(
        "--worker-memory-mb",
        type=float,
        default=None,
        metavar="MB",
        help="cap each worker's resident memory (RSS, watched every 0.1 s; 0.25 s on Ray): past it the worker is "
        "killed and started again, and its job fails naming the cap (default: no cap)",
    )
    p.add_argument(
        "--keep-uploads",
        default="24h",
        metavar="DURATION",
        help="remove a job's upload this long after the job ends (seconds, or e.g. 30m, 24h; 'none': keep; "
        "results are kept) (default 24h)",
    )
    p.add_argument(
        "--max-data-mb",
        type=float,
        default=None,
        metavar="MB",
        help="refuse uploads with 507 while the data directory holds this much (default: no limit)",
    )
    p.add_argument(
        "--isolation",
        choices=["process", "thread"],
        default="process",
        help="process: each worker in its own process, restarted when it dies (default); thread: in the "
        "server's process (no crash isolation, no --max-job-seconds, no --worker-memory-mb)",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="run the workers as Ray actors on a cluster (ADDRESS: auto, HOST:PORT or ray://HOST:PORT; none: a new "
        "local instance); the HTTP front and the job table stay here",
    )
    p.add_argument(
        "--cpus-per-worker",
        type=float,
        default=1.0,
        metavar="N",
        help="with --ray on a cluster without GPUs: CPUs each worker actor takes (default 1)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    import ipaddress
    import os
    import signal
    import socket
    import sys

    from divita.errors import DivitaError

    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn
    except ImportError:
        raise DivitaError(None, INSTALL_HINT) from None
    from divita.cli._limits import limits_from_args, parse_duration
    from divita.hardware import default_threads, resolve_device
    from divita.serving.app import create_app
    from divita.serving.service import ServeConfig, Service

    token = args.token if args.token is not None else os.environ.get("DIVITA_TOKEN") or None
    weights = {}
    for item in args.weights:
        name, sep, path = item.partition("=")
        if not sep:
            raise DivitaError(None, f"--weights takes BACKBONE=PATH, got {item!r}")
        weights[name] = path
    try:
        keep = parse_duration(args.keep_uploads)
    except ValueError as e:
        raise DivitaError(None, f"--keep-uploads: {e}") from None
    limits = limits_from_args(args)
    device = str(resolve_device(args.device))
    workers = args.workers if args.workers is not None else (0 if args.ray else 1)
    threads = None
    if device == "cpu" and workers > 1:
        threads = max(1, default_threads() // workers)  # the cores shared between the jobs
        if args.isolation == "thread" and not args.ray:
            import torch

            torch.set_num_threads(threads)
    if not _is_loopback(args.host, ipaddress) and token is None:
        print(
            f"divita serve: warning: listening on {args.host} without --token: anyone who reaches this port can "
            "upload files and read every result",
            file=sys.stderr,
        )
    config = ServeConfig(
        checkpoint=args.checkpoint,
        data_dir=args.data_dir,
        workers=workers,
        max_upload_mb=args.max_upload_mb,
        max_queue=args.max_queue,
        token=token,
        device=device,
        runtime=args.runtime,
        weights=weights,
        timeline=not args.no_timeline,
        limits=limits,
        max_job_seconds=args.max_job_seconds,
        isolation="ray" if args.ray else args.isolation,
        worker_memory_mb=args.worker_memory_mb,
        worker_threads=threads,
        keep_uploads_s=keep,
        max_data_mb=args.max_data_mb,
        ray_address=args.ray,
        cpus_per_worker=args.cpus_per_worker,
    )
    configure_logs(args.log_level)
    service = Service.open(config)
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
    except OSError as e:
        service.close()
        raise DivitaError(None, f"cannot listen on {args.host}:{args.port} ({e.strerror or e})") from None
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(
        f"divita serve: {args.checkpoint} on http://{shown}:{port} (data in {args.data_dir}, "
        f"{service.workers} worker{'s' if service.workers != 1 else ''} ({service.isolation}))",
        flush=True,
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), log_level=args.log_level, timeout_graceful_shutdown=5, access_log=False)
    )
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again for the handler found here
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    print("divita serve: stopped", file=sys.stderr)
    return 0


def configure_logs(level: str) -> None:
    """The access and job logs (one JSON object a line) on stderr at ``--log-level`` info or debug."""
    import logging
    import sys

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("divita.serve.access", "divita.serve.jobs"):
        logger = logging.getLogger(name)
        logger.setLevel(getattr(logging, level.upper()))
        logger.addHandler(handler)
        logger.propagate = False


def _is_loopback(host: str, ipaddress) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
