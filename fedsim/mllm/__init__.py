"""fedsim's multimodal ground and MLLM client-local tuning.

* :mod:`~fedsim.mllm.world`: seeded procedural scenes (shapes + scikit-learn digits), captions, QA families;
* :mod:`~fedsim.mllm.tokenizer`: offline word-level tokenizer for the world's vocabulary;
* :mod:`~fedsim.mllm.model`: a tiny ``LlavaForConditionalGeneration`` (or a local checkpoint) + batching;
* :mod:`~fedsim.mllm.pretrain`: upstream pretraining cached by config hash;
* :mod:`~fedsim.mllm.tuning`: the tuning families (arXiv 2503.04543) as trainers;
* :mod:`~fedsim.mllm.lorasculpt`: LoRASculpt (arXiv 2503.16843);
* :mod:`~fedsim.mllm.metrics`: E / F / O;
* :mod:`~fedsim.mllm.federated`: FedAvg (plain or mask-aware) over adapter tensors with client-local masks;
* :mod:`~fedsim.mllm.flower`: the client actions of the ``fedadapter`` Flower strategy.

Importing the package itself is light (no transformers / peft), because ``strategies.fedadapter`` imports
:mod:`fedsim.mllm.flower` in every run. Importing :mod:`~fedsim.mllm.tuning` and
:mod:`~fedsim.mllm.lorasculpt` (or calling :func:`register_trainers`) registers the trainers
(``full_ft``, ``bias_norm``, ``last_k``, ``topk_grad``, ``bottleneck_adapter``, ``prompt_tuning``,
``lora``, ``dora``, ``lorasculpt``) in :data:`fedsim.registry.TRAINERS`.
"""


def register_trainers() -> None:
    """Import the tuning modules so every MLLM trainer is registered (imports transformers and peft)."""
    from fedsim.mllm import lorasculpt, tuning  # noqa: F401 - registration side effect
