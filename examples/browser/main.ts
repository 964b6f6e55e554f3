/**
 * The page: pick a method, its settings, a shape and an input kind; run it and dense attention on
 * navigator.gpu (or the CPU reference when there is no WebGPU); show density, error against dense
 * and time; draw the block mask per head. window.sparseAttentionPage lets a test drive the same
 * code without the form.
 */
import { INPUT_KINDS, parseInputKind, pictureTitle, planPicture, renderMaskImage, sparseMethods } from '../../src/browser.js';
import { acquireDevice, demoSettingsOf, type Device, type RunRequest, type RunResult, runMethod } from './run.js';

const $ = <T extends Element>(selector: string) => document.querySelector(selector) as T;
const form = $<HTMLFormElement>('#form');
const field = <T extends HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement>(name: string) => form.elements.namedItem(name) as T;
const status = $<HTMLDivElement>('#status');
const results = $<HTMLTableElement>('#results');
const canvas = $<HTMLCanvasElement>('#mask');

function setStatus(text: string, kind: 'info' | 'warn' | 'error' = 'info'): void {
  status.textContent = text;
  status.className = kind === 'info' ? '' : kind;
}

function readRequest(): RunRequest {
  const int = (name: string) => {
    const n = Number(field<HTMLInputElement>(name).value);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${field<HTMLInputElement>(name).value}`);
    return n;
  };
  const text = field<HTMLTextAreaElement>('settings').value.trim();
  let settings: Record<string, unknown> = {};
  if (text) {
    try {
      settings = JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new Error(`settings must be JSON, e.g. {"threshold": 0.9} (${(err as Error).message})`);
    }
  }
  return {
    method: field<HTMLSelectElement>('method').value, settings, input: parseInputKind('input', field<HTMLSelectElement>('input').value),
    length: int('length'), heads: int('heads'), kvHeads: int('kvHeads'), headDim: int('headDim'), seed: int('seed'),
    causal: field<HTMLInputElement>('causal').checked,
  };
}

function showResult(req: RunRequest, r: RunResult): void {
  const row = (cells: string[]) => `<tr>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
  const body = results.tBodies[0];
  body.innerHTML = row(['dense', r.backend, '1.000', '0', '0', r.denseMs.toFixed(1)])
    + row([req.method, r.backend, r.density.toFixed(3), r.maxAbsError.toExponential(2), r.relL2Error.toExponential(2), r.ms.toFixed(1)]);
  results.hidden = false;
  const image = renderMaskImage(planPicture(r.plan, pictureTitle(req.method, r.settings)), { panelSize: req.heads > 4 ? 192 : 256 });
  canvas.width = image.width;
  canvas.height = image.height;
  canvas.getContext('2d')!.putImageData(new ImageData(image.data, image.width, image.height), 0, 0);
}

async function main(): Promise<void> {
  for (const m of sparseMethods.list()) field<HTMLSelectElement>('method').add(new Option(`${m.name} ${m.latest}`, m.name));
  for (const kind of INPUT_KINDS) field<HTMLSelectElement>('input').add(new Option(kind, kind));
  const fillSettings = () => {
    const length = Number(field<HTMLInputElement>('length').value) || 1024;
    field<HTMLTextAreaElement>('settings').value = JSON.stringify(demoSettingsOf(field<HTMLSelectElement>('method').value, length));
  };
  field('method').addEventListener('change', fillSettings);
  field('length').addEventListener('change', fillSettings);
  fillSettings();

  const device: Device = await acquireDevice();
  const where = device.kind === 'webgpu'
    ? `WebGPU: ${device.report.description || device.report.architecture || device.report.vendor || 'adapter'}${device.report.isFallbackAdapter ? ' (fallback adapter)' : ''}`
    : `No WebGPU: ${device.reason}. Showing the CPU reference result instead.`;
  setStatus(where, device.kind === 'webgpu' ? 'info' : 'warn');
  let busy = false;
  const run = async (req: RunRequest): Promise<RunResult> => {
    if (busy) throw new Error('a run is in progress');
    busy = true;
    document.body.dataset.state = 'running';
    setStatus(`${where}\nrunning ${req.method} and dense, L=${req.length}, ${req.heads} heads…`, device.kind === 'webgpu' ? 'info' : 'warn');
    try {
      const r = await runMethod(device, req);
      showResult(req, r);
      setStatus(`${where}\n${req.method}: done (the first run of a shape includes shader compilation).`, device.kind === 'webgpu' ? 'info' : 'warn');
      document.body.dataset.state = 'done';
      return r;
    } catch (err) {
      setStatus(`${where}\n${req.method} failed: ${(err as Error).message}`, 'error');
      document.body.dataset.state = 'error';
      throw err;
    } finally {
      busy = false;
    }
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    let req: RunRequest;
    try {
      req = readRequest();
    } catch (err) {
      setStatus((err as Error).message, 'error');
      return;
    }
    run(req).catch(() => undefined); // shown in the status line
  });
  $<HTMLButtonElement>('#run').disabled = false;
  const page = {
    device: device.kind === 'webgpu' ? { kind: 'webgpu' as const, report: device.report } : { kind: 'cpu' as const, reason: device.reason },
    methods: sparseMethods.list().map((m) => m.name),
    run: async (req: RunRequest) => {
      const { plan: _plan, ...plain } = await run(req);
      return plain;
    },
  };
  (window as unknown as { sparseAttentionPage: typeof page }).sparseAttentionPage = page;
  document.body.dataset.state = 'ready';
}

main().catch((err: Error) => {
  setStatus(`The page failed to start: ${err.message}`, 'error');
  document.body.dataset.state = 'error';
});
