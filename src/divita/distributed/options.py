"""Where and how wide ``divita extract --ray`` runs: :class:`RayOptions` (checked when made), the pool's size on a
given cluster (:func:`size_pool`), and what a run measured (:class:`RayExtractStats`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from divita.distributed.cluster import is_local_address
from divita.errors import DivitaError

ACTOR_RESTARTS = 3  # per encoder actor
VIDEO_RETRIES = 2  # driver-level resubmissions of a video whose pipeline failed for a Ray reason
CHUNK_WINDOW = 4  # unanswered chunks per video (bounds the object store held by one video)


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide :func:`~divita.distributed.extract.extract_ray` runs (see it for each field); a negative
    resource, or fewer than one video in flight or unanswered batch, is a one-line DivitaError."""

    address: str | None = None
    encoders: int | None = None
    encoder_gpus: float | None = None
    encoder_cpus: float = 1.0
    prepare_cpus: float = 1.0
    prepare_gpus: float = 0.0
    in_flight: int | None = None
    chunk_window: int = CHUNK_WINDOW
    retries: int = VIDEO_RETRIES

    def __post_init__(self):
        for what, v in (
            ("encoder CPUs", self.encoder_cpus),
            ("encoder GPUs", self.encoder_gpus),
            ("prepare CPUs", self.prepare_cpus),
            ("prepare GPUs", self.prepare_gpus),
            ("retries", self.retries),
        ):
            if v is not None and v < 0:
                raise DivitaError(None, f"{what} must not be negative, got {v}")
        if self.in_flight is not None and self.in_flight < 1:
            raise DivitaError(None, f"videos in flight must be at least 1, got {self.in_flight}")
        if self.chunk_window < 1:
            raise DivitaError(None, f"unanswered batches per video must be at least 1, got {self.chunk_window}")


@dataclass
class RayExtractStats:
    """What the Ray run did beyond the summary: per-video latency and where the time went."""

    encoders: int = 0
    in_flight: int = 0
    startup_s: float = 0.0  # connect + actors loaded
    retries: int = 0
    video_wall: list[float] = field(default_factory=list)  # submit -> result, per finished video
    prepare_wall: list[float] = field(default_factory=list)
    waiting_for_encoders: list[float] = field(default_factory=list)


def size_pool(o: RayOptions, cluster: dict, started: bool, log: Callable[[str], None]) -> tuple[int, float, int]:
    """(encoder actors, GPUs each, videos kept in flight) for options ``o`` on a cluster of ``cluster`` resources
    (``ray.cluster_resources()``). ``started``: whether this run started Ray; on a cluster it did not start (an
    autoscaler may add nodes) too few CPUs is a warning, else a DivitaError, as are too few GPUs."""
    gpus = float(cluster.get("GPU", 0))
    encoder_gpus = o.encoder_gpus if o.encoder_gpus is not None else (1.0 if gpus > 0 else 0.0)
    if o.encoders is not None:
        encoders = o.encoders
    else:
        encoders = max(1, int(gpus // encoder_gpus)) if encoder_gpus > 0 else 1
    if encoders < 1:
        raise DivitaError(None, f"need at least one encoder actor, got {encoders}")
    if encoder_gpus > 0 and gpus < encoder_gpus:
        raise DivitaError(
            o.address or "local", f"encoder actors want {encoder_gpus:g} GPU each but the cluster has {gpus:g} GPUs"
        )
    cpus = float(cluster.get("CPU", 0))
    spare = cpus - encoders * o.encoder_cpus
    if o.prepare_cpus > 0 and spare < o.prepare_cpus:
        msg = (
            f"the Ray cluster has {cpus:g} CPUs: {encoders} encoder actor(s) x {o.encoder_cpus:g} CPU leave "
            f"{max(0.0, spare):g}, less than one prepare task needs ({o.prepare_cpus:g}); "
            "lower the encoder CPUs or add nodes"
        )
        if is_local_address(o.address) or started is False:
            raise DivitaError(None, msg)
        log(f"divita extract: warning: {msg} (waiting for an autoscaler)")
    slots = max(1, int(spare // o.prepare_cpus)) if o.prepare_cpus > 0 else 2 * encoders
    return encoders, encoder_gpus, int(o.in_flight or (slots + encoders))


__all__ = ["ACTOR_RESTARTS", "CHUNK_WINDOW", "VIDEO_RETRIES", "RayExtractStats", "RayOptions", "size_pool"]
