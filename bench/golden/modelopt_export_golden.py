# Writes the golden HF config.json files that test/modelopt-export.test.ts compares our
# `sparse_attention_config` export against. The exporter below is ModelOpt's own code, copied
# unchanged from NVIDIA/Model-Optimizer (a2fbac7bad8ab446d3f8783dadb0c3366eb0ad73, 2026-08-21,
# modelopt/torch/sparsity/attention_sparsity/conversion.py: SPARSE_SOFTMAX_METADATA_KEYS,
# _get_sparse_softmax_export_config, export_sparse_attention_config; Apache-2.0, Copyright (c) 2024
# NVIDIA CORPORATION & AFFILIATES), and the file is written the way unified_export_hf.py writes it
# (config.json loaded, "sparse_attention_config" set, json.dump with indent=4).
#
# Everything around it stands in for the ModelOpt objects the exporter reads: a model whose attention
# modules are named like ours (model.layers.N.self_attn), of class LlamaAttention, with the method
# instance attributes (calibration_params, target_sparse_ratio) and the validated attribute config
# (_method_config) that sparsify + calibration leave. With torch installed the model is a real
# torch.nn.Module tree; without torch, a stand-in with the same named_modules() (the exporter uses
# nothing else of torch). Usage, from the project root:
#   python3 bench/golden/modelopt_export_golden.py test/fixtures/bytes-llama-dev/config.json test/fixtures/modelopt-export
import copy, json, os, sys
from typing import Any

MO_VERSION = "git-a2fbac7b"  # stands in for modelopt.__version__ (the package is not installed)
mo_version = MO_VERSION

try:
    import torch.nn as nn
    HAVE_TORCH = True
except ImportError:  # the exporter only walks named_modules(); a stand-in tree serves as well
    HAVE_TORCH = False

    class nn:  # noqa: N801 - stands in for torch.nn
        class Module:
            def __init__(self):
                self._children = {}

            def add_module(self, name, module):
                self._children[name] = module

            def named_modules(self, prefix=""):
                yield prefix, self
                for name, child in self._children.items():
                    yield from child.named_modules(f"{prefix}.{name}" if prefix else name)


class LlamaAttention(nn.Module):
    pass


class MethodInstance:
    def __init__(self, name, calibration_params, target_sparse_ratio):
        self.name = name
        self.calibration_params = calibration_params
        self.target_sparse_ratio = target_sparse_ratio


class SparseAttentionModule(nn.Module):
    def __init__(self, enabled, method_instance, method_config):
        super().__init__()
        self.is_enabled = enabled
        self._sparse_method_instance = method_instance
        self._method_config = method_config

    def get_original_cls_by_level(self, level=0):
        return LlamaAttention


def get_named_sparse_attention_modules(model):
    return [(name, m) for name, m in model.named_modules() if isinstance(m, SparseAttentionModule)]


def get_unwrapped_name(name, model):
    return name


# ---- ModelOpt's code, unchanged -------------------------------------------------------------
SPARSE_SOFTMAX_METADATA_KEYS = (
    "sparsity_n",
    "sparsity_m",
    "dense_sink_tokens",
    "dense_recent_tokens",
)

def _get_sparse_softmax_export_config(module: SparseAttentionModule) -> dict[str, Any] | None:
    """Return N:M sparse-softmax export metadata for one sparse attention module."""
    method_config = getattr(module, "_method_config", {})
    method_name = module._sparse_method_instance.name
    should_export = method_name == "triton_sparse_softmax" or method_config.get(
        "export_sparse_softmax", False
    )
    if not should_export:
        return None

    sparse_softmax_config = {
        key: method_config[key] for key in SPARSE_SOFTMAX_METADATA_KEYS if key in method_config
    }
    if sparse_softmax_config.get("sparsity_n", 0) <= 0:
        return None
    return sparse_softmax_config


