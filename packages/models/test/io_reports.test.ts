/**
 * File-system failures of the models package are worded once (core-cuda's ioError): a missing data
 * file says "no such file or directory (ENOENT)" once, a run directory on a read-only file system
 * says so rather than ENOENT. Standard input is decoded as data files are, strictly.
 */
import path from 'node:path';
import { Readable } from 'node:stream';

import { Vocab, lockRunDir, readStreamLines, readTextCorpus } from '@kexue/models';
import { describe, expect, it } from 'vitest';

import { expectCode, expectCodeAsync, useTempDir } from '../../core-cuda/test/helpers.js';
import { useReadOnlyMount } from '../../core-cuda/test/read_only_mount.js';

const readOnlyDir = useReadOnlyMount();
const tmp = useTempDir('kexue-ioreports-');

describe('file-system failures', () => {
  it('a missing data file or vocabulary: the cause in words, once', async () => {
    const missing = path.join(tmp, 'nope.jsonl');
    const e = await expectCodeAsync(readTextCorpus(missing).toArray(), 'E_IO');
    expect(e.message).toBe(`cannot read ${missing}: no such file or directory (ENOENT)`);
    expect(expectCode(() => Vocab.fromFile(missing), 'E_IO').message).toBe(`cannot read vocabulary ${missing}: no such file or directory (ENOENT)`);
  });

  it('a run directory on a read-only file system is EROFS, not ENOENT', (ctx) => {
    const dir = path.join(readOnlyDir(ctx), 'runs', 'ner');
    expect(expectCode(() => lockRunDir(dir), 'E_IO').message).toBe(`cannot create run directory ${dir}: read-only file system (EROFS)`);
  });
});

describe('readStreamLines', () => {
  const bytes = (...parts: (string | number[])[]) => parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p)));

  it('decodes a stream as files are: BOM and \\r\\n removed, lines split across chunks', async () => {
    const chunks = bytes([0xef, 0xbb, 0xbf], '浙商', '银行\r\n\n叶', '老桂\n', '博士');
    expect(await readStreamLines(Readable.from(chunks), 'standard input')).toEqual(['浙商银行', '', '叶老桂', '博士']);
  });

  it('refuses a line that is not UTF-8 with E_FORMAT naming the stream and the line', async () => {
    const chunks = bytes('浙商银行\n\n', [0x61, 0xff, 0x62], '\nok\n');
    const e = await expectCodeAsync(readStreamLines(Readable.from(chunks), 'standard input'), 'E_FORMAT');
    expect(e.message).toBe('standard input:3: invalid UTF-8');
  });
});
