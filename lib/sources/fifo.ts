// Owns reading the named pipe: checking it at start-up, opening it with Deno.open, reopening
// when writers go away, holding the lock that keeps a second server off it, and handing over
// each read's lines as one batch.

import type { Logger } from "../api/handlers.ts";
import { LineSplitter } from "../protocol/lines.ts";
import { errorMessage } from "../api/log.ts";
import {
  alreadyReadMessage,
  closeCheck,
  currentIdentity,
  fifoLockHolder,
  isAccessDenied,
  lockFifo,
  lockTakenElsewhere,
  openForCheck,
  readCheck,
  unreadableMessage,
} from "./fifo_guard.ts";

/**
 * Non-blocking read descriptors opened by `prepareFifo` to check access, by path. Each stays
 * open until the FifoReader of that path has its own descriptor, so that a writer the check let
 * through (one that was blocked waiting for a reader) never loses its line to a reader-less pipe.
 */
const checkDescriptors = new Map<string, number>();

function closeCheckDescriptor(path: string): void {
  const fd = checkDescriptors.get(path);
  if (fd === undefined) return;
  checkDescriptors.delete(path);
  closeCheck(fd);
}

/** A problem with the FIFO path that stops start-up, as one line. */
export interface FifoError {
  readonly error: string;
}

/**
 * Checks that `path` is a FIFO this process may read and that no other process reads (holds
 * its lock). When it is missing and running `mkfifo` is allowed, creates it (mode 0660).
 * Returns an error value naming the path and the fix otherwise.
 */
export async function prepareFifo(path: string, log: Logger): Promise<FifoError | null> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      return { error: `cannot stat FIFO ${path}: ${errorMessage(e)}` };
    }
    return await createFifo(path, log);
  }
  if (!info.isFifo) {
    // Never advise removing it: it may be a directory or a file someone needs.
    return {
      error: info.isDirectory
        ? `${path} is a directory, not a FIFO; name a FIFO inside it, e.g. --fifo ${
          path.replace(/\/+$/, "")
        }/in.fifo`
        : `${path} exists but is not a FIFO; pass another path to --fifo, or move the file ` +
          `aside (mv ${path} ${path}.old) and run: mkfifo -m 0660 ${path}`,
    };
  }
  const check = openForCheck(path);
  if ("error" in check) {
    if (isAccessDenied(check.error)) {
      return { error: unreadableMessage(path, { info, identity: currentIdentity() }) };
    }
    return { error: `cannot open FIFO ${path}: ${errorMessage(check.error)}` };
  }
  // A server that has read the FIFO holds its flock (see FifoReader): /proc/locks names it
  // (with --allow-all), or a read+write descriptor tests it (with --allow-write). With neither,
  // or against a server that has not yet seen a writer, the lock is contested when the next
  // writer comes, and the loser stops before reading anything (FifoReaderOptions.onFatal).
  const holder = fifoLockHolder(info);
  const taken = holder === undefined ? await lockTakenElsewhere(path) : holder !== null;
  if (taken) {
    closeCheck(check.fd);
    return { error: alreadyReadMessage(path, holder) };
  }
  closeCheckDescriptor(path);
  checkDescriptors.set(path, check.fd);
  return null;
}

