// Owns reading the named pipe: opening it with Deno.open, reopening when writers go away,
// and handing over each read's lines as one batch.

import type { Logger } from "../api/handlers.ts";
import { LineSplitter } from "../protocol/lines.ts";
import { errorMessage } from "../api/log.ts";

/** A problem with the FIFO path that stops start-up, as one line. */
export interface FifoError {
  readonly error: string;
}

/**
 * Checks that `path` is a FIFO. When it is missing and running `mkfifo` is allowed,
 * creates it (mode 0660). Returns an error value naming the path and the fix otherwise.
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
    return {
      error: `${path} exists but is not a FIFO; remove it, then create it with: mkfifo ${path}`,
    };
  }
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
}

const READ_SIZE = 64 * 1024;
const REOPEN_BACKOFF_MS = 1000;
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
const DRAIN_IDLE_CHECKS = 3;
const DRAIN_IDLE_MS = 5;

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
  /** Resolves on `stop()`, so waits that cannot be cancelled (opening the FIFO) are abandoned. */
  readonly #stopSignal = Promise.withResolvers<null>();

  constructor(path: string, options: FifoReaderOptions) {
    this.#path = path;
    this.#options = options;
    this.#splitter = new LineSplitter(options.maxLineBytes);
  }

  /** Runs the read loop; resolves once stopped. */
  async run(): Promise<void> {
    const buf = new Uint8Array(READ_SIZE);
    let file: Deno.FsFile | null = null;
    while (!this.#stopped) {
      if (!file) {
        // No read end is held while opening here, so the pipe holds nothing for us.
        this.#waitingForData = true;
        file = await this.#open();
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
   * A writer that comes and goes before the new open is waiting leaves its lines in the pipe
   * without waking that open, so `old` is read a few times meanwhile to collect them.
   */
  async #nextReader(old: Deno.FsFile, buf: Uint8Array): Promise<Deno.FsFile | null> {
    const next = this.#open();
    let settled = false;
    next.finally(() => settled = true);
    for (const delay of CATCH_UP_MS) {
      await Promise.race([this.#sleep(delay), next]);
      if (settled || this.#stopped) break;
      const read = await this.#readToEof(old, buf);
      if (read === null) break;
      if (read) await this.#deliver(this.#splitter.end());
    }
    const file = await next;
    this.#close(old);
    return file;
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
      if (!(await file.stat()).isFifo) {
        file.close();
        if (!this.#notFifoLogged) {
          this.#options.log.error(
            `${this.#path} is not a FIFO any more; not reading it. Replace it: ` +
              `rm ${this.#path} && mkfifo -m 0660 ${this.#path}`,
          );
          this.#notFifoLogged = true;
        }
        await this.#backoff();
        return null;
      }
      this.#notFifoLogged = false;
      this.#file = file;
      return file;
    } catch (e) {
      this.#options.log.error(`cannot open FIFO ${this.#path}: ${errorMessage(e)}; retrying`);
      await this.#backoff();
      return null;
    }
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
      if ("line" in r) lines.push(r.line);
      else this.#options.log.warn(`FIFO ${this.#path}: ${r.error}`);
    }
    if (lines.length === 0) return;
    try {
      await this.#options.onBatch(lines);
    } catch (e) {
      this.#options.log.error(`handling FIFO lines: ${errorMessage(e)}`);
    }
  }
}
