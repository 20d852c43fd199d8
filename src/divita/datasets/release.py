"""The published Trailers12k release (Zenodo record 5716410) and the paper's Table 6.

Every file of the release, its md5 and what it holds, plus the 8 Table-6 rows: which stores each row
trains on and the published mean ± std over the 3 splits.
"""

from __future__ import annotations

from dataclasses import dataclass

ZENODO_BASE_URL = "https://zenodo.org/record/5716410/files"
LABELS_FILE = "mtgc.csv"


@dataclass(frozen=True)
class ReleaseFile:
    name: str  # file name on Zenodo
    md5: str
    extracts_to: str | None = None  # directory a tar.gz unpacks into, None for plain files

    @property
    def is_archive(self) -> bool:
        return self.name.endswith(".tar.gz")


def _store(stem: str, md5: str) -> ReleaseFile:
    return ReleaseFile(f"{stem}.zarr.tar.gz", md5, f"{stem}.zarr")


RELEASE_FILES: dict[str, ReleaseFile] = {
    f.name: f
    for f in (
        ReleaseFile(LABELS_FILE, "d730579950345b2c0f9c4a9779bd9d44"),
        _store("trailers_i_shufflenet_fpc24", "15eac938134322e8e6c611f844ef3d32"),
        _store("trailers_k_shufflenet_fps24_fpc24", "cbf2016ad294c50b75baaf8e25c7aaaf"),
        _store("trailers_i_resnet_fpc24", "ed284507adcd04d067ba48a1ceab1b3d"),
        _store("trailers_k_r2plus1d_fps24_fpc24", "90897c9508790e67aab3c3b8c69ce668"),
        _store("trailers_i_swin_fpc24", "d544acb04179bc723d46c88adfa43aa0"),
        _store("trailers_ik_swin_fps24_fpc24", "e4f57101c465b6426bc3d9909ba36bdb"),
    )
}

SUMMARY_METRICS: tuple[str, ...] = ("uap", "map", "wap", "sap")
SUMMARY_LABELS = {"uap": "μAP", "map": "mAP", "wap": "wAP", "sap": "sAP"}


@dataclass(frozen=True)
class Table6Row:
    name: str
    ix: str | None  # image (ImageNet) store directory name, or None
    vx: str | None  # video (Kinetics) store directory name, or None
    paper: dict[str, tuple[float, float]]  # metric -> (mean, std) in percent, from the paper

    @property
    def stores(self) -> list[str]:
        return [s for s in (self.ix, self.vx) if s]


def _paper(*values: tuple[float, float]) -> dict[str, tuple[float, float]]:
    return dict(zip(SUMMARY_METRICS, values))


_I_SHUFFLE, _K_SHUFFLE = "trailers_i_shufflenet_fpc24.zarr", "trailers_k_shufflenet_fps24_fpc24.zarr"
_I_RESNET, _K_R2P1D = "trailers_i_resnet_fpc24.zarr", "trailers_k_r2plus1d_fps24_fpc24.zarr"
_I_SWIN, _IK_SWIN = "trailers_i_swin_fpc24.zarr", "trailers_ik_swin_fps24_fpc24.zarr"

# Table 6 of Montalvo-Lezama et al. (2023): test-set μAP, mAP, wAP, sAP, mean ± std over the 3 splits.
TABLE6: tuple[Table6Row, ...] = (
    Table6Row("ShuffleNet-2D", _I_SHUFFLE, None, _paper((71.69, 0.44), (66.47, 0.73), (70.51, 0.50), (76.60, 0.77))),
    Table6Row("ShuffleNet-3D", None, _K_SHUFFLE, _paper((63.43, 1.54), (58.18, 1.50), (63.59, 1.46), (69.49, 1.58))),
    Table6Row(
        "ShuffleNet-Fusion", _I_SHUFFLE, _K_SHUFFLE, _paper((72.11, 0.56), (67.08, 0.37), (71.42, 0.41), (76.66, 0.73))
    ),
    Table6Row("ResNet", _I_RESNET, None, _paper((70.92, 3.49), (66.16, 2.45), (70.23, 2.11), (75.85, 3.05))),
    Table6Row("R2+1D", None, _K_R2P1D, _paper((71.76, 2.72), (66.09, 2.44), (70.81, 2.21), (76.33, 2.02))),
    Table6Row("ResNet-Fusion", _I_RESNET, _K_R2P1D, _paper((73.28, 0.66), (68.03, 0.63), (72.14, 0.72), (77.76, 0.44))),
    Table6Row("Swin-2D", _I_SWIN, None, _paper((72.96, 4.17), (67.68, 2.63), (71.70, 2.44), (77.77, 4.08))),
    # The Video Swin store is Kinetics-400 trained from ImageNet-22K weights ("ik"): it is the video stream.
    Table6Row("Swin-3D", None, _IK_SWIN, _paper((75.71, 2.43), (70.44, 2.10), (74.30, 2.11), (80.19, 2.61))),
)
TABLE6_BY_NAME = {row.name: row for row in TABLE6}


def archive_for_store(store_dir: str) -> ReleaseFile:
    """The release archive that unpacks into ``store_dir``."""
    for f in RELEASE_FILES.values():
        if f.extracts_to == store_dir:
            return f
    raise KeyError(store_dir)
