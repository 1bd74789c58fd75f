"""Denoising step-cache settings for diffusion models (FBCache, TaylorSeer, TeaCache)."""

from pydantic import BaseModel, ConfigDict

from .fields import setting

_MODEL_DEFAULT = "the model's default"


class DiffusionCacheConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    first_block_caching: bool = setting(
        False,
        "Enable First-Block Cache (FBCache) for step-cache denoising. When enabled, the transformer skips "
        "remaining blocks if the first-block residual is similar to the previous step.",
    )
    taylorseer: bool = setting(
        False,
        "Enable TaylorSeer cache optimization. Uses Taylor series prediction to skip full transformer passes "
        "on certain denoising steps.",
    )
    taylorseer_cache_interval: int | None = setting(
        None, "Steps between full TaylorSeer computations.", default_text=_MODEL_DEFAULT + " (5)", ge=1
    )
    taylorseer_warmup_steps: int | None = setting(
        None,
        "Number of warmup steps before TaylorSeer prediction begins.",
        default_text=_MODEL_DEFAULT + " (9)",
        ge=0,
    )
    taylorseer_max_order: int | None = setting(
        None,
        "Taylor expansion order (1 or 2). Higher order uses second derivatives for more accurate prediction.",
        default_text=_MODEL_DEFAULT + " (1)",
        ge=1,
        le=2,
    )
    teacache: bool = setting(
        False,
        "Enable TeaCache cache optimization. Uses the timestep-aware modulated input change to decide when "
        "the transformer backbone can be skipped.",
    )
    teacache_coefficients: list[float] = setting(
        help="Polynomial coefficients (highest power first) used to rescale TeaCache's relative-L1 metric. "
        "Repeatable. Empty uses the model-specific default coefficients.",
        default_factory=list,
    )
    teacache_rel_l1_thresh: float | None = setting(
        None, "Relative-L1 threshold used by TeaCache.", default_text=_MODEL_DEFAULT + " (0.4)", gt=0.0
    )
