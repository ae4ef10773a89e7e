/** PNG pixels for the report tests, decoded with pngjs (8-bit RGBA, whatever the file's colour type). */
import { PNG } from 'pngjs';

export interface Png {
  width: number;
  height: number;
  /** width × height × 4 bytes, RGBA. */
  rgba: Uint8Array;
}

export function decodePng(bytes: Buffer): Png {
  const png = PNG.sync.read(bytes);
  return { width: png.width, height: png.height, rgba: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength) };
}

/** How many pixels are within `tolerance` (per channel) of the colour `#rrggbb`. */
export function countNear(png: Png, hex: string, tolerance: number): number {
  const r = parseInt(hex.slice(1, 3), 16), g = parseInt(hex.slice(3, 5), 16), b = parseInt(hex.slice(5, 7), 16);
  let n = 0;
  for (let i = 0; i < png.rgba.length; i += 4) {
    if (Math.abs(png.rgba[i]! - r) <= tolerance && Math.abs(png.rgba[i + 1]! - g) <= tolerance && Math.abs(png.rgba[i + 2]! - b) <= tolerance) n++;
  }
  return n;
}

/** The number of distinct RGBA colours (stops counting at `cap`). */
export function distinctColours(png: Png, cap = 1000): number {
  const seen = new Set<number>();
  const view = new DataView(png.rgba.buffer, png.rgba.byteOffset, png.rgba.byteLength);
  for (let i = 0; i < png.rgba.length && seen.size < cap; i += 4) seen.add(view.getUint32(i));
  return seen.size;
}
