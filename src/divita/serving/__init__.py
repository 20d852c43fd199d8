"""Serving: genre predictions over HTTP (`divita serve`, the optional extra ``divita[serve]``).

    divita.serving.jobs     the job table (SQLite) and the data directory's uploads and results, crash-safe
    divita.serving.worker   the supervisor threads: claim a job, run it on a worker, record the outcome
    divita.serving.runners  where a job runs: a thread, a child process (worker_process), a Ray actor (ray_workers)
    divita.serving.metrics  /metrics (Prometheus) and the one-line JSON access and job logs
    divita.serving.service  ServeConfig and the Service: the job table and workers, opened and closed
    divita.serving.app      the FastAPI app: the ``/v1/predictions`` API, ``/healthz``, the page at ``/``
    divita.serving.upload   multipart uploads streamed to disk, limited as they arrive, then probed
    divita.serving.models   refusals and the response bodies of the OpenAPI page
    divita.serving.timeline a done job's timeline picture, drawn on its first request
    divita.serving.client   what ``divita predict --server URL`` uses to talk to a running server

Only ``jobs``, ``worker``, ``runners``, ``service`` and ``client`` import without the extra; the others need fastapi
(``pip install 'divita[serve]'``).
"""
