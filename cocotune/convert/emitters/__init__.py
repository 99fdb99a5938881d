"""One emitter per Caffe layer type (see registry.py for the table)."""