async function createFifo(path: string, log: Logger): Promise<FifoError | null> {
  const missing = `FIFO ${path} does not exist; create it with: mkfifo -m 0660 ${path}`;
  const granted =
    Deno.permissions.querySync({ name: "run", command: "mkfifo" }).state === "granted";
  if (!granted) {
    return { error: `${missing} (or grant --allow-run=mkfifo to let the server create it)` };
  }
  try {
    const { success, stderr } = await new Deno.Command("mkfifo", {
      args: ["-m", "0660", path],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!success) {
      return { error: `mkfifo ${path} failed: ${new TextDecoder().decode(stderr).trim()}` };
    }
  } catch (e) {
    return { error: `${missing} (running mkfifo failed: ${errorMessage(e)})` };
  }
  log.info(`created FIFO ${path}`);
  return null;
}

export interface FifoReaderOptions {
  readonly maxLineBytes: number;
  readonly log: Logger;
  /** Receives the lines of one read, in order. Reading waits until the promise settles. */
  readonly onBatch: (lines: string[]) => void | Promise<void>;
  /**
   * Called once, with one line, when reading cannot go on: another process holds the FIFO's
   * lock (a second server). Reading has stopped by then. Without it, the line is logged as an
   * error and the process exits with code 2.
   */
  readonly onFatal?: (message: string) => void;
  /** A line was dropped (and logged): too long, or not UTF-8. For the metrics. */
  readonly onDropped?: (reason: "too_long" | "invalid_utf8") => void;
}

/**
 * What a health check can read: `open` while a read descriptor is open (between writers too,
 * while the next open waits), `waiting` until the first writer comes, `unreadable` while opening
 * fails (permissions, not a FIFO any more); `lastError` is the last failure, null once it opens.
 */
export interface FifoState {
  readonly state: "open" | "waiting" | "unreadable";
  readonly lastError: string | null;
}

/** Exit code for a FIFO another process already reads, as for other start-up errors. */
const EXIT_USAGE = 2;
const READ_SIZE = 64 * 1024;
/**
 * Open failures are retried after 1 s, 2 s, 4 s, then every 5 s, each logged once. The cap is
 * short: a transient failure (out of descriptors, EMFILE) must not hold delivery up for long.
 */
const REOPEN_BACKOFF_MS = 1000;
const REOPEN_BACKOFF_MAX_MS = 5000;
/** How often the path is checked for a new FIFO while waiting for a writer. */
const REPLACED_CHECK_MS = 500;
/** Pauses between reads of the old reader while the next open gets going (see #nextReader). */
const CATCH_UP_MS = [1, 5, 20, 50, 200];
/** How long `stop()` drains the pipe when not told (see `StopOptions.drainMs`). */
export const DEFAULT_DRAIN_MS = 2000;
/**
 * A drain takes the pipe for empty once a read has been waiting for data (or EOF has been
 * seen) over this many consecutive checks, DRAIN_IDLE_MS apart. Several short checks rather
 * than one long timer: a read that completed while the event loop was busy is handled between
 * two checks, so a busy loop does not pass for an empty pipe.
 */
const DRAIN_IDLE_CHECKS = 10;
const DRAIN_IDLE_MS = 10;

/** How `FifoReader.stop` ends. */
export interface StopOptions {
  /**
   * Most milliseconds to keep reading what is already in the pipe, delivering it through
   * `onBatch`, before stopping. 0 stops at once. Default DEFAULT_DRAIN_MS.
   */
  readonly drainMs?: number;
}

/** Reads `path` forever (until `stop`), reopening it each time the last writer closes. */
export class FifoReader {
  readonly #path: string;
  readonly #options: FifoReaderOptions;
  readonly #splitter: LineSplitter;
  #file: Deno.FsFile | null = null;
  #stopped = false;
  #stopping: Promise<void> | null = null;
  #delivering: Promise<void> = Promise.resolve();
  /** A batch is being handed to onBatch. */
  #handingOver = false;
  /** The loop waits for bytes that are not there: a read is pending, or no reader is held. */
  #waitingForData = false;
  /** The last read of the held reader met EOF: no writer, nothing in the pipe. */
  #atEof = false;
  /** Reads that returned bytes; a drain sees progress when this changes. */
  #dataReads = 0;
  #notFifoLogged = false;
  #openFailures = 0;
  #state: FifoState = { state: "waiting", lastError: null };
  /**
   * The read descriptor holding the FIFO's exclusive flock, kept open (idle) after reading moves
   * on to a newer descriptor, so the lock lasts as long as the server reads this FIFO.
   */
  #lock: { file: Deno.FsFile; dev: number | null; ino: number | null; idle: boolean } | null = null;
  /** Resolves on `stop()`, so waits that cannot be cancelled (opening the FIFO) are abandoned. */
  readonly #stopSignal = Promise.withResolvers<null>();

  constructor(path: string, options: FifoReaderOptions) {
    this.#path = path;
    this.#options = options;
    this.#splitter = new LineSplitter(options.maxLineBytes);
  }

  /** Whether the FIFO is open, awaited, or failing to open (for health checks). */
  get state(): FifoState {
    return this.#state;
  }

  /** Runs the read loop; resolves once stopped. */
  async run(): Promise<void> {
    const buf = new Uint8Array(READ_SIZE);
    let file: Deno.FsFile | null = null;
    while (!this.#stopped) {
      if (!file) {
        // The only read end held here, if any, is the start-up check's: what a writer left in
        // the pipe before this open was waiting is read through it.
        this.#waitingForData = true;
        file = await this.#openWhileReading(() => this.#readCheckDescriptor(buf));
        this.#waitingForData = false;
      }
      if (!file) continue;
      if ((await this.#readToEof(file, buf)) === null) {
        this.#close(file);
        file = null;
        continue;
      }
      if (this.#stopped) break;
      // Every writer has closed: a last line without a newline is complete now.
      await this.#deliver(this.#splitter.end());
      file = await this.#nextReader(file, buf);
    }
    if (file) this.#close(file);
  }

  /**
   * Reads until every writer has closed. Returns whether anything was read, or null when
   * reading failed (or stopped).
   */
  async #readToEof(file: Deno.FsFile, buf: Uint8Array): Promise<boolean | null> {
    let any = false;
    try {
      for (;;) {
        this.#waitingForData = true;
        let n: number | null;
        try {
          n = await file.read(buf);
        } finally {
          this.#waitingForData = false;
        }
        this.#atEof = n === null;
        if (n === null) return any;
        if (this.#stopped) return null;
        this.#dataReads++;
        any = true;
        await this.#deliver(this.#splitter.push(buf.subarray(0, n)));
      }
    } catch (e) {
      if (!this.#stopped) {
        this.#options.log.error(`reading FIFO ${this.#path}: ${errorMessage(e)}`);
      }
      return null;
    }
  }

  /**
   * Opens the FIFO anew, to wait for the next writer, while still holding `old`: a FIFO that
   * no process has open discards what is in it, so the reader count must never drop to zero.
   */
  async #nextReader(old: Deno.FsFile, buf: Uint8Array): Promise<Deno.FsFile | null> {
    const file = await this.#openWhileReading(() => this.#readToEof(old, buf));
    this.#close(old);
    return file;
  }

  /**
   * Opens the FIFO (see #open) while an older read end is still held. A writer that comes and
   * goes before the new open is waiting in the kernel leaves its lines in the pipe without
   * waking that open, so the older end is read a few times meanwhile (`readOld`: whether it
   * read something up to end of file, or null to stop) to collect them.
   */
  async #openWhileReading(
    readOld: () => Promise<boolean | null>,
  ): Promise<Deno.FsFile | null> {
    const next = this.#open();
    let settled = false;
    next.finally(() => settled = true);
    for (const delay of CATCH_UP_MS) {
      await Promise.race([this.#sleep(delay), next]);
      if (settled || this.#stopped) break;
      const read = await readOld();
      if (read === null) break;
      // Every writer has closed: a last line without a newline is complete now.
      if (read) await this.#deliver(this.#splitter.end());
    }
    return await next;
  }

  /**
   * Reads the start-up check's descriptor (see `prepareFifo`), which holds the pipe until the
   * first open: like #readToEof, but without blocking. False while a writer is still there (its
   * line may go on); null once there is no such descriptor, or reading it failed.
   *
   * This reads before the lock is taken (that needs the first open). Against a second server
   * that passed its start-up check too (both started before any writer, without /proc/locks
   * or --allow-write), lines written in the few hundred milliseconds of catch-up could go to
   * either; the lock still stops one of them at its first open.
   */
  async #readCheckDescriptor(buf: Uint8Array): Promise<boolean | null> {
    let any = false;
    for (;;) {
      // Looked up each time: delivering awaits, and stop() may close it meanwhile.
      const fd = checkDescriptors.get(this.#path);
      if (fd === undefined || this.#stopped) return null;
      let n: number | null;
      try {
        n = readCheck(fd, buf);
      } catch (e) {
        this.#options.log.error(`reading FIFO ${this.#path}: ${errorMessage(e)}`);
        return null;
      }
      if (n === null) return false;
      this.#atEof = n === 0;
      if (n === 0) return any;
      this.#dataReads++;
      any = true;
      await this.#deliver(this.#splitter.push(buf.subarray(0, n)));
    }
  }

  /**
   * Stops reading. First, for at most `drainMs`, keeps reading what writers already put in
   * the pipe, until the pipe is empty, and hands it over through `onBatch`: a writer whose
   * write succeeded counts its lines as accepted. Then stops, and resolves once the lines
   * already read have been handed over (a pending open or read cannot be cancelled, so it is
   * not awaited).
   *
   * Not delivered: what is still in the pipe when `drainMs` runs out; anything written after
   * the drain found the pipe empty; and an unfinished line (no newline yet) whose writer still
   * has the FIFO open, which is logged with its size.
   */
  stop(options: StopOptions = {}): Promise<void> {
    this.#stopping ??= this.#stop(options.drainMs ?? DEFAULT_DRAIN_MS);
    return this.#stopping;
  }

  async #stop(drainMs: number): Promise<void> {
    if (drainMs > 0) await this.#drain(drainMs);
    this.#stopped = true;
    this.#stopSignal.resolve(null);
    if (this.#file) this.#close(this.#file);
    this.#releaseLock();
    closeCheckDescriptor(this.#path);
    await this.#delivering;
    const held = this.#splitter.heldBytes;
    if (held > 0) {
      this.#options.log.warn(
        `FIFO ${this.#path}: stopped with ${held} bytes of a line that has no newline yet; ` +
          "not delivered",
      );
    }
  }

  /** Lets the read loop run until the pipe is empty or `ms` have passed. */
  async #drain(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    let idleChecks = 0;
    let seen = this.#dataReads;
    while (idleChecks < DRAIN_IDLE_CHECKS) {
      if (Date.now() >= deadline) {
        this.#options.log.warn(
          `FIFO ${this.#path}: stopped draining after ${ms} ms; lines still in the pipe ` +
            "are not delivered",
        );
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, DRAIN_IDLE_MS));
      const idle = !this.#handingOver && (this.#waitingForData || this.#atEof) &&
        this.#dataReads === seen;
      idleChecks = idle ? idleChecks + 1 : 0;
      seen = this.#dataReads;
    }
  }

  async #open(): Promise<Deno.FsFile | null> {
    // Blocks (in Deno's thread pool, not the event loop) until a writer opens the FIFO, which
    // may be never: `stop()` must not wait for it, or shutdown hangs until a writer comes.
    let opened: Deno.FileInfo | null = null;
    try {
      opened = await Deno.stat(this.#path);
    } catch { /* missing for now: the open below reports it */ }
    const opening = Deno.open(this.#path, { read: true });
    let settled = false;
    opening.then(() => settled = true, () => settled = true);
    try {
      const file = await Promise.race([
        opening,
        this.#stopSignal.promise,
        this.#replaced(opened, () => settled),
      ]);
      if (file === null || this.#stopped) {
        opening.then((f) => f.close(), () => {});
        if (!this.#stopped) this.#options.log.info(`FIFO ${this.#path} was replaced; reopening`);
        return null;
      }
      // A plain file where the FIFO was (a writer that found the path missing creates one)
      // would be read to its end, reopened and read again, forever, flooding every client.
      const info = await file.stat();
      if (!info.isFifo) {
        file.close();
        const problem = `${this.#path} is not a FIFO any more; not reading it. Replace it: ` +
          `rm ${this.#path} && mkfifo -m 0660 ${this.#path}`;
        if (!this.#notFifoLogged) this.#options.log.error(problem);
        this.#notFifoLogged = true;
        this.#state = { state: "unreadable", lastError: problem };
        await this.#backoff();
        return null;
      }
      this.#notFifoLogged = false;
      const refusal = await this.#holdLock(file, info);
      if (refusal !== null) {
        file.close();
        this.#fatal(refusal);
        return null;
      }
      closeCheckDescriptor(this.#path); // This descriptor keeps the pipe open from now on.
      this.#openFailures = 0;
      this.#state = { state: "open", lastError: null };
      this.#file = file;
      return file;
    } catch (e) {
      // Permissions changed, or the FIFO was replaced by one this process cannot read: an
      // error, logged once per attempt, with attempts spaced out exponentially.
      const delay = Math.min(
        REOPEN_BACKOFF_MS * 2 ** this.#openFailures,
        REOPEN_BACKOFF_MAX_MS,
      );
      this.#openFailures++;
      const problem = `cannot open FIFO ${this.#path}: ${errorMessage(e)}`;
      this.#state = { state: "unreadable", lastError: problem };
      this.#options.log.error(`${problem}; retrying in ${delay / 1000} s`);
      await this.#sleep(delay);
      return null;
    }
  }

  /**
   * Makes sure this server holds the exclusive flock of the FIFO `file` reads (taken on the
   * first descriptor of each FIFO inode, then kept). Returns the refusal line when another
   * process holds it; nothing has been read from `file` then.
   */
  async #holdLock(file: Deno.FsFile, info: Deno.FileInfo): Promise<string | null> {
    const held = this.#lock;
    if (held && held.dev === info.dev && held.ino === info.ino) return null;
    const refusal = await lockFifo(file, { path: this.#path, info });
    if (refusal !== null) return refusal;
    // The FIFO was replaced: the old inode's lock is no longer needed.
    this.#releaseLock();
    this.#lock = { file, dev: info.dev, ino: info.ino, idle: false };
    return null;
  }

  /** Lets go of the lock; its descriptor is closed now if reading is done with it. */
  #releaseLock(): void {
    const held = this.#lock;
    this.#lock = null;
    if (held?.idle) {
      try {
        held.file.close();
      } catch { /* already closed */ }
    }
  }

  #fatal(message: string): void {
    this.#stopped = true;
    this.#stopSignal.resolve(null);
    this.#state = { state: "unreadable", lastError: message };
    if (this.#options.onFatal) {
      this.#options.onFatal(message);
      return;
    }
    this.#options.log.error(message);
    Deno.exit(EXIT_USAGE);
  }

  /**
   * Resolves null once the path names another file than `opened` (the FIFO was removed and
   * made anew while we waited for a writer on the old one, which no writer can reach now).
   * Never resolves while the open is pending on the right file; stops once `done()`.
   */
  async #replaced(opened: Deno.FileInfo | null, done: () => boolean): Promise<null> {
    if (!opened) return await new Promise<never>(() => {});
    while (!done() && !this.#stopped) {
      await this.#sleep(REPLACED_CHECK_MS);
      if (done() || this.#stopped) break;
      try {
        const now = await Deno.stat(this.#path);
        if (now.ino !== opened.ino || now.dev !== opened.dev) return null;
      } catch {
        // Removed and not yet made anew: keep waiting on the old one for now.
      }
    }
    return await new Promise<never>(() => {});
  }

  #sleep(ms: number): Promise<unknown> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    return Promise.race([
      new Promise((resolve) => timer = setTimeout(resolve, ms)),
      this.#stopSignal.promise,
    ]).finally(() => clearTimeout(timer));
  }

  /** Waits before the next open attempt, or until stopped. */
  async #backoff(): Promise<void> {
    await this.#sleep(REOPEN_BACKOFF_MS);
  }

  #close(file: Deno.FsFile): void {
    if (this.#file === file) this.#file = null;
    if (this.#lock?.file === file && !this.#stopped) {
      this.#lock.idle = true; // Kept open: it holds the lock.
      return;
    }
    try {
      file.close();
    } catch { /* already closed */ }
  }

  #deliver(results: ReturnType<LineSplitter["push"]>): Promise<void> {
    this.#handingOver = true;
    this.#delivering = this.#handOver(results).finally(() => this.#handingOver = false);
    return this.#delivering;
  }

  async #handOver(results: ReturnType<LineSplitter["push"]>): Promise<void> {
    const lines: string[] = [];
    for (const r of results) {
      if ("line" in r) {
        lines.push(r.line);
      } else {
        this.#options.log.warn(`FIFO ${this.#path}: ${r.error}`);
        this.#options.onDropped?.(/UTF-8/.test(r.error) ? "invalid_utf8" : "too_long");
      }
    }
    if (lines.length === 0) return;
    try {
      await this.#options.onBatch(lines);
    } catch (e) {
      this.#options.log.error(`handling FIFO lines: ${errorMessage(e)}`);
    }
  }
}
