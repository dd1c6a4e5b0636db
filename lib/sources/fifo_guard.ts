// Owns two facts about an existing FIFO: that this process may read it (if not, one line
// naming the FIFO's owner, group and mode and the user and groups the server runs as), and
// that no other process reads it (an exclusive flock on a read descriptor; /proc/locks names
// the holder's PID). Deno's sandbox limits what is visible: the uid, gid and groups need
// --allow-sys=uid,gid, /proc (locks, self/status) needs --allow-all, and opening the FIFO for
// writing needs --allow-write. Each check uses what is granted and says what it could not see.

import { closeSync, constants, openSync, readSync } from "node:fs";
import process from "node:process";

const PROC_LOCKS = "/proc/locks";
const PROC_STATUS = "/proc/self/status";
const PASSWD = "/etc/passwd";
const GROUP = "/etc/group";
const PERMISSION_BITS = 0o7777;

/** Who this process is, for messages: ids with names where they can be found. */
export interface Identity {
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
}

/**
 * Opens `path` for reading without blocking (O_NONBLOCK: a FIFO open waits for no writer), so
 * the kernel decides whether this process may read it (mode bits, ACLs, capabilities). Returns
 * the descriptor, which the caller keeps open until its real reader is open (closing it at once
 * would drop a line from a writer that was blocked waiting for a reader), or the error.
 */
export function openForCheck(path: string): { fd: number } | { error: unknown } {
  try {
    return { fd: openSync(path, constants.O_RDONLY | constants.O_NONBLOCK) };
  } catch (e) {
    return { error: e };
  }
}

/**
 * Reads what is in the pipe through a descriptor from `openForCheck`, without blocking: the
 * number of bytes read, 0 at end of file (no writer and nothing left), or null while a writer
 * holds the FIFO with nothing in it yet (EAGAIN). Throws on any other failure.
 */
export function readCheck(fd: number, buf: Uint8Array): number | null {
  try {
    return readSync(fd, buf, 0, buf.length, null);
  } catch (e) {
    if (e instanceof Error && "code" in e && e.code === "EAGAIN") return null;
    throw e;
  }
}

/** Closes a descriptor from `openForCheck`. */
export function closeCheck(fd: number): void {
  try {
    closeSync(fd);
  } catch { /* already closed */ }
}

/** Whether `error` (from `openForCheck`) says this process may not read the file. */
export function isAccessDenied(error: unknown): boolean {
  return error instanceof Error && "code" in error &&
    (error.code === "EACCES" || error.code === "EPERM");
}

/**
 * The uid, gid and supplementary groups of this process, or null when Deno's sandbox hides
 * them: Deno.uid()/gid() and process.getgroups() need --allow-sys=uid,gid, and
 * /proc/self/status (`Uid:`, `Gid:`, `Groups:`) needs --allow-all. Never prompts.
 */
export function currentIdentity(): Identity | null {
  const granted = (kind: "uid" | "gid") =>
    Deno.permissions.querySync({ name: "sys", kind }).state === "granted";
  if (granted("uid") && granted("gid")) {
    try {
      return { uid: Deno.uid() ?? -1, gid: Deno.gid() ?? -1, groups: process.getgroups?.() ?? [] };
    } catch { /* fall through to /proc */ }
  }
  const status = readText(PROC_STATUS);
  if (status === null) return null;
  const field = (name: string) =>
    (new RegExp(`^${name}:[ \\t]*(.*)$`, "m").exec(status)?.[1] ?? "").trim().split(/\s+/)
      .filter((w) => w !== "").map(Number);
  return { uid: field("Uid")[0] ?? -1, gid: field("Gid")[0] ?? -1, groups: field("Groups") };
}

/**
 * The one-line reason the server cannot read the FIFO at `path` (described by `info`),
 * naming its owner, group and mode and the identity the server runs as.
 */
export function unreadableMessage(
  path: string,
  facts: { readonly info: Deno.FileInfo; readonly identity: Identity | null },
): string {
  const { info, identity } = facts;
  const users = idNames(PASSWD);
  const groups = idNames(GROUP);
  const user = (id: number | null) => named(users, id);
  const group = (id: number | null) => named(groups, id);
  const mode = ((info.mode ?? 0) & PERMISSION_BITS).toString(8).padStart(4, "0");
  const runsAs = identity === null
    ? "the server's user and groups are hidden from it (grant --allow-sys=uid,gid to see them here)"
    : `the server runs as user ${user(identity.uid)}, group ${group(identity.gid)}, ` +
      `supplementary groups ${
        identity.groups.length === 0 ? "none" : identity.groups.map((g) => group(g)).join(", ")
      }`;
  return `cannot read FIFO ${path} (owner ${user(info.uid)}, group ${group(info.gid)}, ` +
    `mode ${mode}): ${runsAs}; give the FIFO's group read access (chmod g+r) and add the ` +
    `server's user to that group (SupplementaryGroups= under systemd)`;
}

