/**
 * Token-rule kinds → their visibility hook in the attention skeletons (attention/token-visibility.ts).
 * A Record over TokenRule's kinds, so a new rule does not compile until its GPU hook is listed here.
 * The skeletons read this table for their Params layouts and for the WGSL of a spec's `tokenRule`.
 */
import { UnsupportedError } from '../../../core/errors.js';
import type { TokenRule } from '../../../core/token-rule.js';
import { NO_TOKEN_RULE, type TokenRuleHook } from '../attention/token-visibility.js';
import { TRISHAPE_VISIBILITY } from './tri-shape/trishape-visibility.js';

type HookOf<K extends TokenRule['kind']> = TokenRuleHook<Extract<TokenRule, { kind: K }>, string>;

export const GPU_TOKEN_RULES = { trishape: TRISHAPE_VISIBILITY } as const satisfies { readonly [K in TokenRule['kind']]: HookOf<K> };

/** A spec's `tokenRule` value: a rule kind, or 'none'. */
export type TokenRuleKey = 'none' | TokenRule['kind'];
export type TokenRuleParam = (typeof GPU_TOKEN_RULES)[TokenRule['kind']]['fields'][number];

/** Every registered rule's Params fields, in table order: each skeleton's Params carries them all. */
export const TOKEN_RULE_PARAMS: readonly TokenRuleParam[] = [...new Set(Object.values(GPU_TOKEN_RULES).flatMap((h) => h.fields))];

export function tokenRuleHook(key: TokenRuleKey): TokenRuleHook<never, string> {
  const hook = key === 'none' ? NO_TOKEN_RULE : GPU_TOKEN_RULES[key];
  if (!hook) throw new UnsupportedError(`token rule "${key}" has no WebGPU hook`);
  return hook;
}

/** The token-rule Params of a call: the rule's values, zero for every other rule's fields. */
export function tokenRuleParams(rule: TokenRule | undefined, queryLength: number, keyLength: number): Record<TokenRuleParam, number> {
  const values = Object.fromEntries(TOKEN_RULE_PARAMS.map((f) => [f, 0])) as Record<TokenRuleParam, number>;
  if (rule) Object.assign(values, (GPU_TOKEN_RULES[rule.kind] as HookOf<typeof rule.kind>).params(rule, queryLength, keyLength));
  return values;
}
