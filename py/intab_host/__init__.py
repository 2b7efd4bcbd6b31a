"""intab under CPython only: what needs numpy or onnxruntime and so never ships to the tab.

`OrtBackend` runs the model's ONNX graph with onnxruntime (the parity oracle and the engine of the
CPython tests); `packed_weights.expand` turns weights.bin into the graph's float32 weights.
"""
