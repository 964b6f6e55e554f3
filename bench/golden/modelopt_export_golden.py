# Writes the golden HF config.json files that test/modelopt-export.test.ts compares our
# `sparse_attention_config` export against, with ModelOpt's own exporter: SPARSE_SOFTMAX_METADATA_KEYS,
# _get_sparse_softmax_export_config and export_sparse_attention_config are read at run time from
# modelopt/torch/sparsity/attention_sparsity/conversion.py of a NVIDIA/Model-Optimizer checkout (the goldens
# were made from a2fbac7bad8ab446d3f8783dadb0c3366eb0ad73, 2026-08-21); the file is written the way
# unified_export_hf.py writes it (config.json loaded, "sparse_attention_config" set, json.dump with indent=4).
#
# Everything around it stands in for the ModelOpt objects the exporter reads: a model whose attention
# modules are named like ours (model.layers.N.self_attn), of class LlamaAttention, with the method
# instance attributes (calibration_params, target_sparse_ratio) and the validated attribute config
# (_method_config) that sparsify + calibration leave. With torch installed the model is a real
# torch.nn.Module tree; without torch, a stand-in with the same named_modules() (the exporter uses
# nothing else of torch). Usage, from the project root, with a ModelOpt checkout in MODELOPT_DIR:
#   python3 bench/golden/modelopt_export_golden.py MODELOPT_DIR test/fixtures/bytes-llama-dev/config.json test/fixtures/modelopt-export
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


# ---- ModelOpt's exporter, read from a ModelOpt checkout at run time (not carried in this repository) ----
EXPORTER_NAMES = ("SPARSE_SOFTMAX_METADATA_KEYS", "_get_sparse_softmax_export_config", "export_sparse_attention_config")


def load_modelopt_exporter(modelopt_dir):
    """Executes, in this module's namespace, the exporter's definitions from
    modelopt/torch/sparsity/attention_sparsity/conversion.py of the checkout at `modelopt_dir`: only the
    names in EXPORTER_NAMES (the module's imports need the whole modelopt package; the stand-ins above
    provide what the exporter reads)."""
    import ast
    path = os.path.join(modelopt_dir, "modelopt", "torch", "sparsity", "attention_sparsity", "conversion.py")
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    keep = []
    for node in tree.body:
        names = [node.name] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else [
            t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
        if any(n in EXPORTER_NAMES for n in names):
            keep.append(node)
    found = {n for node in keep for n in ([node.name] if hasattr(node, "name") else [t.id for t in node.targets])}
    missing = set(EXPORTER_NAMES) - found
    if missing:
        sys.exit(f"{path}: not found: {', '.join(sorted(missing))}")
    exec(compile(ast.Module(body=keep, type_ignores=[]), path, "exec"), globals())


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
    if len(sys.argv) != 4:
        sys.exit("usage: modelopt_export_golden.py MODELOPT_DIR HF_CONFIG_JSON OUT_DIR")
    load_modelopt_exporter(sys.argv[1])
    main(sys.argv[2], sys.argv[3])
