"""Checkpoint reading (safetensors, GGUF), name mapping and model loading (`model_loader.load_model`)."""
