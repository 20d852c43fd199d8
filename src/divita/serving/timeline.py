"""A done job's timeline picture (``divita predict --plot``), drawn on its first request, not in the job, so
that a result is ready as soon as the prediction is."""

from __future__ import annotations

import logging
from pathlib import Path

from divita.serving.models import Refusal

log = logging.getLogger("divita.serve")


def draw_timeline(service, job) -> Path:
    """The done job's timeline picture in ``results/``, drawn from its result and upload on the first call
    (written atomically by ``plot_timeline``, then recorded in the job's row)."""
    store = service.store
    if job.timeline and (store.results / job.timeline).is_file():
        return store.results / job.timeline
    from divita.inference.predict import plot_timeline

    upload = store.uploads / job.upload
    name = f"{job.id}.png"
    with service.drawing:
        if (store.results / name).is_file():  # drawn by a request that held the lock before this one
            return store.results / name
        if not upload.is_file():
            raise Refusal(404, f"prediction {job.id}: its upload is gone, so its timeline cannot be drawn")
        try:
            plot_timeline(job.result, store.results / name, video=upload)  # written atomically
        except Exception as e:  # a picture that cannot be drawn: the genres stand without it
            if not upload.is_file():  # removed by the retention sweep while drawing
                raise Refusal(
                    404, f"prediction {job.id}: its upload is gone, so its timeline cannot be drawn"
                ) from None
            log.exception("timeline of job %s", job.id)
            raise Refusal(500, f"prediction {job.id}: drawing its timeline failed ({type(e).__name__})") from None
        store.set_timeline(job.id, name)
    return store.results / name
