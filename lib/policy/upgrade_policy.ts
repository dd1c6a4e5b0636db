// Owns the rules for accepting an upgrade request before and after the `upgrade` handler: the
// Origin allow-list, the client address behind trusted proxies, cookies, the subprotocol choice,
// and the status each refusal gets. Pure: the I/O shell runs the handler and applies the answer.

import type { HandshakeError } from "../protocol/handshake.ts";

/** The settings these rules read. */
export interface UpgradeSettings {
  /** Accept only these Origins; empty accepts any. */
  readonly allowedOrigins: readonly string[];
  /** Subprotocols to accept, in the server's order of preference. */
  readonly subprotocols: readonly string[];
  /** Peers whose X-Real-IP / X-Forwarded-For are believed. */
  readonly trustedProxies: readonly string[];
}

/** The server's answer to a valid upgrade request. */
export type UpgradeDecision =
  | {
    readonly accept: true;
    readonly protocol: string;
    readonly data: unknown;
    readonly user?: string;
  }
  | { readonly accept: false; readonly error: HandshakeError };

/** What an `upgrade` handler may return (see lib/api/handlers.ts `UpgradeResult`). */
export type HandlerAnswer =
  | void
  | undefined
  | { readonly reject: { readonly status: number; readonly body?: string } }
  | {
    readonly reject?: undefined;
    readonly protocol?: string;
    readonly data?: unknown;
    readonly user?: string;
  };

const MIN_REFUSAL_STATUS = 400;
const MAX_REFUSAL_STATUS = 599;

/** A refusal with `status` and a one-line body. */
export function refuse(status: number, message: string): UpgradeDecision {
  return { accept: false, error: { status, message } };
}

/** The Origin check, before any handler runs: a refusal, or null to go on. */
export function checkOrigin(
  settings: UpgradeSettings,
  origin: string | undefined,
): UpgradeDecision | null {
  const allowed = settings.allowedOrigins;
  if (allowed.length === 0 || allowed.includes(origin ?? "")) return null;
  return refuse(403, `Origin ${origin ?? "(none)"} is not allowed`);
}

/**
 * The decision once the handler (if any) answered. A handler may refuse with a status, or pick
 * one of the offered subprotocols and attach data; without a pick, the first of --subprotocol
 * the client offered is taken. A pick the client did not offer is our bug: 500.
 */
export function decide(
  settings: UpgradeSettings,
  { answer, offered }: { answer: HandlerAnswer; offered: readonly string[] },
): UpgradeDecision | { readonly badProtocol: string } {
  if (answer?.reject) {
    const status = answer.reject.status;
    const valid = Number.isInteger(status) && status >= MIN_REFUSAL_STATUS &&
      status <= MAX_REFUSAL_STATUS;
    return refuse(valid ? status : 500, answer.reject.body ?? "Refused");
  }
  const protocol = answer?.protocol ?? pickProtocol(settings.subprotocols, offered);
  if (protocol && !offered.includes(protocol)) return { badProtocol: protocol };
  const user = typeof answer?.user === "string" ? answer.user : undefined;
  return { accept: true, protocol: protocol ?? "", data: answer?.data, user };
}

/** The first of the server's subprotocols that the client offered. */
export function pickProtocol(
  ours: readonly string[],
  offered: readonly string[],
): string | undefined {
  return ours.find((p) => offered.includes(p));
}

/**
 * The client's address: the TCP peer, unless the peer is a trusted proxy; then X-Real-IP, or
 * the rightmost X-Forwarded-For entry (the one the trusted proxy itself appended).
 */
export function clientAddress(
  settings: UpgradeSettings,
  { peer, headers }: { peer: string; headers: ReadonlyMap<string, string> },
): string {
  if (!settings.trustedProxies.includes(peer)) return peer;
  const real = headers.get("x-real-ip")?.trim();
  if (real) return real;
  const forwarded = headers.get("x-forwarded-for")?.split(",").map((s) => s.trim())
    .filter(Boolean);
  return forwarded?.length ? forwarded[forwarded.length - 1] : peer;
}

/** Parses a Cookie header ("a=1; b=2"); values are percent-decoded where valid. */
export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!header) return out;
  for (const pair of header.split(";")) {
    const eq = pair.indexOf("=");
    if (eq <= 0) continue;
    const name = pair.slice(0, eq).trim();
    let value = pair.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) {
      value = value.slice(1, -1);
    }
    try {
      value = decodeURIComponent(value);
    } catch { /* keep it as sent */ }
    if (!Object.hasOwn(out, name)) out[name] = value;
  }
  return out;
}
