// Owns rate-limiting log lines by kind: at most `perWindow` lines of each kind per window of
// `windowMs`, a count of the lines held back, and one summary line per kind once a window that
// held some back has ended ("37 more Origin refusals suppressed in the last 10 s"). Time is
// passed in as milliseconds from any fixed origin; this module reads no clock.

export interface LogLimiterOptions {
  /** Lines of one kind let through per window (0 suppresses every line, counting them). */
  readonly perWindow: number;
  /** Length of a window, in milliseconds. */
  readonly windowMs: number;
}

/** Ten lines of each kind per ten seconds: enough to diagnose, too few to fill a journal. */
export const DEFAULT_LOG_LIMIT: LogLimiterOptions = { perWindow: 10, windowMs: 10_000 };

/** What `admit` decided for one line. */
export interface LogAdmission {
  /** Whether to log this line. */
  readonly log: boolean;
  /** The summary of this kind's previous window, to log before the line; null when none. */
  readonly summary: string | null;
}

interface KindWindow {
  start: number;
  logged: number;
  suppressed: number;
}

const MS_PER_SECOND = 1000;

/** Decides which lines of each kind are logged, and words the summaries of the rest. */
export class LogLimiter {
  readonly #perWindow: number;
  readonly #windowMs: number;
  /** One entry per kind seen in its current window; kinds are a small closed set. */
  readonly #windows = new Map<string, KindWindow>();

  constructor(options: LogLimiterOptions = DEFAULT_LOG_LIMIT) {
    if (!Number.isInteger(options.perWindow) || options.perWindow < 0) {
      throw new RangeError(`perWindow must be an integer >= 0, got ${options.perWindow}`);
    }
    if (!(options.windowMs > 0)) {
      throw new RangeError(`windowMs must be > 0, got ${options.windowMs}`);
    }
    this.#perWindow = options.perWindow;
    this.#windowMs = options.windowMs;
  }

  /**
   * Decides whether one line of `kind` at `nowMs` is logged. A window starts at a kind's first
   * line and lasts `windowMs`; the first line after it ends starts the next one and carries the
   * summary of the last, if it suppressed anything.
   */
  admit(kind: string, nowMs: number): LogAdmission {
    let summary: string | null = null;
    let window = this.#windows.get(kind);
    if (window && nowMs - window.start >= this.#windowMs) {
      summary = this.#summary(kind, window, nowMs);
      window = undefined;
    }
    if (!window) {
      window = { start: nowMs, logged: 0, suppressed: 0 };
      this.#windows.set(kind, window);
    }
    if (window.logged < this.#perWindow) {
      window.logged++;
      return { log: true, summary };
    }
    window.suppressed++;
    return { log: false, summary };
  }

  /**
   * Ends every window that has run its length by `nowMs` and returns the summaries of those that
   * suppressed lines, in the order their kinds were first seen. Call it from a periodic timer so
   * that a burst's summary does not wait for the next line of its kind.
   */
  flush(nowMs: number): string[] {
    const summaries: string[] = [];
    for (const [kind, window] of this.#windows) {
      if (nowMs - window.start < this.#windowMs) continue;
      this.#windows.delete(kind);
      const summary = this.#summary(kind, window, nowMs);
      if (summary !== null) summaries.push(summary);
    }
    return summaries;
  }

  /** The summaries of every window still open, ended early (at shutdown, say). */
  drain(nowMs: number): string[] {
    const summaries: string[] = [];
    for (const [kind, window] of this.#windows) {
      const summary = this.#summary(kind, window, nowMs);
      if (summary !== null) summaries.push(summary);
    }
    this.#windows.clear();
    return summaries;
  }

  #summary(kind: string, window: KindWindow, nowMs: number): string | null {
    if (window.suppressed === 0) return null;
    // Every suppressed line happened between the window's start and now.
    const seconds = Math.max(1, Math.round((nowMs - window.start) / MS_PER_SECOND));
    return `${window.suppressed} more ${kind} suppressed in the last ${seconds} s`;
  }
}
