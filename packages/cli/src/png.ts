/** PNG files of the images commands write (`kexue sample vae`), encoded by pngjs. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { PNG } from 'pngjs';

/** Writes an 8-bit gray image (one byte a pixel, rows top to bottom) as a gray PNG, making its directory. */
export async function writeGrayPng(file: string, image: { width: number; height: number; data: Uint8Array }): Promise<void> {
  const { width, height, data } = image;
  if (data.length !== width * height) throw new Error(`writeGrayPng: ${data.length} pixels for a ${width}×${height} image`);
  const png = new PNG({ width, height, colorType: 0, inputColorType: 0, inputHasAlpha: false });
  png.data = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, PNG.sync.write(png, { colorType: 0, inputColorType: 0, inputHasAlpha: false }));
}
