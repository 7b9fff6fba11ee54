// Node's system errors (err.code 'ENOENT', ...) in the words strerror(3) uses, so that a
// message says "no such file or directory" where Node would say only "ENOENT".

const MEANINGS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a directory',
  ENOTDIR: 'not a directory',
  ELOOP: 'too many levels of symbolic links',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EIO: 'input/output error',
  EEXIST: 'file exists',
  ENAMETOOLONG: 'file name too long',
  EBUSY: 'device or resource busy',
  ETXTBSY: 'text file busy',
  ENXIO: 'no such device or address',
  EAGAIN: 'resource temporarily unavailable',
  EINVAL: 'invalid argument',
};

/** What went wrong, in words: "no such file or directory" for ENOENT; the message for other errors. */
export function describeSystemError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (code !== undefined && MEANINGS[code]) return MEANINGS[code]!;
  // Node's own wording for codes not listed: "ENOSR: out of streams resources, open 'x'".
  const words = code === undefined ? undefined : new RegExp(`^${code}: ([^,]+)`).exec(message)?.[1];
  return words ?? code ?? message;
}
