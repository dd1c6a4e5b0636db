// Owns permessage-deflate negotiation (RFC 7692 §5, §7): parsing Sec-WebSocket-Extensions offers
// (RFC 6455 §9.1 grammar), choosing the first offer the server can honour, and the response value.

/** The extension's registered name (RFC 7692 §7). */
export const PERMESSAGE_DEFLATE = "permessage-deflate";

/** The four parameters RFC 7692 §7.1 defines; any other declines the offer (§7, §5.1). */
export const DeflateParam = {
  SERVER_NO_CONTEXT_TAKEOVER: "server_no_context_takeover",
  CLIENT_NO_CONTEXT_TAKEOVER: "client_no_context_takeover",
  SERVER_MAX_WINDOW_BITS: "server_max_window_bits",
  CLIENT_MAX_WINDOW_BITS: "client_max_window_bits",
} as const;

/** The LZ77 window sizes an endpoint may ask for, as base-2 logarithms (RFC 7692 §7.1.2). */
export const MIN_WINDOW_BITS = 8;
export const MAX_WINDOW_BITS = 15;

/**
 * The smallest window zlib's raw deflate can compress with: it refuses a 256-byte window
 * (zlib 1.2.9 and later). A peer that asks for server_max_window_bits=8 is accepted, and the
 * messages we send it are left uncompressed (RSV1 clear), which RFC 7692 §6 allows per message;
 * a 512-byte window would break the limit the peer set (§7.1.2.1).
 */
export const MIN_DEFLATE_WINDOW_BITS = 9;

/** One extension parameter: `value` is null when the parameter had none (a bare token). */
export interface ExtensionParam {
  readonly name: string;
  readonly value: string | null;
}

/** One element of the Sec-WebSocket-Extensions list: a name and its parameters, in order. */
export interface ExtensionOffer {
  readonly name: string;
  readonly params: readonly ExtensionParam[];
}

/** What the server is willing to do; both default to 15 (no limit). */
export interface DeflatePolicy {
  /** Largest window the server compresses with (9–15). Sent in the response when below 15. */
  readonly serverMaxWindowBits?: number;
  /**
   * Largest window asked of clients (8–15). It can only be asked of a client that offered
   * client_max_window_bits (RFC 7692 §7.1.2.2); other clients may use 15.
   */
  readonly clientMaxWindowBits?: number;
}

/** The agreed parameters of one connection, from `negotiateDeflate`. */
export interface DeflateParams {
  /** Always true: every message is compressed alone, so one copy serves every connection. */
  readonly serverNoContextTakeover: true;
  /** Always true (§7.1.1.2 lets the server ask): one stateless inflate serves every connection. */
  readonly clientNoContextTakeover: true;
  /** The window we agreed to stay within when compressing (8–15). */
  readonly serverMaxWindowBits: number;
  /** The window the client may compress with (8–15). Inflating with 15 reads any of them. */
  readonly clientMaxWindowBits: number;
  /**
   * The window our compressor uses for this connection (9–15), or null when the agreed window
   * is smaller than zlib can produce: then this connection receives uncompressed messages.
   */
  readonly compressWindowBits: number | null;
  /** The value of the Sec-WebSocket-Extensions response header. */
  readonly header: string;
}

/** A list element that does not parse: the offer it held is declined, the others still count. */
const MALFORMED = Symbol("MALFORMED");

/** RFC 7230 §3.2.6 tchar, the characters of a token. */
const TOKEN_CHAR = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]$/;
/** A window size with no leading zero: "8" to "15" (RFC 7692 §7.1.2.1 ABNF). */
const WINDOW_BITS_VALUE = /^(?:[89]|1[0-5])$/;

/**
 * Parses Sec-WebSocket-Extensions values (RFC 6455 §9.1). Several header lines may be given;
 * together they form one list. An element that is malformed is left out, so that only that
 * offer is declined. Quoted values are unescaped (§9.1: the result must still be a token).
 */
