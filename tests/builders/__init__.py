"""Builders the tests share: generated videos with known content (:mod:`.videos`), videos whose genre
is visible and a checkpoint trained on them (:mod:`.genre_videos`), a local HTTP server for downloads
(:mod:`.http_server`) and the tiny release-format training configuration (:mod:`.release`). The fixtures
built on them are in ``tests/conftest.py``."""
