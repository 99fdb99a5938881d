"""Independent numpy reference of Caffe layer semantics (see README.md)."""
