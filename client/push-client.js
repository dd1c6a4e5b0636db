// @ts-self-types="./push-client.d.ts"
// push-client.js: the browser client of push-server's push.v1 protocol (lib/channels/PROTOCOL.md).
// Plain JavaScript, an ES module, no dependencies. It subscribes to channels, resumes from the
// last {epoch, offset} of each after a reconnect, reconnects with exponential backoff and full
// jitter, follows the server's close codes, refreshes a token before it expires, and runs an
// application-level heartbeat (a page's JavaScript cannot see WebSocket pings, so a dead link is
// found by a ping that gets no answer).
//
//   import { PushClient } from "/push-client.js";
//   const push = new PushClient("wss://example.com/push");
//   push.on("publication", ({ channel, offset, data }) => render(channel, data));
//   push.on("lost", ({ channel }) => refetch(channel)); // history could not cover the gap
//   push.subscribe("news");
//   push.subscribe("user:42");
//   push.connect();
//   push.on("join", ({ channel, user }) => show(channel, user)); // and "leave"
//   const { total, users } = await push.presence("room.1");

/** The subprotocol this client speaks. */
export const PROTOCOL = "push.v1";

/** Close codes after which reconnecting would not help (see closeAdvice in close_codes.ts). */
const GIVE_UP = [1000, 1002, 1003, 1007, 1008, 1009, 4002, 4003, 4005, 4006];
/** The server closed a slow reader: reconnect at once, and resume. */
const SLOW_CONSUMER = 4000;
/** The token expired: get a new one, then reconnect. */
const TOKEN_EXPIRED = 4004;

/**
 * A connection to push-server that survives reconnects. Events (subscribe with `on`):
 * "publication" {channel, offset, data}; "subscribed" {channel, recovered, epoch, offset} (also
 * for a channel the server's handlers subscribed this connection to: live only, not resumed);
 * "unsubscribed" {channel} when the server's handlers ended a subscription;
 * "lost" {channel, epoch, offset} when a resume could not be recovered; "state" {state, code,
 * reason, delay} (a refused token: "closed" with code 4003 or 4004 and the server's reason);
 * "error" {code, reason, id, channel}; "authed" {user, expiresAt} (again at each refresh);
 * "join" and "leave" {channel, user}; "message" for any other server message.
 */
export class PushClient {
  #url;
  #options;
  #handlers = new Map();
  /** channel → {epoch, offset} of the last publication seen, or null before the first reply. */
  #channels = new Map();
  /** The same for channels the server subscribed this connection to (a handler's
   * conn.subscribe): live only, made again by the server on each connection, never asked for. */
  #server = new Map();
  #ws = null;
  #attempt = 0;
  #timer = 0;
  #beat = 0;
  #waiting = 0;
  #renew = 0;
  #stopped = true;
  #id = 0;
  /** id → {channel, resolve, reject} of each presence query awaiting its reply. */
  #pending = new Map();
  state = "closed";
  /** The user the server named in its last "authed" reply, or null. */
  user = null;

