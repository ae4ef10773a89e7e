/**
 * The IDX files of MNIST and Fashion-MNIST (LeCun's format: a big-endian header of a zero word,
 * a type byte (0x08 = unsigned byte), the number of dimensions, then each dimension's size as a
 * 32-bit integer, then the data), plain or gzip-compressed. Debian's `dataset-fashion-mnist`
 * package installs Fashion-MNIST in /usr/share/datasets/fashion-mnist as
 * `{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`; the original MNIST files use the same names.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';

import { FormatError, KexueIOError } from '@kexue/core-cuda';

/** Where `dataset-fashion-mnist` puts the files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** A set of gray images, one byte a pixel, images after one another, rows top to bottom. */
export interface ImageSet {
  count: number;
  rows: number;
  cols: number;
  pixels: Uint8Array;
  /** The class of each image (0–9), when the labels file was read. */
  labels?: Uint8Array;
}

/** The dimensions and data of an IDX file of unsigned bytes (E_FORMAT naming the file when it is not one). */
export function parseIdx(bytes: Uint8Array, file: string): { dims: number[]; data: Uint8Array } {
  const bad = (why: string) => new FormatError(`${file}: not an IDX file of unsigned bytes: ${why}`);
  if (bytes.length < 4) throw bad('shorter than its header');
  if (bytes[0] !== 0 || bytes[1] !== 0) throw bad('the first two bytes must be zero');
  if (bytes[2] !== 0x08) throw bad(`element type 0x${bytes[2]!.toString(16)} (only 0x08, unsigned byte, is read)`);
  const n = bytes[3]!;
  if (n < 1 || n > 4) throw bad(`${n} dimensions`);
  if (bytes.length < 4 + 4 * n) throw bad('shorter than its header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = Array.from({ length: n }, (_, i) => view.getUint32(4 + 4 * i, false));
  const size = dims.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * n;
  if (bytes.length !== start + size) throw bad(`the header's sizes ${dims.join('×')} need ${size} data bytes, the file has ${bytes.length - start}`);
  return { dims, data: bytes.subarray(start) };
}

/** Reads an IDX file, gunzipping it when it starts with gzip's magic bytes. */
export function readIdx(file: string): { dims: number[]; data: Uint8Array } {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new KexueIOError(`cannot read ${file}: ${(err as Error).message}`);
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (err) {
      throw new FormatError(`${file}: damaged gzip data: ${(err as Error).message}`);
    }
  }
  return parseIdx(bytes, file);
}

/**
 * The path of an IDX file in dir: `<split>-<kind>-idxN-ubyte` gzip-compressed (`.gz`) or not, or
 * with a dot before idxN (`train-images.idx3-ubyte`, as some MNIST copies name it); null when none exists.
 */
function findIdx(dir: string, stem: string): string | null {
  const dotted = stem.replace(/-(idx\d-ubyte)$/, '.$1');
  for (const name of [`${stem}.gz`, stem, `${dotted}.gz`, dotted]) {
    const file = path.join(dir, name);
    if (existsSync(file)) return file;
  }
  return null;
}

/**
 * The train or test split (t10k) of an MNIST-layout directory: images and, where present, labels.
 * A missing images file is an E_IO error that says how to get Fashion-MNIST.
 */
export function readImageSplit(dir: string, split: 'train' | 't10k'): ImageSet {
  const imagesFile = findIdx(dir, `${split}-images-idx3-ubyte`);
  if (!imagesFile) {
    const hint =
      path.resolve(dir) === FASHION_MNIST_DIR
        ? "Fashion-MNIST is Debian's package dataset-fashion-mnist: install it with `sudo apt-get install dataset-fashion-mnist` (or `bash scripts/setup.sh`)"
        : 'give data.dir, a directory with the MNIST-layout files (Fashion-MNIST: `sudo apt-get install dataset-fashion-mnist` puts them in /usr/share/datasets/fashion-mnist)';
    throw new KexueIOError(`no ${split}-images-idx3-ubyte(.gz) in ${dir}: ${hint}`);
  }
  const images = readIdx(imagesFile);
  if (images.dims.length !== 3) throw new FormatError(`${imagesFile}: images must have 3 dimensions (count, rows, cols), got ${images.dims.length}`);
  const [count, rows, cols] = images.dims as [number, number, number];
  const set: ImageSet = { count, rows, cols, pixels: images.data };
  const labelsFile = findIdx(dir, `${split}-labels-idx1-ubyte`);
  if (labelsFile) {
    const labels = readIdx(labelsFile);
    if (labels.dims.length !== 1 || labels.dims[0] !== count) throw new FormatError(`${labelsFile}: expected ${count} labels (one per image), got ${labels.dims.join('×')}`);
    set.labels = labels.data;
  }
  return set;
}
