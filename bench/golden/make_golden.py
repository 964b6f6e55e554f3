# Writes the golden logits that test/model-golden.test.ts checks the TypeScript Llama runner against.
# It is independent of our code: Hugging Face transformers' LlamaForCausalLM, float32, eager attention.
#
# Usage (from the project root, with torch + transformers + safetensors installed):
#   python3 bench/golden/make_golden.py test/fixtures/bytes-llama-dev "$OUT/golden-bytes-llama-dev.json"
# Then copy the JSON to test/fixtures/golden-bytes-llama-dev.json.
#
# Tokens are bytes (token id = byte value). For each prompt we record the full 256-entry logit
# vectors at a few positions and a 16-token greedy continuation, made by re-running the whole
# sequence each step (no KV cache: the simplest possible procedure). The run is on the CPU in
# float32 so the numbers are exact IEEE f32 arithmetic (no TF32); the same model on CUDA (TF32 off)
# is compared and its largest difference recorded as a sanity figure.
import json, sys, time
import torch
import transformers
from transformers import LlamaForCausalLM

PROMPTS = {
    # Python source, cut to the byte length the name gives
    'py64': 'def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, ',
    # a longer one (256 bytes) so RoPE is checked at larger positions
    'py256': (
        'import os\nimport sys\n\n\nclass Config:\n    """Settings read from the environment."""\n\n'
        '    def __init__(self, prefix="APP_"):\n        self.prefix = prefix\n        self.values = {}\n'
        '        for key, value in os.environ.items():\n            if key.startswith(prefix):\n'
        '                self.values[key[len(prefix):].lower()] = value\n\n    def get(self, name, default=None):\n'
    ),
}
POSITIONS = {'py64': [0, 1, 17, 31, 62, 63], 'py256': [0, 100, 200, 255]}
NEW_TOKENS = 16


def greedy(model, ids, n, device):
    seq = list(ids)
    margins = []
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([seq], device=device)).logits[0, -1].double().cpu()
            top = torch.topk(logits, 2)
            margins.append(float(top.values[0] - top.values[1]))
            seq.append(int(top.indices[0]))
    return seq[len(ids):], margins


def main():
    model_dir, out_path = sys.argv[1], sys.argv[2]
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation='eager').eval()
    cases = []
    for name, text in PROMPTS.items():
        text = text[:int(name[2:])]
        ids = list(text.encode('ascii'))
        assert len(ids) == int(name[2:]), (name, len(ids))
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        cont, margins = greedy(model, ids, NEW_TOKENS, 'cpu')
        cases.append({
            'name': name, 'prompt': text, 'tokens': ids,
            'positions': POSITIONS[name],
            'logits': [[float(x) for x in logits[p]] for p in POSITIONS[name]],
            'greedy': cont, 'greedyText': bytes(cont).decode('latin-1'),
            'greedyTop2Margins': margins,
        })
    cuda_diff = None
    if torch.cuda.is_available():
        gpu = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation='eager').eval().cuda()
        with torch.no_grad():
            cuda_diff = max(
                float((gpu(torch.tensor([c['tokens']], device='cuda')).logits[0].cpu()[c['positions']] - torch.tensor(c['logits'])).abs().max())
                for c in cases)
    out = {
        'model': 'bytes-llama-dev', 'dtype': 'float32', 'device': 'cpu', 'attn_implementation': 'eager',
        'torch': torch.__version__, 'transformers': transformers.__version__,
        'date': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
        'cudaMaxAbsDiff': cuda_diff,
        'procedure': 'bench/golden/make_golden.py: HF LlamaForCausalLM float32 eager on CPU; logits at listed positions of one forward over the prompt; greedy = argmax, re-running the full sequence each step',
        'cases': cases,
    }
    with open(out_path, 'w') as f:
        json.dump(out, f)
    for c in cases:
        print(c['name'], repr(c['greedyText']), 'min margin %.3f' % min(c['greedyTop2Margins']))
    print('cuda max abs diff', cuda_diff)


if __name__ == '__main__':
    main()
