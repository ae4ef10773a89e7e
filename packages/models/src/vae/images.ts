/** Gray image grids for the VAE's samples and reconstructions (the CLI encodes them as PNG). */
import { ArgumentError } from '@kexue/core-cuda';

/** An 8-bit gray image, rows top to bottom. */
export interface GrayImage {
  width: number;
  height: number;
  /** One byte a pixel, width × height. */
  data: Uint8Array;
}

/**
 * Images [count, h·w] with values in [0, 1] laid out in a grid of `cols` columns, row by row,
 * `gap` black pixels between them and around (cells past `count` stay black).
 */
export function imageGrid(images: Float32Array, count: number, h: number, w: number, cols: number, gap = 2): GrayImage {
  if (!(count > 0 && cols > 0 && h > 0 && w > 0)) throw new ArgumentError(`imageGrid: count, cols, h and w must be positive`);
  if (images.length < count * h * w) throw new ArgumentError(`imageGrid: ${images.length} values cannot hold ${count} images of ${h}×${w}`);
  const rows = Math.ceil(count / cols);
  const width = cols * (w + gap) + gap;
  const height = rows * (h + gap) + gap;
  const data = new Uint8Array(width * height);
  for (let k = 0; k < count; k++) {
    const top = gap + Math.floor(k / cols) * (h + gap);
    const left = gap + (k % cols) * (w + gap);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const v = images[k * h * w + y * w + x]!;
        data[(top + y) * width + left + x] = Math.round(Math.min(1, Math.max(0, v)) * 255);
      }
    }
  }
  return { width, height, data };
}
