/**
 * fnmatch-like globs over module names (ModelOpt matches `sparse_cfg` keys with Python's
 * `fnmatch.fnmatch`): `*` any run of characters (dots included), `?` one character, `[seq]` one
 * character in seq, `[!seq]` one character not in seq; the pattern must cover the whole name.
 *
 * Built on picomatch with its shell extensions switched off, because a module-name pattern is not a
 * path: braces, extglobs `@(...)`, a leading `!` and `**` would all change what fnmatch means.
 * Two differences remain, both outside what module names contain: `*` does not cross `/`, and `\`
 * escapes the next character (fnmatch treats it literally).
 */
import picomatch from 'picomatch';

const OPTIONS: picomatch.PicomatchOptions = {
  dot: true, // fnmatch's `*` also matches a leading `.`
  nobrace: true,
  noextglob: true,
  nonegate: true,
  noglobstar: true,
};

export type NameMatcher = (name: string) => boolean;

// Compiled matchers by pattern text: the text alone decides the matcher, so this cannot go stale.
const compiled = new Map<string, NameMatcher>();

/** A matcher for one fnmatch-style pattern (cached). */
export function compileGlob(pattern: string): NameMatcher {
  let m = compiled.get(pattern);
  if (!m) {
    // picomatch spells bracket negation `[^...]`; with nonegate it would read `[!` as a literal `!`.
    const isMatch = picomatch(pattern.replace(/\[!/g, '[^'), OPTIONS);
    m = (name: string) => isMatch(name);
    compiled.set(pattern, m);
  }
  return m;
}

export function globMatches(pattern: string, name: string): boolean {
  return compileGlob(pattern)(name);
}
