"""Not-yet-supported settings fail loudly when changed, and pass at their defaults."""

import pytest

from max_config import NOT_SUPPORTED_YET, ConfigError, GenerateOptions, PipelineConfig, check_supported, generate_flags

FLAGS = generate_flags()


def test_defaults_pass():
    check_supported(PipelineConfig(), GenerateOptions(), FLAGS)


@pytest.mark.parametrize(
    ("values", "flag"),
    [
        ({"speculative_method": "eagle"}, "--speculative-method"),
        ({"enable_lora": True}, "--enable-lora"),
        ({"data_parallel_degree": 2}, "--data-parallel-degree"),
        ({"pipeline_role": "decode_only"}, "--pipeline-role"),
        ({"gpu_profiling": "on"}, "--gpu-profiling"),
        ({"taylorseer": True}, "--taylorseer"),
        ({"execute_empty_batches": True}, "--execute-empty-batches"),
        ({"draft_max_length": 5}, "--draft-max-length"),
    ],
)
def test_changed_values_fail(values, flag):
    with pytest.raises(ConfigError, match=f"^not supported yet: {flag}$"):
        check_supported(PipelineConfig.from_flat(**values), GenerateOptions(), FLAGS)


def test_image_url_and_supported_settings():
    with pytest.raises(ConfigError, match="not supported yet: --image_url"):
        check_supported(PipelineConfig(), GenerateOptions(image_url=["http://x/y.png"]), FLAGS)
    supported = {"kv_cache_page_size": 16, "enable_prefix_caching": False, "max_batch_size": 2, "seed": 1,
                 "enable_chunked_prefill": False, "kv_connector": "local", "use_vendor_blas": True, "force": True}
    check_supported(PipelineConfig.from_flat(**supported), GenerateOptions(num_warmups=2), FLAGS)
    assert not NOT_SUPPORTED_YET & set(supported)
    # explicit defaults are fine
    check_supported(PipelineConfig.from_flat(data_parallel_degree=1, pipeline_role="prefill_and_decode"), None, FLAGS)


def test_more_than_one_device_is_not_supported_yet():
    from max_config.support import check_device_count

    check_device_count(["cuda:0"], "gpu")
    with pytest.raises(ConfigError, match=r"^not supported yet: --devices gpu:0,1 \(more than one device\)"):
        check_device_count(["cuda:0", "cuda:1"], "gpu:0,1")
