/** dense: the baseline every method is measured against; both causal and non-causal in the bench menu. */
import type { MethodDescriptor } from '../descriptor.js';
import { DenseMethod } from './dense.js';

export const DENSE: MethodDescriptor = {
  name: 'dense',
  version: 'v1',
  cls: DenseMethod,
  bench: {
    sweep: [{ settings: {}, causal: true }, { settings: {}, causal: false, oneCallMaxLength: 16384 }],
    smoke: [{ settings: { br: 32, bc: 32 }, causal: true }, { settings: { br: 32, bc: 32 }, causal: false }],
  },
};

export { DenseMethod } from './dense.js';
