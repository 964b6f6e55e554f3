/** The configuration layer: ModelOpt-style SparseAttentionConfig, JSON load/save, resolution by module name. */
export * from './attribute-config.js';
export * from './sparse-config.js';
export * from './json.js';
export * from './resolve.js';
export { compileGlob, globMatches, type NameMatcher } from './glob.js';
export { ConfigValidationError, type ConfigIssue } from './issues.js';