def export_sparse_attention_config(model: nn.Module) -> dict[str, Any] | None:
    """Extract sparse attention config for export to config.json.

    Extracts calibrated skip-softmax parameters and N:M sparse-softmax metadata
    from sparse attention modules.

    The exported config allows computing threshold at runtime:
        scale_factor = a * exp(b * target_sparsity)
        threshold = scale_factor / seqlen

    Args:
        model: Model with sparse attention applied

    Returns:
        Dictionary with sparse attention config for HuggingFace config.json export.
        Returns None if no exportable sparse attention metadata is found.

    Example output::

        {
            "config_groups": {
                "group_0": {
                    "algorithm": "skip_softmax",
                    "targets": ["LlamaAttention"],
                    "threshold_scale_factor": {
                        "formula": "a * exp(b * target_sparsity)",
                        "prefill": {"a": 7.93, "b": 8.61},
                        "decode": {"a": 0.12, "b": 9.85},
                    },
                    "target_sparsity": {"prefill": 0.5},
                },
                "group_1": {
                    "algorithm": "sparse_softmax",
                    "targets": ["LlamaAttention"],
                    "sparsity_n": 2,
                    "sparsity_m": 4,
                    "dense_sink_tokens": 0,
                    "dense_recent_tokens": 64,
                },
            },
            "producer": {"name": "modelopt", "version": "0.37.0"},
        }
    """
    # Collect sparse attention module info
    calibration_params = None
    target_sparse_ratio = None
    sparse_softmax_config = None
    target_classes: set[str] = set()
    disabled_layer_names: list[str] = []
    initial_disabled_steps = 0

    for name, module in get_named_sparse_attention_modules(model):
        # Get the original wrapped module's class name
        if hasattr(module, "get_original_cls_by_level"):
            original_cls = module.get_original_cls_by_level(level=0)
            if original_cls is not None:
                target_classes.add(original_cls.__name__)

        # Record layers kept dense (e.g. cross-attention, first/last blocks) so the
        # deployment side sparsifies the same subset that was calibrated, rather than
        # every instance of the target class.
        if not module.is_enabled:
            disabled_layer_names.append(get_unwrapped_name(name, model))
            continue

        # Get calibration params from first enabled module that has them
        if calibration_params is None:
            calibration_params = getattr(module._sparse_method_instance, "calibration_params", None)
        if target_sparse_ratio is None:
            target_sparse_ratio = getattr(
                module._sparse_method_instance, "target_sparse_ratio", None
            )
        if sparse_softmax_config is None:
            sparse_softmax_config = _get_sparse_softmax_export_config(module)
        # A single run-wide value: take it from the first enabled module that sets it
        # (same harvesting pattern as calibration_params / target_sparse_ratio above).
        if not initial_disabled_steps:
            initial_disabled_steps = module._method_config.get("initial_disabled_steps", 0)

    if calibration_params is None and sparse_softmax_config is None:
        return None

    targets = sorted(target_classes) if target_classes else ["Attention"]
    config_groups: dict[str, Any] = {}
    group_idx = 0

    # Each algorithm's parameters live inside its own config group.
    if calibration_params is not None:
        skip_group: dict[str, Any] = {
            "algorithm": "skip_softmax",
            "targets": targets,
        }
        if disabled_layer_names:
            skip_group["ignore"] = disabled_layer_names
        if initial_disabled_steps:
            skip_group["initial_disabled_steps"] = initial_disabled_steps
        # threshold_scale_factor (a * exp(b * target_sparsity)) and target_sparsity are
        # skip-softmax-specific, so they live in this group.
        threshold_scale_factor: dict[str, Any] = {
            "formula": "a * exp(b * target_sparsity)",
        }
        for phase in ["prefill", "decode"]:
            if phase in calibration_params:
                threshold_scale_factor[phase] = {
                    "a": calibration_params[phase]["a"],
                    "b": calibration_params[phase]["b"],
                }
        skip_group["threshold_scale_factor"] = threshold_scale_factor
        if target_sparse_ratio is not None:
            skip_group["target_sparsity"] = target_sparse_ratio
        config_groups[f"group_{group_idx}"] = skip_group
        group_idx += 1

    if sparse_softmax_config is not None:
        # N:M sparse-softmax params live in this group.
        sparse_group: dict[str, Any] = {
            "algorithm": "sparse_softmax",
            "targets": targets,
        }
        sparse_group.update(sparse_softmax_config)
        config_groups[f"group_{group_idx}"] = sparse_group

    return {
        "config_groups": config_groups,
        "producer": {
            "name": "modelopt",
            "version": mo_version,
        },
    }
# ---- end of ModelOpt's code -----------------------------------------------------------------

# The validated SparseAttentionAttributeConfig defaults (config.py) that _method_config starts from.
ATTRIBUTE_DEFAULTS = {
    "method": "flash_skip_softmax", "enable": True, "thresholds": {"prefill": [1e-3], "decode": [1e-4]},
    "br": 128, "bc": 128, "backend": "pytorch", "collect_stats": False, "is_causal": True,
    "sparsity_n": 2, "sparsity_m": 4, "dense_sink_tokens": 0, "dense_recent_tokens": 64,
    "export_sparse_softmax": False, "skip_softmax_threshold": 0.1, "initial_disabled_steps": 0,
}

# The cases test/modelopt-export.test.ts rebuilds with sparsify (same numbers there).
CASES = {
    "calibrated": {
        "disabled": [0],
        "calibration_params": {"prefill": {"a": 7.93, "b": 8.61}, "decode": {"a": 0.12, "b": 9.85}},
        "target_sparse_ratio": {"prefill": 0.5, "decode": 0.5},
        "attributes": {},
    },
    "calibrated_nm": {
        "disabled": [0, 3],
        "calibration_params": {"prefill": {"a": 3.25, "b": 11.5}},
        "target_sparse_ratio": {"prefill": 0.6},
        "attributes": {"export_sparse_softmax": True, "sparsity_n": 3, "sparsity_m": 8, "dense_sink_tokens": 4,
                       "dense_recent_tokens": 128, "initial_disabled_steps": 2},
    },
    "static": {"disabled": [], "calibration_params": None, "target_sparse_ratio": None, "attributes": {}},
}
NUM_LAYERS = 4


def build_model(case):
    model = nn.Module()
    model_inner = nn.Module()
    layers = nn.Module()
    for i in range(NUM_LAYERS):
        layer = nn.Module()
        method_config = {**ATTRIBUTE_DEFAULTS, **case["attributes"]}
        method = MethodInstance("flash_skip_softmax", copy.deepcopy(case["calibration_params"]), copy.deepcopy(case["target_sparse_ratio"]))
        layer.add_module("self_attn", SparseAttentionModule(i not in case["disabled"], method, method_config))
        layers.add_module(str(i), layer)
    model_inner.add_module("layers", layers)
    model.add_module("model", model_inner)
    return model


def main(hf_config_path, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for name, case in CASES.items():
        with open(hf_config_path) as f:
            config_data = json.load(f)
        sparse_attn_config = export_sparse_attention_config(build_model(case))
        if sparse_attn_config is not None:
            config_data["sparse_attention_config"] = sparse_attn_config
        path = os.path.join(out_dir, f"{name}.config.json")
        with open(path, "w") as f:
            json.dump(config_data, f, indent=4)
        print(f"{path}: {'with' if sparse_attn_config else 'without'} sparse_attention_config (torch: {HAVE_TORCH})")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
