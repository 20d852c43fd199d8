import hashlib

from divita.fileio import atomic_write_bytes, file_hexdigest


def test_file_hexdigest_equals_hashlib_over_chunks_and_reports_each_chunk(tmp_path):
    data = bytes(range(256)) * 41  # 10,496 bytes
    path = atomic_write_bytes(tmp_path / "f.bin", lambda f: f.write(data))
    seen = []
    assert file_hexdigest(path, "md5", seen.append, chunk_size=4096) == hashlib.md5(data).hexdigest()
    assert seen == [4096, 4096, 2304]
    assert file_hexdigest(path, "sha256") == hashlib.sha256(data).hexdigest()
    assert not list(tmp_path.glob(".*tmp*"))  # the atomic write left no temporary file
