"""Model preparation: a source checkpoint (GGUF) -> browser artifacts (ONNX, tokenizer, manifest)."""
