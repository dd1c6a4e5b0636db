// Owns the readiness checks an operator's /readyz reports: each returns the problems it finds,
// one short line each, or an empty list. The server combines them in its readiness callback.

import { errorMessage } from "../api/log.ts";
import { currentIdentity } from "../sources/fifo_guard.ts";

const READ_OWNER = 0o400;
const READ_GROUP = 0o040;
const READ_OTHER = 0o004;
const ROOT_UID = 0;

/**
 * Problems with the FIFO at `path`: missing, not a named pipe, or not readable by this process.
 * Readability is judged from the mode bits only when the process can learn its own uid and gid
 * (--allow-sys=uid,gid); otherwise the FIFO reader's own failure to open it is what reports it.
 */
export function fifoProblems(path: string): string[] {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [`FIFO ${path} is missing`];
    return [`FIFO ${path} cannot be checked: ${errorMessage(e)}`];
  }
  if (!info.isFifo) return [`FIFO ${path} is not a named pipe`];
  const who = currentIdentity();
  if (who !== null && !readableBy(info, who)) {
    return [`FIFO ${path} is not readable by this process`];
  }
  return [];
}

/**
 * Whether a file's mode lets a process read it (an open would block on a FIFO with no
 * writer, so the mode bits decide; root reads anything).
 */
export function readableBy(
  info: Pick<Deno.FileInfo, "mode" | "uid" | "gid">,
  who: { uid: number | null; gid: number | null },
): boolean {
  if (who.uid === ROOT_UID) return true;
  const mode = info.mode ?? 0;
  if (who.uid !== null && who.uid === info.uid) return (mode & READ_OWNER) !== 0;
  if (who.gid !== null && who.gid === info.gid) return (mode & READ_GROUP) !== 0;
  return (mode & READ_OTHER) !== 0;
}
