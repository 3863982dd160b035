"""prunebench: regenerate pruning papers' tables and figures from declarative manifests.

``from bench import records, history``: the stored runs as pandas frames (``bench.frames``).
"""


def __getattr__(name: str):
    if name in ("records", "history"):  # loaded on first use: `import bench` stays free of pandas
        from . import frames
        return getattr(frames, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
