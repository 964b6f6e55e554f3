import { parseArgs } from 'node:util';
import { InvalidArgumentError } from '../../core/errors.js';
import { readJson } from '../../core/files.js';
import { formatTable } from '../../core/stats.js';
import { loadSparseAttentionConfig, saveSparseAttentionConfig } from '../../config/json.js';
import { checkMethodSettings } from '../../config/method-check.js';
import type { SparseAttentionConfigInput } from '../../config/sparse-config.js';
import { type ResolvedModuleConfig, resolveModuleConfigs } from '../../config/resolve.js';
import { FLASH_SKIP_SOFTMAX_CONFIG_DEFAULT, SPARSE_ATTENTION_CONFIG_DEFAULT } from '../../config/sparse-config.js';
import type { Command } from '../command.js';

const DEFAULTS = { base: SPARSE_ATTENTION_CONFIG_DEFAULT, flash_skip_softmax: FLASH_SKIP_SOFTMAX_CONFIG_DEFAULT };

export const configCommand: Command = {
  name: 'config',
  summary: 'check a sparse-attention config JSON and show what each module resolves to',
  usage: `sparse-attn config [FILE] [options]

Loads FILE (ModelOpt's SparseAttentionConfig JSON; without FILE, the defaults), reports every bad
field (each enabled entry's settings checked by its method) and exits 2, or prints the config as it would be saved. With --module, prints instead which entry decides
each named module and the method and settings it gets (last matching entry wins; "default" first).
  --defaults KIND   base | flash_skip_softmax: fills fields FILE leaves out (default base)
  --module NAME     a module name to resolve, e.g. model.layers.0.self_attn (repeatable)
  --json            print resolutions as JSON`,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        defaults: { type: 'string', default: 'base' },
        module: { type: 'string', multiple: true },
        json: { type: 'boolean', default: false },
      },
    });
    if (!(values.defaults in DEFAULTS)) throw new InvalidArgumentError('--defaults', values.defaults, 'one of base, flash_skip_softmax');
    if (positionals.length > 1) throw new InvalidArgumentError('FILE', positionals, 'at most one config file');
    const defaults = DEFAULTS[values.defaults as keyof typeof DEFAULTS];
    const cfg = loadSparseAttentionConfig(positionals.length ? readJson(positionals[0]) as SparseAttentionConfigInput : {}, defaults);
    // Each enabled entry's settings through its method's own schema, every bad field at once.
    checkMethodSettings(cfg);
    if (!values.module?.length) {
      console.log(JSON.stringify(saveSparseAttentionConfig(cfg), null, 2));
      return 0;
    }
    const resolved = resolveModuleConfigs(cfg, values.module);
    if (values.json) {
      console.log(JSON.stringify(resolved, null, 2));
    } else {
      const rows = resolved.map((r) => [r.module, r.enable ? 'on' : 'off', r.matchedBy ?? '(none)', r.enable ? r.attributes!.method : '', r.enable ? r.attributes!.backend : '', r.enable ? JSON.stringify(shownSettings(r)) : '']);
      console.log(formatTable(['module', 'sparse', 'matched by', 'method', 'backend', 'settings'], rows));
    }
    return 0;
  },
};

/** The settings a module's method gets, with the entry's per-head values (which are not a method setting). */
function shownSettings(r: ResolvedModuleConfig): Record<string, unknown> {
  const perHead = r.attributes?.per_head;
  return perHead === undefined ? r.settings : { ...r.settings, per_head: perHead };
}