/**
 * The PID of another process holding a flock on the file `info` describes, read from
 * /proc/locks (lines like `3: FLOCK  ADVISORY  WRITE 1234 fe:00:2147000 0 EOF`, the device as
 * major:minor in hex, then the inode); null when there is none; undefined when /proc/locks
 * cannot be read (Deno wants --allow-all for /proc).
 */
export function fifoLockHolder(info: Deno.FileInfo): number | null | undefined {
  const text = readText(PROC_LOCKS);
  if (text === null) return undefined;
  if (info.dev === null || info.ino === null) return null;
  const want = deviceNumbers(info.dev);
  for (const line of text.split("\n")) {
    const m = /^\d+:\s+FLOCK\s+\S+\s+\S+\s+(-?\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/i.exec(line);
    if (!m) continue; // Not a flock, or a blocked waiter ("->").
    const pid = Number(m[1]);
    if (
      parseInt(m[2], 16) === want.major && parseInt(m[3], 16) === want.minor &&
      Number(m[4]) === info.ino && pid !== Deno.pid
    ) {
      return pid;
    }
  }
  return null;
}

/** The one-line refusal when another process (`pid`, or unknown) already reads the FIFO. */
export function alreadyReadMessage(path: string, pid: number | null | undefined): string {
  const who = typeof pid === "number" && pid > 0
    ? `another process (PID ${pid}), most likely another push-server`
    : `another process holding its lock, most likely another push-server (fuser -v ${path} ` +
      `names it)`;
  return `FIFO ${path} is already being read by ${who}; two readers would split the lines ` +
    `between them. Stop it, or give this server its own --fifo`;
}

/**
 * Whether another process holds the FIFO's lock, tested by taking it for a moment through a
 * read+write descriptor (which, unlike a read-only one, opens without waiting for a writer).
 * Returns undefined when opening for writing is not granted (--allow-write) or fails.
 */
export async function lockTakenElsewhere(path: string): Promise<boolean | undefined> {
  if (Deno.permissions.querySync({ name: "write", path }).state !== "granted") return undefined;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true, write: true });
  } catch {
    return undefined;
  }
  try {
    // Closing the descriptor releases the lock; it never reads, so it takes no lines.
    return !(await file.tryLock(true));
  } finally {
    file.close();
  }
}

/**
 * Takes the exclusive flock that marks `file` (a read descriptor of the FIFO) as this server's.
 * Returns null on success, or the refusal line when another process holds it.
 */
export async function lockFifo(
  file: Deno.FsFile,
  facts: { readonly path: string; readonly info: Deno.FileInfo },
): Promise<string | null> {
  if (await file.tryLock(true)) return null;
  return alreadyReadMessage(facts.path, fifoLockHolder(facts.info));
}

/** Linux's split of st_dev into major and minor (glibc's gnu_dev_major/minor). */
function deviceNumbers(dev: number): { major: number; minor: number } {
  const low = dev % 2 ** 32;
  const high = Math.floor(dev / 2 ** 32);
  return {
    major: ((low >>> 8) & 0xfff) | ((high & 0xfffff000) >>> 0),
    minor: ((low & 0xff) | (Math.floor(dev / 2 ** 12) % 2 ** 32 & 0xffffff00)) >>> 0,
  };
}

/** id → name from a passwd- or group-format file, or an empty map when it cannot be read. */
function idNames(file: string): Map<number, string> {
  const names = new Map<number, string>();
  for (const line of (readText(file) ?? "").split("\n")) {
    const [name, , id] = line.split(":");
    if (name && id !== undefined && /^\d+$/.test(id) && !names.has(Number(id))) {
      names.set(Number(id), name);
    }
  }
  return names;
}

function named(names: Map<number, string>, id: number | null): string {
  if (id === null || id < 0) return "unknown";
  const name = names.get(id);
  return name === undefined ? `${id}` : `${name} (${id})`;
}

function readText(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}
