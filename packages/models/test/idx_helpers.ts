/** Test data in the IDX format (the MNIST files' layout), shared by the VAE tests of models and cli. */

/** An IDX file of unsigned bytes: a zero word's type byte 0x08, the rank, big-endian dims, the data. */
export function idx(dims: number[], data: Uint8Array): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = 0x08;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(data)]);
}