export function parseExtensionOffers(
  headers: string | readonly string[] | null | undefined,
): ExtensionOffer[] {
  if (headers === null || headers === undefined) return [];
  const lines = typeof headers === "string" ? [headers] : headers;
  const offers: ExtensionOffer[] = [];
  for (const line of lines) {
    for (const element of new ListScanner(line).elements()) {
      if (element !== MALFORMED) offers.push(element);
    }
  }
  return offers;
}

/**
 * Chooses the first permessage-deflate offer the server can honour (RFC 7692 §5.1: the server
 * accepts at most one, and declines what it cannot honour) and returns the agreed parameters,
 * or null to decline them all (the response then has no Sec-WebSocket-Extensions).
 */
export function negotiateDeflate(
  headers: string | readonly string[] | null | undefined,
  policy: DeflatePolicy = {},
): DeflateParams | null {
  const serverLimit = policy.serverMaxWindowBits ?? MAX_WINDOW_BITS;
  const clientLimit = policy.clientMaxWindowBits ?? MAX_WINDOW_BITS;
  if (!isIntegerIn(serverLimit, MIN_DEFLATE_WINDOW_BITS, MAX_WINDOW_BITS)) {
    throw new RangeError(`Cannot negotiate: serverMaxWindowBits ${serverLimit} is not 9 to 15`);
  }
  if (!isIntegerIn(clientLimit, MIN_WINDOW_BITS, MAX_WINDOW_BITS)) {
    throw new RangeError(`Cannot negotiate: clientMaxWindowBits ${clientLimit} is not 8 to 15`);
  }
  for (const offer of parseExtensionOffers(headers)) {
    if (offer.name !== PERMESSAGE_DEFLATE) continue;
    const params = acceptOffer(offer, serverLimit, clientLimit);
    if (params) return params;
  }
  return null;
}

/** The agreed parameters for one permessage-deflate offer, or null to decline it. */
function acceptOffer(
  offer: ExtensionOffer,
  serverLimit: number,
  clientLimit: number,
): DeflateParams | null {
  const seen = new Set<string>();
  let serverBits: number | null = null;
  let clientOffered = false;
  let clientBits: number | null = null;
  for (const { name, value } of offer.params) {
    // RFC 7692 §7: an offer with a parameter given twice is declined.
    if (seen.has(name)) return null;
    seen.add(name);
    switch (name) {
      case DeflateParam.SERVER_NO_CONTEXT_TAKEOVER:
      case DeflateParam.CLIENT_NO_CONTEXT_TAKEOVER:
        // RFC 7692 §7.1.1.1, §7.1.1.2: these parameters have no value.
        if (value !== null) return null;
        break;
      case DeflateParam.SERVER_MAX_WINDOW_BITS:
        // RFC 7692 §7.1.2.1: "This parameter has a value", 8 to 15 without leading zeros.
        if (value === null || !WINDOW_BITS_VALUE.test(value)) return null;
        serverBits = Number(value);
        break;
      case DeflateParam.CLIENT_MAX_WINDOW_BITS:
        // RFC 7692 §7.1.2.2: the value is optional; when present, 8 to 15.
        if (value !== null && !WINDOW_BITS_VALUE.test(value)) return null;
        clientOffered = true;
        clientBits = value === null ? null : Number(value);
        break;
      default:
        // RFC 7692 §7: an offer with an unknown parameter is declined.
        return null;
    }
  }
  const response = [
    PERMESSAGE_DEFLATE,
    DeflateParam.SERVER_NO_CONTEXT_TAKEOVER,
    DeflateParam.CLIENT_NO_CONTEXT_TAKEOVER,
  ];
  // RFC 7692 §7.1.2.1: answer with "the same or smaller value as the offer"; without an offer,
  // the server may still announce a smaller window than 15.
  const serverMax = Math.min(serverBits ?? MAX_WINDOW_BITS, serverLimit);
  if (serverBits !== null || serverMax < MAX_WINDOW_BITS) {
    response.push(`${DeflateParam.SERVER_MAX_WINDOW_BITS}=${serverMax}`);
  }
  // RFC 7692 §7.1.2.2: the server "MUST NOT include" client_max_window_bits unless offered.
  let clientMax = MAX_WINDOW_BITS;
  if (clientOffered) {
    clientMax = Math.min(clientBits ?? MAX_WINDOW_BITS, clientLimit);
    response.push(`${DeflateParam.CLIENT_MAX_WINDOW_BITS}=${clientMax}`);
  }
  return {
    serverNoContextTakeover: true,
    clientNoContextTakeover: true,
    serverMaxWindowBits: serverMax,
    clientMaxWindowBits: clientMax,
    compressWindowBits: serverMax >= MIN_DEFLATE_WINDOW_BITS ? serverMax : null,
    header: response.join("; "),
  };
}

