/** `sparse-attn eval --save-masks`: the block masks of the real model's layers, as pictures. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';
import { promisify } from 'node:util';
import { BlockMask } from '../src/core/block-mask.js';
import { heatColor, maskFigure } from '../src/viz/mask-figure.js';
import { decodePng } from '../src/viz/png.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

it('eval --save-masks writes one picture per sparsified layer and setting, from the first prefill', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'sparse-attn-eval-')), 'masks');
  const args = ['eval', '--lengths', '160', '--prompts', '1', '--methods', 'xattention', '--targets', '0.5', '--dense-layers', '1', '--seed', '3', '--json', '--save-masks', dir];
  const { stdout } = await promisify(execFile)(process.execPath, [cli, ...args], { timeout: 120_000 });
  assert.equal(JSON.parse(stdout).rows.length, 3);
  // bytes-llama-dev has 4 layers; layer 0 stays dense (--dense-layers 1), so it has no picture.
  const want = ['default', '50pct'].flatMap((s) => [1, 2, 3].map((l) => `L160-xattention-${s}-layer${l}.png`)).sort();
  assert.deepEqual(readdirSync(dir).sort(), want);
  const png = decodePng(readFileSync(join(dir, 'L160-xattention-default-layer2.png')));
  // The layout of a 4-head, 160-token, 64-block causal mask with block scores: 4 panels.
  const shape = BlockMask.full({ batch: 1, heads: 4, queryLength: 160, keyLength: 160, blockRows: 64, blockCols: 64, causal: true });
  const fig = maskFigure({ mask: shape, blockScores: new Float32Array(4 * 3 * 3), title: 'model.layers.2.self_attn xattention default L=160' });
  assert.deepEqual([png.width, png.height], [fig.width, fig.height]);
  assert.equal(fig.panels.length, 4);
  // XAttention keeps each query block's diagonal block, the row's largest score: the hottest colour.
  for (const p of fig.panels) {
    const o = ((p.y + 2) * png.width + p.x + 1) * 4;
    assert.deepEqual([png.data[o], png.data[o + 1], png.data[o + 2]], heatColor(1), `head ${p.head} block (0, 0)`);
  }
});
