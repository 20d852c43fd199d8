"""Serving: genre predictions over HTTP (`divita serve`, the optional extra ``divita[serve]``).

    divita.serving.jobs     the job table (SQLite) and the data directory's uploads and results, crash-safe
    divita.serving.worker   the threads that run :class:`divita.inference.predict.GenreClassifier` on jobs
    divita.serving.app      the FastAPI app: the ``/v1/predictions`` API, ``/healthz``, the page at ``/``
    divita.serving.client   what ``divita predict --server URL`` uses to talk to a running server

Only ``jobs`` and ``client`` import without the extra; ``app`` needs fastapi (``pip install 'divita[serve]'``).
"""