function isIntegerIn(n: number, low: number, high: number): boolean {
  return Number.isInteger(n) && n >= low && n <= high;
}

/**
 * Scans one header value as `1#extension` (RFC 6455 §9.1, with RFC 7230 §7 list rules: empty
 * elements are skipped, optional whitespace around separators). Commas inside quoted strings
 * do not split elements.
 */
class ListScanner {
  readonly #s: string;
  #i = 0;

  constructor(s: string) {
    this.#s = s;
  }

  *elements(): Generator<ExtensionOffer | typeof MALFORMED> {
    while (this.#i < this.#s.length) {
      this.#skipSpace();
      if (this.#i >= this.#s.length) return;
      if (this.#s[this.#i] === ",") {
        this.#i++;
        continue;
      }
      const element = this.#element();
      if (element === MALFORMED) this.#skipToComma();
      yield element;
    }
  }

  /** extension = extension-token *( ";" extension-param ), ending at a comma or the end. */
  #element(): ExtensionOffer | typeof MALFORMED {
    const name = this.#token();
    if (name === null) return MALFORMED;
    const params: ExtensionParam[] = [];
    for (;;) {
      this.#skipSpace();
      const c = this.#s[this.#i];
      if (c === undefined) break;
      if (c === ",") {
        this.#i++;
        break;
      }
      if (c !== ";") return MALFORMED;
      this.#i++;
      this.#skipSpace();
      const param = this.#token();
      if (param === null) return MALFORMED;
      this.#skipSpace();
      let value: string | null = null;
      if (this.#s[this.#i] === "=") {
        this.#i++;
        this.#skipSpace();
        value = this.#s[this.#i] === '"' ? this.#quoted() : this.#token();
        if (value === null) return MALFORMED;
      }
      params.push({ name: param, value });
    }
    return { name, params };
  }

  #token(): string | null {
    const start = this.#i;
    while (this.#i < this.#s.length && TOKEN_CHAR.test(this.#s[this.#i])) this.#i++;
    return this.#i > start ? this.#s.slice(start, this.#i) : null;
  }

  /** quoted-string (RFC 7230 §3.2.6), unescaped; RFC 6455 §9.1: the result must be a token. */
  #quoted(): string | null {
    this.#i++; // the opening quote
    let out = "";
    while (this.#i < this.#s.length) {
      const c = this.#s[this.#i++];
      if (c === '"') {
        return out.length > 0 && [...out].every((ch) => TOKEN_CHAR.test(ch)) ? out : null;
      }
      if (c === "\\") {
        if (this.#i >= this.#s.length) return null;
        out += this.#s[this.#i++];
      } else {
        out += c;
      }
    }
    return null; // no closing quote
  }

  #skipSpace(): void {
    while (this.#s[this.#i] === " " || this.#s[this.#i] === "\t") this.#i++;
  }

  /** After a malformed element: resume at the next comma outside quotes. */
  #skipToComma(): void {
    let quoted = false;
    while (this.#i < this.#s.length) {
      const c = this.#s[this.#i++];
      if (quoted && c === "\\") this.#i++;
      else if (c === '"') quoted = !quoted;
      else if (c === "," && !quoted) return;
    }
  }
}
