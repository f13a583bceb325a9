"""Helpers that craft checkpoint files for tests (damaged ones, and re-signed edits that
model a genuine file of another run)."""

import h5py

from hpctrain.checkpoint import _SIGNATURE, _attr, _signature


def resign(path):
    """Recompute the attribute signature of ``path`` after an edit (as a real writer would)."""
    with h5py.File(path, "a") as f:
        manifest = []

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and "sha256" in obj.attrs:
                manifest.append((name, obj.dtype.str, obj.shape, _attr(obj.attrs["sha256"])))

        f.visititems(visit)
        attrs = {k: f.attrs[k] for k in f.attrs}
        f.attrs[_SIGNATURE] = _signature(attrs, manifest)


def set_attr(path, key, value, sign=True):
    """Set (or with value None, delete) a root attribute; re-sign unless ``sign`` is False."""
    with h5py.File(path, "a") as f:
        if value is None:
            del f.attrs[key]
        else:
            f.attrs[key] = value
    if sign:
        resign(path)
