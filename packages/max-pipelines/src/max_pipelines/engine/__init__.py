"""The generation engine: Sequence -> Scheduler -> ModelRunner (+ Sampler) -> LLM."""
