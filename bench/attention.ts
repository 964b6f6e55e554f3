/**
 * The attention benchmark as a script (same code as `sparse-attn bench`):
 *   node dist/bench/attention.js --sweep issue8 --backend webgpu --peers bench/results/2026-11-23-h100/peers.json --out $OUT/attention.json
 * Exit status 1 when any case failed validation (it was not timed).
 */
import { benchCommand } from '../src/cli/commands/bench.js';

process.exitCode = await benchCommand.run(process.argv.slice(2));
