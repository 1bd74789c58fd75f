"""render_config: values from the model files and the memory plan carry those sources."""

import yaml

from max_config import generate_flags, resolve_pipeline
from max_config.generate import build_generate_config
from max_config.print_config import render_config
from max_config.sources import gather

FLAGS = generate_flags()


def test_generation_config_and_plan_values_are_labelled(tmp_path, make_hf_folder, llama_config):
    folder = make_hf_folder(tmp_path / "m", llama_config, dtype="bfloat16",
                            generation_config={"temperature": 0.6, "top_p": 0.8})
    settings = gather({"model_path": str(folder), "top_p": 0.5, "devices": "cpu"}, environ={}, flags=FLAGS)
    config, options = build_generate_config(settings.values)
    resolved = resolve_pipeline(config)
    params = config.sampling.to_params(resolved.files.generation_config)
    text = render_config(config, options, settings, FLAGS, resolved, params)
    printed = yaml.safe_load(text)
    assert printed["sampling"]["temperature"] == 0.6 and "  temperature: 0.6  # model files" in text
    assert printed["sampling"]["top_p"] == 0.5 and "  top_p: 0.5  # flag" in text
    assert printed["model"]["quantization_encoding"] == "bfloat16"
    assert "  quantization_encoding: \"bfloat16\"  # model files" in text
    assert printed["model"]["max_length"] == 256 and "  max_length: 256  # memory plan" in text
    assert printed["resolved"]["weight_format"] == "safetensors" and printed["resolved"]["kv_dtype"] == "bfloat16"
    assert printed["request"]["temperature"] == 0.6 and printed["request"]["max_new_tokens"] == 100
