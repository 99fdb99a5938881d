"""Generated protobuf modules (caffe_pb2 is built from proto/caffe.proto by scripts/gen_caffe_pb2.py)."""
