"""Features: clip features of every trailer, extracted by backbones into release-format zarr stores,
and read back as snippets for the model."""