  /**
   * @param {string} url ws:// or wss:// URL of the server.
   * @param {object} [options] minDelay (ms, 500), maxDelay (30000), heartbeat (ms between pings,
   *   25000), timeout (ms to wait for a pong, 10000), token (a string, or a function returning a
   *   string or a promise of one, sent in an "auth" message first), refresh (the share of a
   *   token's remaining lifetime after which a function token is called again and sent on the
   *   open connection, 0.8; 0: never), WebSocket (the class).
   */
  constructor(url, options = {}) {
    this.#url = url;
    this.#options = {
      minDelay: 500,
      maxDelay: 30000,
      heartbeat: 25000,
      timeout: 10000,
      refresh: 0.8,
      WebSocket: globalThis.WebSocket,
      ...options,
    };
  }

  /** Calls `handler(detail)` for each event of `type`; returns a function that stops it. */
  on(type, handler) {
    const set = this.#handlers.get(type) ?? new Set();
    this.#handlers.set(type, set.add(handler));
    return () => set.delete(handler);
  }

  /** The last position seen on a channel ({epoch, offset}), or null. */
  position(channel) {
    return this.#channels.get(channel) ?? this.#server.get(channel) ?? null;
  }

  /** Subscribes to a channel, optionally from a position saved earlier (e.g. in storage). */
  subscribe(channel, since = null) {
    if (!this.#channels.has(channel)) this.#channels.set(channel, since);
    if (this.state === "open") this.#subscribe([channel]);
  }

  unsubscribe(channel) {
    if (this.#channels.delete(channel) && this.state === "open") {
      this.#send({ op: "unsubscribe", id: ++this.#id, channels: [channel] });
    }
  }

  /**
   * Who is on `channel`: a promise of the server's {channel, total, users: [{user, connections}]}.
   * It rejects with the server's error (4005: not granted) or, if the link drops first, with
   * {code, reason} of the close.
   */
  presence(channel) {
    return new Promise((resolve, reject) => {
      if (this.state !== "open") return reject({ code: 0, reason: "not connected" });
      const id = ++this.#id;
      this.#pending.set(id, { channel, resolve, reject });
      this.#send({ op: "presence", id, channel });
    });
  }

  /** Opens the connection, and keeps it open until `close`. */
  connect() {
    this.#stopped = false;
    if (!this.#ws && !this.#timer) this.#open();
  }

  /** Closes the connection and stops reconnecting. */
  close() {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = 0;
    this.#drop(1000, "client closed");
    this.#settle({ code: 1000, reason: "client closed" });
    this.#setState("closed");
  }

  #emit(type, detail) {
    for (const handler of this.#handlers.get(type) ?? []) handler(detail);
  }

  #setState(state, detail = {}) {
    this.state = state;
    this.#emit("state", { state, ...detail });
  }

  async #open() {
    this.#timer = 0;
    this.#setState("connecting");
    let token = this.#options.token;
    try {
      if (typeof token === "function") token = await token();
    } catch {
      return this.#retry(this.#attempt++, "token unavailable");
    }
    if (this.#stopped) return;
    const ws = new this.#options.WebSocket(this.#url, PROTOCOL);
    this.#ws = ws;
    ws.onopen = () => {
      this.#attempt = 0;
      this.#server.clear();
      this.#setState("open");
      if (token) this.#send({ op: "auth", token });
      this.#subscribe([...this.#channels.keys()]);
      this.#alive();
    };
    ws.onmessage = (event) => this.#receive(event.data);
    ws.onclose = (event) => this.#closed(event.code, event.reason);
  }

  #subscribe(names) {
    if (names.length === 0) return;
    const channels = {};
    for (const name of names) channels[name] = this.#channels.get(name) ?? {};
    this.#send({ op: "subscribe", id: ++this.#id, channels });
  }

  #send(message) {
    this.#ws?.send(JSON.stringify(message));
  }

  /** Any message proves the link alive: schedule the next ping. */
  #alive() {
    clearTimeout(this.#beat);
    clearTimeout(this.#waiting);
    this.#beat = setTimeout(() => {
      this.#send({ op: "ping" });
      this.#waiting = setTimeout(
        () => this.#closed(4999, "heartbeat timeout"),
        this.#options.timeout,
      );
    }, this.#options.heartbeat);
  }

  #receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    this.#alive();
    // A publication is the array [channel, offset, data]; every other message is an object.
    if (Array.isArray(message)) {
      const [channel, offset, data] = message;
      message = { type: "publication", channel, offset, data };
    }
    const { type, channel } = message;
    if (type === "publication") {
      const map = this.#channels.has(channel) ? this.#channels : this.#server;
      const last = map.get(channel);
      if (last === undefined || (last && message.offset <= last.offset)) return;
      map.set(channel, { epoch: last?.epoch ?? "", offset: message.offset });
      this.#emit("publication", message);
    } else if (type === "subscribed") {
      const last = this.#channels.get(channel);
      if (last === undefined) {
        // No id: the server subscribed us (a handler's conn.subscribe); live from here.
        if (message.id !== undefined) return;
        this.#server.set(channel, { epoch: message.epoch, offset: message.offset });
        return this.#emit("subscribed", message);
      }
      const now = { epoch: message.epoch, offset: message.offset };
      if (!message.recovered) {
        this.#channels.set(channel, now);
        if (last) this.#emit("lost", { channel, ...now });
      } else {
        this.#channels.set(channel, { epoch: now.epoch, offset: last?.offset ?? 0 });
      }
      this.#emit("subscribed", message);
    } else if (type === "presence") {
      // Matched by the echoed id; a server older than 0.2.0 sends none, and answers in order.
      let id = message.id;
      if (id === undefined) {
        for (const [key, query] of this.#pending) if (query.channel === channel) id ??= key;
      }
      this.#pending.get(id)?.resolve(message);
      this.#pending.delete(id);
    } else if (type === "error") {
      const query = this.#pending.get(message.id);
      if (query) {
        this.#pending.delete(message.id);
        query.reject(message);
      } else if (channel) {
        // An error naming a channel refuses its subscription: do not ask again on reconnect.
        this.#channels.delete(channel);
      }
      this.#emit("error", message);
    } else if (type === "authed") {
      this.user = message.user;
      this.#renewAt(message.expiresAt);
      this.#emit("authed", message);
    } else if (type === "join" || type === "leave") {
      this.#emit(type, message);
    } else if (type === "unsubscribed") {
      // No id: the server ended it (a handler's conn.unsubscribe); do not ask for it again.
      if (
        message.id === undefined && (this.#server.delete(channel) || this.#channels.delete(channel))
      ) {
        this.#emit("unsubscribed", message);
      }
    } else if (type !== "pong") {
      this.#emit("message", message);
    }
  }

  /**
   * With `token` a function, gets a new token before the server's 4004 at `expiresAt` and sends
   * it on this connection (a refresh: the server answers "authed" again, which schedules the
   * next). The first try is at `refresh` (0.8) of the remaining lifetime; a failed one tries again
   * halfway through what remains then (90%, 95%, …), never sooner than minDelay.
   */
  #renewAt(expiresAt, share = this.#options.refresh) {
    const { token, minDelay } = this.#options;
    const ws = this.#ws;
    clearTimeout(this.#renew);
    if (typeof token !== "function" || !share) return;
    this.#renew = setTimeout(async () => {
      try {
        const fresh = await token();
        if (this.#ws === ws) this.#send({ op: "auth", token: fresh });
      } catch {
        if (this.#ws === ws) this.#renewAt(expiresAt, 0.5);
      }
    }, Math.max(minDelay, (expiresAt - Date.now()) * share));
  }

  #drop(code, reason) {
    const ws = this.#ws;
    this.#ws = null;
    clearTimeout(this.#beat);
    clearTimeout(this.#waiting);
    clearTimeout(this.#renew);
    if (!ws) return false;
    ws.onopen = ws.onmessage = ws.onclose = null;
    try {
      ws.close(code, reason);
    } catch {
      ws.close();
    }
    return true;
  }

  #settle(why) {
    for (const query of this.#pending.values()) query.reject(why);
    this.#pending.clear();
  }

  #closed(code, reason) {
    this.#drop(1000, reason);
    this.#settle({ code, reason });
    if (this.#stopped) return this.#setState("closed", { code, reason });
    if (
      GIVE_UP.includes(code) ||
      (code === TOKEN_EXPIRED && typeof this.#options.token !== "function")
    ) {
      this.#stopped = true;
      return this.#setState("closed", { code, reason });
    }
    this.#retry(
      code === SLOW_CONSUMER || code === TOKEN_EXPIRED ? -1 : this.#attempt++,
      reason,
      code,
    );
  }

  /** Waits a random time in [0, min(maxDelay, minDelay·2^attempt)) (full jitter); -1: none. */
  #retry(attempt, reason, code) {
    const { minDelay, maxDelay } = this.#options;
    const delay = attempt < 0 ? 0 : Math.random() * Math.min(maxDelay, minDelay * 2 ** attempt);
    this.#setState("reconnecting", { code, reason, delay });
    this.#timer = setTimeout(() => this.#open(), delay);
  }
}
