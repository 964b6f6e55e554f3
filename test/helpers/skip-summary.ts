/**
 * A node --test reporter that ends the run with what was skipped and why, so a run without a GPU
 * cannot pass for a full one: `npm test` wires it beside the spec reporter (package.json).
 *
 *   # skipped: 24 WebGPU suites (no WebGPU adapter: ...). CI sets SPARSE_ATTN_REQUIRE_WEBGPU=1 and fails instead.
 *
 * A suite skipped for a missing adapter carries test/helpers/webgpu.ts's reason ("no WebGPU
 * adapter: ..."); any other skip is listed with its own reason.
 */
interface TestEvent {
  type: string;
  data: { name?: string; skip?: string | boolean; nesting?: number; details?: { type?: string } };
}

export const WEBGPU_SKIP_PREFIX = 'no WebGPU adapter';

/** The summary lines for skipped items `{ name, reason, suite }`. */
export function skipSummary(skipped: readonly { name: string; reason: string; suite: boolean }[]): string[] {
  if (skipped.length === 0) return ['# skipped: nothing'];
  const gpu = skipped.filter((s) => s.reason.startsWith(WEBGPU_SKIP_PREFIX));
  const other = skipped.filter((s) => !s.reason.startsWith(WEBGPU_SKIP_PREFIX));
  const lines: string[] = [];
  if (gpu.length) {
    const suites = gpu.filter((s) => s.suite).length;
    const tests = gpu.length - suites;
    const what = [suites ? `${suites} WebGPU suite${suites === 1 ? '' : 's'}` : '', tests ? `${tests} WebGPU test${tests === 1 ? '' : 's'}` : ''].filter(Boolean).join(' and ');
    const reasons = [...new Set(gpu.map((s) => s.reason))];
    lines.push(`# skipped: ${what} (${reasons.join('; ')}).`);
    lines.push('# The CPU suites ran; the GPU kernels were not tested. CI sets SPARSE_ATTN_REQUIRE_WEBGPU=1 to fail instead of skipping.');
  }
  for (const s of other) lines.push(`# skipped: ${s.suite ? 'suite' : 'test'} "${s.name}" (${s.reason})`);
  return lines;
}

export default async function* skipSummaryReporter(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  const skipped: { name: string; reason: string; suite: boolean }[] = [];
  for await (const event of source) {
    if ((event.type === 'test:pass' || event.type === 'test:fail') && event.data.skip) {
      const reason = typeof event.data.skip === 'string' ? event.data.skip : '(no reason given)';
      skipped.push({ name: event.data.name ?? '(unnamed)', reason, suite: event.data.details?.type === 'suite' });
    }
  }
  yield `\n${skipSummary(skipped).join('\n')}\n`;
}
