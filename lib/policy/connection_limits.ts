// Owns admission of new WebSocket connections: the cap on connections in all
// (--max-connections), the cap per client address (--max-connections-per-ip) and the handshake
// rate per address (--handshake-rate-per-ip). Time is passed in; the caller sweeps idle entries.

import { type RateLimit, TokenBucket } from "./token_bucket.ts";

/** HTTP statuses of a refused admission. */
export const AdmissionStatus = {
  /** Every slot is taken: RFC 9110 §15.6.4, the server is temporarily unable. */
  SERVICE_UNAVAILABLE: 503,
  /** This address has too many connections or handshakes: RFC 6585 §4. */
  TOO_MANY_REQUESTS: 429,
} as const;

/** Why a connection was refused; also the `reason` label of push_limit_refusals_total. */
export type RefusalReason = "max_connections" | "per_ip_connections" | "per_ip_handshake_rate";

export const REFUSAL_REASONS: readonly RefusalReason[] = [
  "max_connections",
  "per_ip_connections",
  "per_ip_handshake_rate",
];

export type Admission =
  | { readonly ok: true }
  | {
    readonly ok: false;
    readonly status: 503 | 429;
    readonly reason: RefusalReason;
    /** One line for the response body. */
    readonly body: string;
  };

/** The limits; a missing or non-positive value means no limit. */
export interface ConnectionLimitSettings {
  readonly maxConnections?: number;
  readonly maxConnectionsPerIp?: number;
  /** Handshakes per second per address; the burst is the same number. */
  readonly handshakeRatePerIp?: number;
}

interface PerAddress {
  open: number;
  handshakes: TokenBucket | null;
}

const ADMITTED: Admission = { ok: true };

/**
 * Counts admitted connections, in all and per address. Call `admit` once per handshake, before
 * the 101; on `ok`, call `release` exactly once when that connection ends (or is refused later).
 */
export class ConnectionLimits {
  readonly #max: number;
  readonly #maxPerIp: number;
  readonly #rate: RateLimit | null;
  readonly #byAddress = new Map<string, PerAddress>();
  #open = 0;

  constructor(settings: ConnectionLimitSettings) {
    this.#max = positiveOr(settings.maxConnections, Infinity);
    this.#maxPerIp = positiveOr(settings.maxConnectionsPerIp, Infinity);
    const rate = positiveOr(settings.handshakeRatePerIp, 0);
    this.#rate = rate > 0 ? { perSecond: rate, burst: Math.max(1, rate) } : null;
  }

  /** Connections admitted and not yet released. */
  get open(): number {
    return this.#open;
  }

  /** Addresses tracked (for tests and the status page). */
  get addresses(): number {
    return this.#byAddress.size;
  }

  /** Decides on one handshake from `address` at `now` (ms); on ok, the slot is taken. */
  admit(address: string, now: number): Admission {
    if (this.#open >= this.#max) {
      return refuse(
        AdmissionStatus.SERVICE_UNAVAILABLE,
        "max_connections",
        `Server is at its limit of ${this.#max} connections`,
      );
    }
    const perAddress = this.#tracksAddresses() ? this.#entry(address, now) : null;
    if (perAddress) {
      if (perAddress.handshakes && !perAddress.handshakes.take(now)) {
        return refuse(
          AdmissionStatus.TOO_MANY_REQUESTS,
          "per_ip_handshake_rate",
          `Too many handshakes from ${address}`,
        );
      }
      if (perAddress.open >= this.#maxPerIp) {
        return refuse(
          AdmissionStatus.TOO_MANY_REQUESTS,
          "per_ip_connections",
          `Too many connections from ${address}`,
        );
      }
      perAddress.open++;
    }
    this.#open++;
    return ADMITTED;
  }

  /** Gives back the slot of a connection `admit` let in. */
  release(address: string): void {
    if (this.#open === 0) throw new Error("Cannot release a connection: none is admitted");
    this.#open--;
    const perAddress = this.#byAddress.get(address);
    if (perAddress && perAddress.open > 0) perAddress.open--;
  }

  /** Forgets addresses with no connection and a full handshake bucket; call it periodically. */
  sweep(now: number): void {
    for (const [address, entry] of this.#byAddress) {
      if (entry.open === 0 && (entry.handshakes === null || entry.handshakes.isFull(now))) {
        this.#byAddress.delete(address);
      }
    }
  }

  #tracksAddresses(): boolean {
    return this.#maxPerIp !== Infinity || this.#rate !== null;
  }

  #entry(address: string, now: number): PerAddress {
    let entry = this.#byAddress.get(address);
    if (!entry) {
      entry = { open: 0, handshakes: this.#rate ? new TokenBucket(this.#rate, now) : null };
      this.#byAddress.set(address, entry);
    }
    return entry;
  }
}

function refuse(status: 503 | 429, reason: RefusalReason, body: string): Admission {
  return { ok: false, status, reason, body };
}

function positiveOr(value: number | undefined, otherwise: number): number {
  return value !== undefined && value > 0 ? value : otherwise;
}
